"""The model zoo as variant x size, one table for the whole project: `create_model("vivit_b_fe", num_classes=400)`.

A *variant* is one of the paper's models, a class that registers itself with `@register_variant` (beside its own
code, as timm's `@register_model`); a *size* is one of the paper's ViT widths (Ti, S, B, L, H). A model name is
`vivit_<size>_<variant>` and its config is the class's own keyword defaults, then the size's geometry, then the
variant's exceptions for a size (Model 4 needs an even number of heads: ViViT-Ti/FDP has 6).

Everything that needs model names asks here: the Hydra model group (`model=vivit_l_fe`, generated from this
table by vivit.runtime.config), the FLOPs and converter commands, the paper tables, FSDP's wrapping unit, and the
allow-list of classes a checkpoint's config may name (`model_class`). Configs that are not a size of a variant (the
CPU demo `vivit_tiny`, the paper's average-pool baseline `vivit_b_fe_avgpool`) are files of conf/model/ that
Hydra composes beside the zoo; `create_model` knows the zoo's names only.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

# The paper's sizes (Sec. 4.1, after ViT): width, depth and heads; every size sees 32 frames at 224 px in tubelets of
# 2 frames of 16x16 patches (ViT-H: 14x14), with an MLP 4x as wide as the tokens.
CLIP = dict(img_size=224, num_frames=32, tubelet_size=[2, 16, 16], mlp_ratio=4.0)
SIZES: dict[str, dict[str, Any]] = {
    "ti": {**CLIP, "embed_dim": 192, "depth": 12, "num_heads": 3},
    "s": {**CLIP, "embed_dim": 384, "depth": 12, "num_heads": 6},
    "b": {**CLIP, "embed_dim": 768, "depth": 12, "num_heads": 12},
    "l": {**CLIP, "embed_dim": 1024, "depth": 24, "num_heads": 16},
    "h": {**CLIP, "embed_dim": 1280, "depth": 32, "num_heads": 16, "tubelet_size": [2, 14, 14]},
}
PACKAGE = "vivit.models"  # the project's classes are named by their public module: `vivit.models.<Class>`
# Keys of a model config that say how to initialise the weights (vivit.weights.pretrained), not what to build.
INIT_KEYS = ("init", "init_options")


@dataclass(frozen=True)
class Variant:
    """A registered model class and what the zoo needs to know about it."""

    name: str  # the short name in model names: vivit_b_<name>
    model_class: type[nn.Module]
    paper_name: str  # e.g. "Model 2: factorised encoder"
    size_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # size -> keys that differ

    @property
    def target(self) -> str:
        """The `_target_` of the variant's configs: `vivit.models.<Class>` for the project's own, else the class's
        module and name (a variant registered by a module of your own)."""
        cls = self.model_class
        if cls.__module__.startswith(PACKAGE + "."):
            return f"{PACKAGE}.{cls.__name__}"
        return f"{cls.__module__}.{cls.__qualname__}"


VARIANTS: dict[str, Variant] = {}


def register_variant(
    name: str, paper_name: str, size_overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: add a model class to the zoo as the variant `name` (one model name per size).

    The variant's config is made from its constructor's keyword defaults (`constructor_defaults`): state a default
    the variant changes (Models 3 and 4: `classifier="gap"`) as a default of its own `__init__`, not by setting it
    on `**kwargs`, or the generated config carries the base class's value."""

    def register(cls: type[nn.Module]) -> type[nn.Module]:
        if name in VARIANTS and VARIANTS[name].model_class is not cls:
            raise ValueError(f"the variant name {name!r} is taken by {VARIANTS[name].target}")
        VARIANTS[name] = Variant(name, cls, paper_name, dict(size_overrides or {}))
        return cls

    return register


def model_names() -> list[str]:
    """Every name of the zoo, `vivit_<size>_<variant>`, sizes in the paper's order."""
    return [f"vivit_{size}_{variant}" for variant in VARIANTS for size in SIZES]


def split_name(name: str) -> tuple[str, Variant]:
    """(size, variant) of a model name, or a ValueError listing the names there are."""
    _, _, rest = name.partition("vivit_")
    size, _, variant = rest.partition("_")
    if not name.startswith("vivit_") or size not in SIZES or variant not in VARIANTS:
        raise ValueError(
            f"unknown model {name!r}: the zoo has vivit_<size>_<variant> with sizes "
            f"{', '.join(SIZES)} and variants {', '.join(VARIANTS)}."
        )
    return size, VARIANTS[variant]


def constructor_defaults(cls: type) -> dict[str, Any]:
    """The keyword arguments a model class takes and their defaults, its own over its bases' (`**kwargs` pass them
    on). `num_classes` has no default: the data decides it."""
    defaults: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or "__init__" not in vars(klass):
            continue
        for parameter in inspect.signature(klass.__init__).parameters.values():
            if parameter.default is not inspect.Parameter.empty:
                value = parameter.default
                defaults[parameter.name] = list(value) if isinstance(value, tuple) else value
    return defaults


def constructor_arguments(cls: type) -> set[str]:
    """Every argument the class's constructor takes, its own and its bases' (through `**kwargs`)."""
    return {
        parameter.name
        for klass in cls.__mro__
        if klass is not object and "__init__" in vars(klass)
        for parameter in list(inspect.signature(klass.__init__).parameters.values())[1:]  # not self
        if parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }


def model_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The config of a zoo model: `_target_` and every constructor argument (`num_classes` only if given)."""
    size, variant = split_name(name)
    return {
        "_target_": variant.target,
        **constructor_defaults(variant.model_class),
        **SIZES[size],
        **variant.size_overrides.get(size, {}),
        **overrides,
    }


def model_class(target: str) -> type[nn.Module]:
    """The registered class a config's `_target_` names (`vivit.models.<Class>` or its defining module), else a
    ValueError: a config read back from a file builds the zoo's classes and nothing else."""
    for variant in VARIANTS.values():
        cls = variant.model_class
        if target in (variant.target, f"{cls.__module__}.{cls.__qualname__}"):
            return cls
    raise ValueError(
        f"_target_={target!r} is not a model of this project; expected one of "
        f"{', '.join(v.target for v in VARIANTS.values())}."
    )


def variant_of(target: str) -> Variant | None:
    """The variant whose class a `_target_` names, or None."""
    try:
        cls = model_class(target)
    except ValueError:
        return None
    return next(v for v in VARIANTS.values() if v.model_class is cls)


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """The model a config describes: its `_target_` (a registered class, see `model_class`) called with the other
    keys (plain values: `num_classes` resolved), the initialisation keys left out."""
    kwargs = {key: value for key, value in config.items() if key not in INIT_KEYS}
    if "_target_" not in kwargs:
        raise ValueError(f"the model config has no `_target_` (the model class): {sorted(kwargs)}.")
    cls = model_class(kwargs.pop("_target_"))
    unknown = sorted(set(kwargs) - constructor_arguments(cls))
    if unknown:
        raise ValueError(
            f"model.{unknown[0]}: {cls.__name__} takes no argument {unknown[0]!r}; its arguments: "
            f"{', '.join(sorted(constructor_arguments(cls)))}."
        )
    return cls(**kwargs)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """A zoo model by name (`vivit_b_fe`), with keyword arguments over its config (`num_classes` is required)."""
    return build_model(model_config(name, **kwargs))


def block_classes() -> set[type[nn.Module]]:
    """The transformer block classes of every variant: FSDP's wrapping and activation-checkpointing unit
    (conf/trainer/fsdp.yaml; Lightning turns a set of classes into FSDP's ModuleWrapPolicy)."""
    return {block for variant in VARIANTS.values() for block in variant.model_class.block_types}

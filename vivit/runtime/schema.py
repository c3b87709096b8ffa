"""The typed schema of every user-facing key, checked before any folder is made, any data read or any logger started.

Three checks, each a one-line `ConfigError` naming the key, the bad value, what is allowed and a fix:

- `check_keys`: the value of each key this table knows has the right type, range or choice (`data.batch_size=0`,
  `optim.optimizer.lr=fast`, `eval.views=0x3`, `regularisation.mixup_alpha=-1`);
- `check_target_arguments`: every node with a `_target_` (data, its index, the module, optimiser, trainer, loggers,
  callbacks) holds only keys its class takes, with the nearest name when one is mistyped (`+data.batchsize=8`);
  the model's keys are the model registry's to check;
- `check_hardware`: the trainer asks for devices this machine has (no GPU, more GPUs or CPU processes than there are,
  DDP on a CPU machine without `trainer.accelerator=cpu`).

A validation layer over the composed config rather than Hydra structured configs: the configs stay plain YAML that
compose as before (experiment presets, `+trainer.<any Lightning argument>`, the model zoo generated from the
registry), the checks can say what is allowed and how to fix it in one line (OmegaConf's own errors are several
lines and know types only, not ranges or choices), and the types come from pydantic (`TypeAdapter` in strict mode:
`8.0` is not an integer, `"abc"` not a number) instead of hand-written type tests. Each entry of a table is one key:
its type, what is allowed in words, and an example value that is the fix.
"""

import difflib
import inspect
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException, MissingConfigException
from hydra.utils import get_object
from lightning.fabric.connector import _PRECISION_INPUT_STR
from lightning.pytorch.accelerators import AcceleratorRegistry
from lightning.pytorch.strategies import StrategyRegistry
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from vivit.weights.pretrained import POS_INTERPOLATIONS, TEMPORAL_INITS, TUBELET_INITS

from .config import CONF_DIR
from .errors import ConfigError

STRICT = ConfigDict(strict=True)


@dataclass(frozen=True)
class Key:
    """One key's rule: a type (with its range or choices) for pydantic, the same in words, and a good value."""

    type: Any
    allowed: str
    example: Any
    adapter: TypeAdapter = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "adapter", TypeAdapter(self.type, config=STRICT))

    def check(self, key: str, value: Any) -> None:
        try:
            self.adapter.validate_python(value)
        except ValidationError:
            raise ConfigError(
                f"{key}={shown(value)}: expected {self.allowed}; e.g. {key}={shown(self.example)}."
            ) from None


def shown(value: Any) -> str:
    """A value as it is written on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(shown(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{shown(v)}" for k, v in value.items()) + "}"
    return str(value)


# ---------------------------------------------------------------------------------------------- key builders
def integer(example: int, minimum: int | None = 1, maximum: int | None = None, null: bool = False) -> Key:
    kind: Any = Annotated[int, Field(ge=minimum, le=maximum)]
    words = "an integer"
    if minimum is not None and maximum is not None:
        words += f" from {minimum} to {maximum}"
    elif minimum is not None:
        words += f" >= {minimum}"
    return Key(kind | None if null else kind, words + (", or null" if null else ""), example)


def number(
    example: float, ge: float | None = 0, gt: float | None = None, lt: float | None = None, null: bool = False
) -> Key:
    kind: Any = Annotated[float, Field(ge=ge, gt=gt, lt=lt)]
    bounds = [
        f">= {ge}" if ge is not None else "",
        f"> {gt}" if gt is not None else "",
        f"< {lt}" if lt is not None else "",
    ]
    words = " and ".join(b for b in bounds if b)
    words = "a number" + (f" {words}" if words else "")
    return Key(kind | None if null else kind, words + (", or null" if null else ""), example)


def fraction(example: float) -> Key:
    """A probability or rate in [0, 1)."""
    return Key(Annotated[float, Field(ge=0, lt=1)], "a number in [0, 1)", example)


def flag(example: bool = True, null: bool = False) -> Key:
    return Key(bool | None if null else bool, "true or false" + (", or null" if null else ""), example)


def choice(*values: Any, example: Any = None, null: bool = False) -> Key:
    kind: Any = Literal[values]  # type: ignore[valid-type]
    words = "one of " + ", ".join(shown(v) for v in values)
    return Key(
        kind | None if null else kind, words + (", or null" if null else ""), values[0] if example is None else example
    )


def text(example: str, null: bool = True) -> Key:
    return Key(str | None if null else str, "a path or name" + (", or null" if null else ""), example)


VIEWS = r"^[1-9][0-9]*x[13]$"
views = Key(
    Annotated[str, Field(pattern=VIEWS)] | None,
    "TxS views: T >= 1 temporal clips x S = 1 or 3 spatial crops (or null for the data config's)",
    "4x3",
)
PRECISIONS = (*get_args(_PRECISION_INPUT_STR), 16, 32, 64, "16", "32", "64", "bf16")  # what Lightning takes

# ---------------------------------------------------------------------------------------------- the tables
RUN_KEYS: dict[str, Key] = {
    "seed": integer(0, minimum=0, maximum=2**32 - 1),
    "train": flag(),
    "test": flag(),
    "test_best": flag(False),
    "trusted": flag(False),
    "global_batch": integer(64, null=True),
    "threads": integer(4, null=True),
    "ckpt_path": text("outputs/train/runs/<time>/checkpoints/last.ckpt"),
    "resume": text("outputs/train/runs/<time>"),
    "split": choice("val", "test"),
    "tags": Key(list[str | int | float | bool], "a list of tags", ["dev"]),
    "eval.views": views,
    "eval.save_predictions": flag(False),
    **{f"eval.submission.{k}": integer(0, minimum=0, maximum=5, null=True) for k in ("sls_pt", "sls_tl", "sls_td")},
    # data
    "data.root": text("/data/kinetics400", null=False),
    "data.num_classes": Key(
        Annotated[int, Field(ge=1)] | dict[str, Annotated[int, Field(ge=1)]] | None,
        "a number of classes >= 1 (one per head: {verb:97,noun:300}), or null for the index's",
        400,
    ),
    "data.num_frames": integer(32),
    "data.stride": integer(2),
    "data.fps": number(25, ge=None, gt=0, null=True),
    "data.crop_size": integer(224),
    "data.min_resize": integer(256, null=True),
    "data.resize_ratio": number(1.142857, ge=1, null=True),
    "data.batch_size": integer(8),
    "data.test_batch_size": integer(4, null=True),
    "data.num_workers": integer(8, minimum=0),
    "data.test_views": Key(Annotated[str, Field(pattern=VIEWS)], "TxS views such as 4x3 (S = 1 or 3 crops)", "4x3"),
    "data.scale_jitter": Key(
        Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=2, max_length=2)] | None,
        "[low, high] scale factors > 0, or null",
        [0.9, 1.33],
    ),
    "data.hflip": flag(),
    "data.randaugment.num_layers": integer(2, minimum=0),
    "data.randaugment.magnitude": number(9),
    "data.colour_augment": flag(),
    "data.mean": Key(list[float], "a list of numbers, one per channel", [0.5, 0.5, 0.5]),
    "data.std": Key(list[Annotated[float, Field(gt=0)]], "a list of numbers > 0, one per channel", [0.5, 0.5, 0.5]),
    "data.on_error": choice("warn", "raise"),
    "data.cache_decoded": flag(False),
    "data.pin_memory": flag(),
    "data.persistent_workers": flag(),
    "data.index.cache_dir": Key(
        str | Literal[False] | None, "a folder, null (~/.cache/vivit/index) or false (off)", None
    ),
    # model: the types here, the ranges and choices in the model classes (they say them in one line)
    **{f"model.{k}": integer(8) for k in ("img_size", "num_frames", "in_chans", "embed_dim", "depth", "num_heads")},
    "model.temporal_depth": integer(4, minimum=0),
    "model.tubelet_size": Key(
        Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=3, max_length=3)],
        "[t, h, w], three integers >= 1",
        [2, 16, 16],
    ),
    "model.mlp_ratio": number(4.0, ge=None, gt=0),
    **{f"model.{k}": number(0.1, ge=None) for k in ("dropout", "attn_dropout", "drop_path_rate", "pos_embed_std")},
    **{f"model.{k}": Key(str, "a name", v) for k, v in (("classifier", "token"), ("embedding", "tubelet"))},
    "model.qkv_bias": flag(),
    "model.grad_checkpointing": flag(False),
    "model.init": text("vit_base_patch16_224.orig_in21k"),
    "model.init_options.weights": text("weights/vit_base.pth"),
    "model.init_options.tubelet_init": choice(*TUBELET_INITS),
    "model.init_options.temporal_init": choice(*TEMPORAL_INITS),
    "model.init_options.pos_interpolation": choice(*POS_INTERPOLATIONS),
    "model.init_options.load_head": flag(False),
    # optimisation and regularisation
    "optim.optimizer.lr": number(0.1),
    "optim.optimizer.momentum": fraction(0.9),
    "optim.optimizer.weight_decay": number(0.0),
    "optim.optimizer.betas": Key(
        Annotated[list[Annotated[float, Field(ge=0, lt=1)]], Field(min_length=2, max_length=2)],
        "two numbers in [0, 1)",
        [0.9, 0.999],
    ),
    "optim.warmup_epochs": number(2.5),
    "optim.grad_clip": number(1.0, null=True),
    "regularisation.label_smoothing": fraction(0.1),
    "regularisation.mixup_alpha": number(0.3),
    "module.warmup_epochs": number(2.5),
    "module.label_smoothing": fraction(0.1),
    "module.mixup_alpha": number(0.3),
    "module.views_per_forward": integer(8),
    "module.compile": flag(False),
    # the trainer (Lightning's own checks come after an epoch's worth of setup, or as a 17-line exception)
    "trainer.accelerator": choice("auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators()), example="cpu"),
    "trainer.devices": Key(
        Annotated[int, Field(ge=1)]
        | Literal[-1, "auto"]
        | list[Annotated[int, Field(ge=0)]]
        | Annotated[str, Field(pattern=r"^\d+(,\s*\d+)*,?$")],
        "a number of devices >= 1, -1 or auto (all), or a list of device ids",
        1,
    ),
    "trainer.num_nodes": integer(1),
    "trainer.strategy": Key(
        Literal[("auto", *StrategyRegistry.available_strategies())] | dict,  # type: ignore[misc]
        "auto, ddp, fsdp, ... (a Lightning strategy name) or a {_target_: ...} node",
        "ddp",
    ),
    "trainer.precision": choice(*PRECISIONS, example="32-true"),
    "trainer.max_epochs": integer(30, minimum=-1, null=True),
    "trainer.min_epochs": integer(1, minimum=0, null=True),
    "trainer.max_steps": integer(1000, minimum=-1),
    "trainer.gradient_clip_val": number(1.0, null=True),
    "trainer.accumulate_grad_batches": integer(1),
    "trainer.log_every_n_steps": integer(10),
    "trainer.check_val_every_n_epoch": integer(1, null=True),
    "trainer.num_sanity_val_steps": integer(2, minimum=-1),
    "trainer.fast_dev_run": Key(bool | Annotated[int, Field(ge=0)], "true, false or a number of batches", True),
    **{
        f"trainer.limit_{split}_batches": Key(
            Annotated[int, Field(ge=0)] | Annotated[float, Field(ge=0, le=1)] | None,
            "a number of batches >= 0 or a fraction in [0, 1], or null",
            1.0,
        )
        for split in ("train", "val", "test", "predict")
    },
    "trainer.val_check_interval": Key(
        Annotated[int, Field(ge=1)] | Annotated[float, Field(gt=0, le=1)] | None,
        "a number of batches >= 1 or a fraction in (0, 1], or null",
        1.0,
    ),
    "trainer.deterministic": Key(bool | Literal["warn"] | None, "true, false, warn or null", False),
    "trainer.benchmark": flag(False, null=True),
    **{
        f"trainer.{k}": flag()
        for k in (
            "enable_model_summary",
            "enable_progress_bar",
            "enable_checkpointing",
            "sync_batchnorm",
            "detect_anomaly",
        )
    },
}

PREDICT_KEYS: dict[str, Key] = {
    "trusted": flag(False),
    "ckpt_path": text("checkpoints/vivit_b_k400.pt", null=False),
    "topk": integer(5),
    "views": views,
    "batch_size": integer(4),
    "num_workers": integer(0, minimum=0),
    "device": Key(
        Annotated[str, Field(pattern=r"^(cpu|cuda(:\d+)?|mps)$")] | None, "cpu, cuda, cuda:N, mps or null", "cpu"
    ),
    "precision": choice("auto", "32", "bf16", 32),
    "threads": integer(4, null=True),
}


# ---------------------------------------------------------------------------------------------- the checks
def missing(key: str) -> ConfigError:
    return ConfigError(
        f"{key}: no value (???). Set it on the command line, e.g. `{key}=...` (see the comments in conf/)."
    )


def values(cfg: DictConfig, keys: Mapping[str, Key]) -> Iterator[tuple[str, Any]]:
    """(key, resolved plain value) of each key of `keys` that the config has."""
    for key in keys:
        parent_key, _, leaf = key.rpartition(".")
        try:
            parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
        except OmegaConfBaseException:
            continue  # a parent that does not resolve is reported by its own key
        if not isinstance(parent, DictConfig) or leaf not in parent:
            continue
        if OmegaConf.is_missing(parent, leaf):
            raise missing(key)
        try:
            value = parent[leaf]
        except OmegaConfBaseException as error:
            raise ConfigError(f"{key}: {str(error).splitlines()[0]}") from error
        yield key, OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def check_keys(cfg: DictConfig, keys: Mapping[str, Key] = RUN_KEYS) -> None:
    """Each key of `keys` in `cfg` has an allowed value (see the module docstring)."""
    for key, value in values(cfg, keys):
        keys[key].check(key, value)


def nearest(name: str, names: list[str]) -> str | None:
    found = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return found[0] if found else None


def arguments(target: Any) -> list[str] | None:
    """The keyword arguments a `_target_` takes, or None when it takes any (`**kwargs`) or cannot be inspected."""
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters if p.kind is not inspect.Parameter.VAR_POSITIONAL]


def resolved_groups(cfg: DictConfig) -> dict[str, Any]:
    """The config's top-level nodes, resolved, Hydra's own left out; a node that does not resolve is left out too
    (it is reported, in one line, where it is used)."""
    plain = {}
    for name in cfg.keys():
        if name == "hydra":
            continue
        try:
            value = cfg[name]
            plain[name] = OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value
        except OmegaConfBaseException:
            continue
    return plain


def target_nodes(node: Any, key: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(dotted key, node) of every mapping with a `_target_` under `node` (the model and hydra's own excepted)."""
    if isinstance(node, Mapping):
        if isinstance(node.get("_target_"), str):
            yield key, node
        for name, child in node.items():
            if key == "" and name in ("model", "hydra"):
                continue
            yield from target_nodes(child, f"{key}.{name}" if key else str(name))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from target_nodes(child, f"{key}.{i}")


# keys a node holds for the code that builds it, not for its target (vivit.tasks.build: the trainer's named plugins)
BUILT_BY_THE_PROJECT = {"trainer": {"plugins"}}


def check_target_arguments(cfg: DictConfig) -> None:
    """Every `_target_` node holds only keys its class or function takes (the one-line form of Hydra's TypeError)."""
    for key, node in target_nodes(resolved_groups(cfg), ""):
        try:
            target = get_object(node["_target_"])
        except (ImportError, AttributeError, ValueError) as error:
            raise ConfigError(
                f"{key}._target_={node['_target_']}: cannot be imported ({str(error).splitlines()[0]}); "
                "check the spelling, or install the package that provides it."
            ) from error
        taken = arguments(target)
        if taken is None:
            continue
        given = [k for k in node if not str(k).startswith("_") and k not in BUILT_BY_THE_PROJECT.get(key, ())]
        for name in given:
            if name not in taken:
                raise ConfigError(unknown_argument(key, str(name), node["_target_"], taken))


def unknown_argument(key: str, name: str, target: str, taken: list[str]) -> str:
    close = nearest(name, taken)
    hint = f"did you mean {key}.{close}? " if close else ""
    listed = ", ".join(taken) if len(taken) <= 25 else f"see the documentation of {target}"
    return f"{key}.{name}: {target} takes no argument '{name}'; {hint}its arguments: {listed}."


# ---------------------------------------------------------------------------------------------- hardware
GPU_ACCELERATORS = ("gpu", "cuda")


def requested_devices(devices: Any, available: int) -> int:
    """How many devices `trainer.devices` asks for (`auto` and -1: all there are)."""
    if devices in ("auto", -1, "-1"):
        return max(available, 1)
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if isinstance(devices, str):
        ids = [d for d in devices.split(",") if d.strip()]
        return len(ids) if "," in devices else int(devices)
    return int(devices)


def check_hardware(cfg: DictConfig, gpus: int | None = None, cores: int | None = None) -> None:
    """The trainer's accelerator and devices exist on this machine (`gpus`, `cores`: this machine's, by default)."""
    trainer = cfg.get("trainer")
    if not isinstance(trainer, DictConfig):
        return
    gpus = torch.cuda.device_count() if gpus is None else gpus
    cores = (os.cpu_count() or 1) if cores is None else cores
    accelerator = str(trainer.get("accelerator", "auto"))
    devices = trainer.get("devices", 1)
    devices = OmegaConf.to_container(devices) if isinstance(devices, ListConfig) else devices
    if accelerator in GPU_ACCELERATORS and gpus == 0:
        ddp = str(trainer.get("strategy", "")).startswith(("ddp", "fsdp")) or requested_devices(devices, 1) > 1
        run = "several CPU processes (DDP on gloo)" if ddp else "the CPU"
        raise ConfigError(
            f"trainer.accelerator={accelerator}: this machine has no CUDA GPU; add trainer.accelerator=cpu to run "
            f"on {run}" + (f", with trainer.devices=1..{cores} processes." if ddp else ".")
        )
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.accelerator=mps: this machine has no Apple GPU; use trainer.accelerator=cpu.")
    on_gpu = accelerator in GPU_ACCELERATORS or (accelerator == "auto" and gpus > 0)
    available, what = (gpus, "GPUs") if on_gpu else (cores, "CPU cores")
    asked = requested_devices(devices, available)
    if asked > available:
        advice = (
            f"set trainer.devices=1..{available}"
            if on_gpu
            else f"set trainer.devices=1..{available} (or trainer.accelerator=gpu on a GPU machine)"
        )
        raise ConfigError(
            f"trainer.devices={shown(devices)}: {asked} {'GPUs' if on_gpu else 'CPU processes'} asked for, but this "
            f"machine has {available} {what}; {advice}."
        )


def check_predict_device(device: str | None, gpus: int | None = None) -> None:
    """predict.py's `device` exists on this machine."""
    gpus = torch.cuda.device_count() if gpus is None else gpus
    if device and device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        if index >= gpus:
            found = "no CUDA GPU" if gpus == 0 else f"{gpus} GPU{'s' if gpus > 1 else ''}"
            raise ConfigError(
                f"device={device}: this machine has {found}; use device=cpu (or null: the best there is)."
            )


def check_run_config(cfg: DictConfig) -> None:
    """The schema of train.py and eval.py: key types and ranges, the `_target_` nodes' keys, the hardware."""
    check_keys(cfg, RUN_KEYS)
    check_target_arguments(cfg)
    check_hardware(cfg)


# ---------------------------------------------------------------------------------------------- command-line mistakes
def composition_error(error: BaseException, config_name: str, argv: list[str]) -> str:
    """One line for a mistake Hydra found while composing the config from the command line `argv`: an unknown key
    (with the nearest one, or the `+key=` to add an argument the class takes), an unknown config of a group (with
    the options), an override Hydra cannot parse."""
    chain = [error]
    while chain[-1].__cause__ is not None and chain[-1].__cause__ not in chain:
        chain.append(chain[-1].__cause__)
    for link in chain:
        if isinstance(link, ConfigError):
            return str(link)
    if isinstance(error, MissingConfigException) and error.missing_cfg_file:
        group, _, option = error.missing_cfg_file.rpartition("/")
        options = list(error.options or [])
        close = nearest(option, options)
        hint = f"did you mean {group}={close}? " if close else ""
        if group:
            return f"{group}={option}: no such config in conf/{group}/; {hint}the options: {', '.join(options)}."
    message = " ".join(str(error).split())
    if match := re.match(r"Could not override '([^']+)'", message):
        return _unknown_key(match.group(1), config_name, argv)
    if match := re.match(r"Could not append to config\. An item is already at '([^']+)'", message):
        key = match.group(1)
        return f"+{key}: {key} is already in the config; set it without the + ({key}=...)."
    lines = [line.strip() for link in chain for line in str(link).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("full_key:", "object_type=", "See https://"))]
    return "; ".join(dict.fromkeys(lines))  # Hydra's message and its cause, in one line


def _unknown_key(key: str, config_name: str, argv: list[str]) -> str:
    """`key=value` for a key the config does not have: what to write instead."""
    value = next((a.split("=", 1)[1] for a in argv if a.split("=", 1)[0] == key), "...")
    composed = _compose_without(config_name, [a for a in argv if a.split("=", 1)[0] != key])
    if composed is None:
        return f"{key}: not a key of the config; a new key is added with +{key}={value}."
    parent_key, _, name = key.rpartition(".")
    parent = OmegaConf.select(composed, parent_key) if parent_key else composed
    if isinstance(parent, DictConfig) and isinstance(parent.get("_target_"), str):
        try:
            taken = arguments(get_object(parent._target_))
        except (ImportError, AttributeError, ValueError):
            taken = None
        if taken is not None and name in taken:
            return f"{key}: not set in the config, but {parent._target_} takes it: add it with +{key}={value}."
        if taken is not None:
            return unknown_argument(parent_key, name, parent._target_, taken)
    close = nearest_key(key, list(dotted_keys(composed)))
    hint = f"; did you mean {close}?" if close else ""
    return f"{key}: no such key in the config{hint} (python {config_name}.py --cfg job prints every key)."


def nearest_key(key: str, keys: list[str]) -> str | None:
    """The key of `keys` nearest to the dotted `key`: one with the same last name first (`optim.lr` ->
    `optim.optimizer.lr`), else the closest spelling."""
    name = key.rpartition(".")[2]
    same_name = [k for k in keys if k.rpartition(".")[2] == name]
    if same_name:
        return max(same_name, key=lambda k: difflib.SequenceMatcher(None, key, k).ratio())
    return nearest(key, keys)


def dotted_keys(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, DictConfig):
        for name in node.keys():
            key = f"{prefix}.{name}" if prefix else str(name)
            yield key
            child = node._get_node(name)
            if isinstance(child, DictConfig):
                yield from dotted_keys(child, key)


def _compose_without(config_name: str, argv: list[str]) -> DictConfig | None:
    """The config composed from the command line's other overrides (None when they do not compose either)."""
    overrides = [a for a in argv if "=" in a and not a.startswith(("-", "hydra.", "hydra/"))]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
            return compose(config_name=config_name, overrides=overrides)
    except (HydraException, OmegaConfBaseException):
        return None
    finally:
        GlobalHydra.instance().clear()

"""The configs of conf/ and the model zoo's, composed the way every entry point composes them.

`CONF_DIR` is the package's `conf/` (in a clone a link to the repository's conf/ folder, in a wheel the folder
itself). The zoo's models (`model=vivit_<size>_<variant>`) are not files: `register_configs()` stores one Hydra
config per name of `vivit.models.model_names()` in Hydra's ConfigStore, made from the model registry, beside the
files of conf/model/ (the demo model and the paper's average-pool baseline). It also registers the resolvers of the
run folders (`${vivit.new_dir:...}`, vivit/runtime/runs.py) and of the data loaders' workers (`${vivit.workers:8}`:
8, or the CPU cores this process may use when fewer). Both run when this module is imported.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vivit.models import model_config, model_names
from vivit.runtime.runs import new_run_dir
from vivit.weights.pretrained import INIT_OPTIONS

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"  # vivit/conf


def zoo_model_config(name: str) -> dict[str, Any]:
    """The Hydra config of a zoo model: its registry config (`num_classes` comes from the data) and how to
    initialise it (`init`: a timm ViT name, an image-ViT file or a video checkpoint; `init_options`)."""
    return {**model_config(name), "init": None, "init_options": dict(INIT_OPTIONS)}


def usable_workers(wanted: int | str) -> int:
    """DataLoader worker processes: `wanted`, but no more than the CPU cores this process may run on (torch warns
    above that, and decoding processes beyond the cores only take turns), so a laptop gets what it can use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(int(wanted), cores))


def register_configs() -> None:
    """The zoo's model configs in Hydra's ConfigStore (group `model`) and the resolvers. Idempotent."""
    store = ConfigStore.instance()
    for name in model_names():
        store.store(group="model", name=name, node=zoo_model_config(name), provider="vivit.models")
    if not OmegaConf.has_resolver("vivit.new_dir"):  # cached: one config resolves it to one folder
        OmegaConf.register_new_resolver(
            "vivit.new_dir", lambda parent, prefix="": str(new_run_dir(parent, prefix)), use_cache=True
        )
    if not OmegaConf.has_resolver("vivit.workers"):
        OmegaConf.register_new_resolver("vivit.workers", usable_workers)


register_configs()


def model_choices() -> list[str]:
    """Every model config: the zoo's names and the files of conf/model/."""
    return sorted({*model_names(), *(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))})


def compose_model_config(name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The model config `name` (a zoo name or a file of conf/model/), composed by Hydra, with `key=value` overrides
    of its keys (Hydra's syntax, with or without the `model.` prefix; `+key=value` adds a key)."""
    if name not in model_choices():
        raise ValueError(f"unknown model config {name!r}; pick one of: {', '.join(model_choices())}.")
    hydra_overrides = [f"+model={name}"]
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not of the form key=value (e.g. img_size=288).")
        prefix, key = ("+", key[1:]) if key.startswith("+") else ("", key)
        hydra_overrides.append(f"{prefix}{key if key.startswith('model.') else 'model.' + key}={value}")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
            return compose(config_name=None, overrides=hydra_overrides).model
    except (HydraException, OmegaConfBaseException) as error:
        raise ValueError(f"model config {name} with {list(overrides)}: {error}") from error
    finally:
        GlobalHydra.instance().clear()

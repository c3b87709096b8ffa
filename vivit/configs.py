"""The model configs of conf/model/ outside of train.py/eval.py (for the converter and FLOPs CLIs)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from omegaconf import DictConfig



def _conf_dir() -> Path:
    """conf/ of the installed package (a wheel ships it as vivit/conf), else the repository's (a clone, `-e`)."""
    installed = Path(__file__).resolve().parent / "conf"
    return installed if (installed / "train.yaml").is_file() else Path(__file__).resolve().parents[1] / "conf"


CONF_DIR = _conf_dir()


def model_names() -> list[str]:
    """Every model config: the files of conf/model/ (size/ and variant/ hold parts, not models)."""
    return sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


def compose_model_config(name: str, overrides: Sequence[str] = (), num_classes: int | None = None) -> DictConfig:
    """conf/model/<name>.yaml composed by Hydra, unresolved, with `key=value` overrides of its keys.

    Overrides use Hydra's syntax, with or without the `model.` prefix (`img_size=288`, `+key=value` adds a key).
    Model configs read `num_classes: ${data.num_classes}`: `num_classes` supplies it; without it the
    interpolation stays until a `num_classes=...` override or a data config fills it.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if name not in model_names():
        raise ValueError(f"unknown model config {name!r}: there is no {CONF_DIR / 'model' / (name + '.yaml')}. "
                         f"Pick one of: {', '.join(model_names())}.")
    hydra_overrides = [f"+model={name}"]
    if num_classes is not None:
        hydra_overrides.append(f"+data.num_classes={num_classes}")
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

"""Self-describing ViViT checkpoints: read and write them, and build a ready model from one.

Two kinds of file share one layout, so `eval.py`, `predict.py` and `vivit.load_checkpoint` take either:

- a `train.py` checkpoint (Lightning `.ckpt`): `state_dict` holds the LightningModule's weights, the backbone's
  under `net.`, and `vivit_config` the model and data configs of the run (vivit.weights.lightning writes it);
- a converted file (`python -m vivit.convert ...`, `.pt`): only `vivit_config` (model only) and `state_dict`.

    {"vivit_config": {"source": {"model": cfg, ...}, "resolved": {"model": cfg, ...},
                      "classes": [name, ...] or {head: [name, ...]}},
     "state_dict": {"net.<model parameter>": tensor, ...}}

"source" keeps interpolations (eval.py composes it with a data config); "resolved" is what the model was built with
(`num_classes` included); "classes" the class names in label order (one list per head for EPIC-KITCHENS' verb and
noun), so a checkpoint can answer with names (`vivit.predict`) without the dataset. Both kinds hold only tensors
and plain containers: they are read with `weights_only=True` (vivit.common.files), and the model they describe is
built from the model registry, never from an arbitrary `_target_`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from vivit.common.files import load_torch_file
from vivit.models import build_model

PREFIX = "net."  # the backbone's attribute in the LightningModule
VIDEO_CHECKPOINT_SUFFIXES = (".ckpt", ".pt")  # train.py's checkpoints and vivit.convert's files


def read_checkpoint(path: str | Path, trusted: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """The backbone's state dict (`net.` stripped) and the `vivit_config` (None if the file has none).

    Accepts a train.py `.ckpt`, a converted `.pt`, or a bare state dict with `net.` keys. `trusted=True` unpickles
    anything, for files of your own that hold other objects than tensors and plain containers.
    """
    return split_checkpoint(load_torch_file(path, trusted=trusted), path)


def split_checkpoint(checkpoint: Any, path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """`read_checkpoint` for a file already loaded: the backbone's state dict and the `vivit_config`."""
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"'{path}' does not hold a dict (got {type(checkpoint).__name__}).")
    backbone = backbone_weights(checkpoint)
    if not backbone:
        raise ValueError(
            f"'{path}' has no backbone weights (keys 'net.*' under 'state_dict'); it is not a train.py "
            "checkpoint or a file written by `python -m vivit.convert`."
        )
    return backbone, checkpoint.get("vivit_config")


def backbone_weights(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The `net.*` tensors of a checkpoint's `state_dict` (or of a bare state dict), without the prefix."""
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping):
        return {}
    return {k[len(PREFIX) :]: v for k, v in state.items() if isinstance(k, str) and k.startswith(PREFIX)}


def read_state_dict(path: str | Path, trusted: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of a plain weights file (.safetensors, or .pth/.bin/.pt of tensors and plain containers;
    `trusted=True`: of any pickled objects).

    Unwraps a `state_dict` or `model` entry and drops DDP's `module.` prefix.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_file(str(path))
    state = load_torch_file(path, mmap=True, trusted=trusted)
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise ValueError(f"'{path}' does not hold a state dict (got {type(state).__name__}).")
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def save_checkpoint(
    path: str | Path,
    state_dict: Mapping[str, torch.Tensor],
    model_cfg: Mapping[str, Any],
    resolved: Mapping[str, Any],
    classes: list[str] | Mapping[str, list[str]] | None = None,
) -> None:
    """Write a converted model in the train.py checkpoint layout (see the module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {"source": {"model": dict(model_cfg)}, "resolved": {"model": dict(resolved)}}
    if classes is not None:
        config["classes"] = plain_classes(classes)
    torch.save(
        {
            "vivit_config": config,
            "state_dict": {PREFIX + k: v.detach().clone().contiguous() for k, v in state_dict.items()},
        },
        path,
    )


def plain_classes(classes: Any) -> list[str] | dict[str, list[str]]:
    """Class names as plain lists (a dict of lists for several heads), as stored in `vivit_config["classes"]`."""
    if isinstance(classes, Mapping):
        return {str(head): [str(n) for n in names] for head, names in classes.items()}
    return [str(n) for n in classes]


def class_names(
    config: Mapping[str, Any] | None, num_classes: int | Mapping[str, int]
) -> list[str] | dict[str, list[str]]:
    """The checkpoint's class names, or "class N" placeholders for a file made before names were stored."""
    names = (config or {}).get("classes")
    if names is not None:
        return names
    if isinstance(num_classes, Mapping):
        return {head: [f"{head} {i}" for i in range(n)] for head, n in num_classes.items()}
    return [f"class {i}" for i in range(int(num_classes))]


def saved_model_config(config: Mapping[str, Any] | None, path: str | Path) -> dict[str, Any]:
    """The resolved model config a checkpoint was made with, or a ValueError saying the file has none."""
    model = ((config or {}).get("resolved") or {}).get("model")
    if not model:
        raise ValueError(
            f"'{path}' holds no model config (vivit_config.resolved.model); build the model yourself and "
            "load the 'net.*' weights, or re-create the file with train.py / `python -m vivit.convert`."
        )
    return dict(model)


def build_saved_model(config: Mapping[str, Any] | None, path: str | Path) -> nn.Module:
    """The model a checkpoint's config describes, built from the model registry; a config that names anything
    else (or a key its class does not take) is a ValueError naming the file and the key."""
    try:
        return build_model(saved_model_config(config, path))
    except ValueError as error:
        message = str(error)
        if message.startswith(f"'{path}'"):
            raise
        where = "vivit_config.resolved." + ("model." if message.startswith("_target_") else "")
        raise ValueError(f"'{path}': {where}{message}") from error


def load_checkpoint(path: str | Path, trusted: bool = False) -> nn.Module:
    """A ready model (eval mode, on the CPU) from a train.py checkpoint or a converted file.

    The model is built from `vivit_config["resolved"]["model"]` (a class of the model registry, never another
    `_target_`) and its weights are loaded strictly. The file is read with `weights_only=True`; `trusted=True`
    allows files of your own that pickle other objects (see `read_checkpoint`).
    """
    state, config = read_checkpoint(path, trusted)
    model = build_saved_model(config, path)
    model.load_state_dict(state)
    return model.eval()

"""The Lightning side of checkpoints: written atomically, and self-describing (the run's model and data configs and
the class names travel in every checkpoint, vivit.weights.checkpoint)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf

from vivit.common.files import atomic_path
from vivit.models.registry import INIT_KEYS

from .checkpoint import plain_classes


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, but through a temporary file: an interrupted save (a full disk, a kill)
    leaves the previous `last.ckpt` whole and loadable. Lightning's own writer serialises to memory first but
    then writes the target in place, so a write that fails part way truncates it. The trainer's default plugin
    (conf/trainer/default.yaml)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options (got {storage_options!r})")
        if "://" in str(path):  # a remote filesystem (s3://...): fsspec's own transaction, as Lightning does
            return super().save_checkpoint(checkpoint, path, storage_options)
        with atomic_path(path) as tmp, tmp.open("wb") as f:
            torch.save(checkpoint, f)
        return None


def run_config(cfg: DictConfig, num_classes: Any, test_views: str) -> dict[str, Any]:
    """What a checkpoint keeps of a run's config: model and data, unresolved (for eval.py) and resolved, with what
    the data decided (the number of classes, the test views) in the resolved configs."""
    source = {key: OmegaConf.to_container(cfg[key], resolve=False) for key in ("model", "data")}
    resolved = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("model", "data")}
    for key in INIT_KEYS:  # how the weights were initialised is history: keep the value, not its interpolation
        if key in source["model"]:
            source["model"][key] = resolved["model"][key]
    resolved["model"]["num_classes"] = num_classes
    for data in (source["data"], resolved["data"]):
        data.update(num_classes=num_classes, test_views=test_views)
    return {"source": source, "resolved": resolved}


class SelfDescribingCheckpoints(L.Callback):
    """Writes `vivit_config` (`run_config` and the data's class names in label order) into every checkpoint."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        classes = plain_classes(trainer.datamodule.index.classes)  # checkpoints answer with names
        checkpoint["vivit_config"] = {**self.config, "classes": classes}

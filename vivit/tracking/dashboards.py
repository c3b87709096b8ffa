"""What every logger gets beyond the metrics: the resolved config, and on W&B the model's size and cost and the
final test's evaluation outputs.

CSV and TensorBoard get the config as hparams (csv/hparams.yaml, TensorBoard's HPARAMS tab); W&B as its run config
(the Overview's Config table, filterable across runs), plus `model/params` and `model/gflops_per_view` counted
as `python -m vivit.flops` counts them (the paper's convention). At the final test W&B gets the files that
vivit.evaluation wrote into the run folder (so csv/tensorboard/none users have the same): the confusion image,
the per-class and worst-classes tables and the sample clips with their true and predicted labels.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
import wandb
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from vivit.datamodules.sampling import parse_views


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The run's config as plain containers, interpolations resolved (Hydra's own node left out)."""
    return {
        key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
        for key in cfg
        if key != "hydra"
    }


def model_summary(stats: Mapping[str, Any]) -> dict[str, float]:
    """The model's size and cost as W&B config entries (`stats` of vivit.models.flops.model_stats)."""
    return {
        "model/params": stats["params"],
        "model/params_m": round(stats["params_m"], 4),
        "model/gflops_per_view": round(stats["gflops"], 5),
        "model/tokens": stats["tokens"],
    }


def log_run_config(loggers: Sequence[Logger], config: Mapping[str, Any], stats: Mapping[str, Any]) -> None:
    """Hand the run's resolved config (`resolved_config`, with what the data decided) to every logger, and to W&B
    the model's parameters and GFLOPs (`stats`) per view and per test video (T clips x S crops)."""
    if not loggers or rank_zero_only.rank != 0:  # other DDP ranks hold placeholder experiments
        return
    test_views = config["data"]["test_views"]
    for logger in loggers:
        logger.log_hyperparams(config)
        if isinstance(logger, WandbLogger):
            summary = model_summary(stats)
            clips, crops = parse_views(test_views)  # a test video costs one clip's GFLOPs per view
            summary["model/gflops_per_test_video"] = round(summary["model/gflops_per_view"] * clips * crops, 5)
            logger.experiment.config.update(summary, allow_val_change=True)


def _cell(text: str) -> int | float | str | None:
    """A CSV cell as the number it holds, so W&B sorts and plots the column (empty: no value)."""
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _read_csv(path: Path) -> tuple[list[str], list[list[Any]]]:
    with Path(path).open(newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], [[_cell(text) for text in row] for row in rows[1:]]


def sample_caption(caption: dict[str, str]) -> str:
    """`video | true: X | predicted: Y (p%)` (per head for several heads)."""
    return " | ".join([caption["video"], *(f"{k}: {v}" for k, v in caption.items() if k != "video")])


def log_test_outputs(loggers: Sequence[Logger], split: str, files: Sequence[str], samples: Sequence[dict]) -> None:
    """Upload the final test's files to W&B under `<split>/...`: `confusion[_<head>]` (image),
    `per_class[_<head>]` and `worst_classes[_<head>]` (tables), `samples` (frame strips captioned with the video and
    its true and predicted classes)."""
    wandb_loggers = [logger for logger in loggers if isinstance(logger, WandbLogger)]
    if not wandb_loggers or rank_zero_only.rank != 0:
        return
    payload: dict[str, Any] = {}
    for file in map(Path, files):
        for kind in ("confusion", "per_class", "worst_classes"):
            prefix = f"{kind}_{split}"
            if file.stem == prefix or file.stem.startswith(prefix + "_"):
                key = f"{split}/{kind}{file.stem[len(prefix) :]}"
                if file.suffix == ".png":
                    payload[key] = wandb.Image(str(file))
                elif file.suffix == ".csv":
                    columns, rows = _read_csv(file)
                    payload[key] = wandb.Table(columns=columns, data=rows)
    if samples:  # a gallery of frame strips, each captioned with its video and the true and predicted classes
        payload[f"{split}/samples"] = [
            wandb.Image(sample["frames"], caption=sample_caption(sample["caption"])) for sample in samples
        ]
    for logger in wandb_loggers:
        logger.experiment.log(payload)


class Throughput(L.Callback):
    """Clips per second of training, validation and test (this process's batches, data loading included), and
    on a GPU the peak memory, logged once per epoch as `perf/<stage>_clips_per_s` and `perf/gpu_mem_gb`."""

    def __init__(self) -> None:
        self.clips = {stage: 0 for stage in ("train", "val", "test")}
        self.seconds = {stage: 0.0 for stage in self.clips}
        self.last: float | None = None

    def _step(self, stage: str, batch: Any) -> None:
        now = time.perf_counter()
        if self.last is not None:  # from the end of the previous batch: data loading counts
            self.seconds[stage] += now - self.last
            self.clips[stage] += int(batch["video"].shape[0])
        self.last = now

    def _log(self, pl_module: L.LightningModule, stage: str) -> None:
        if self.seconds[stage] > 0 and not pl_module.trainer.sanity_checking:
            pl_module.log(f"perf/{stage}_clips_per_s", self.clips[stage] / self.seconds[stage])
            if pl_module.device.type == "cuda":
                pl_module.log("perf/gpu_mem_gb", torch.cuda.max_memory_allocated(pl_module.device) / 2**30)
        self.clips[stage], self.seconds[stage] = 0, 0.0

    def _reset(self, *args: Any) -> None:
        self.last = time.perf_counter()

    on_train_epoch_start = on_validation_epoch_start = on_test_epoch_start = _reset

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, *_: Any
    ) -> None:
        self._step("train", batch)

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, *_: Any
    ) -> None:
        self._step("val", batch)

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, *_: Any
    ) -> None:
        self._step("test", batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(pl_module, "val")
        self.last = time.perf_counter()  # training resumes after validation: not its time

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(pl_module, "train")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(pl_module, "test")

"""What a run prints: the project's own lines, without library tips and deprecation noise, readable when piped.

- `quiet_libraries()` drops Lightning's advertising tips ("💡 Tip: ... litlogger / litmodels"), its
  "`weights_only` was not set" notice, and deprecation warnings raised inside the libraries (not actionable
  here; `python -W default train.py ...` or PYTHONWARNINGS shows them again).
- Lightning's model summary is off (conf/trainer/default.yaml: its FLOPs column reads 0 for this model);
  `model_line` prints parameters and GFLOPs per view as `python -m vivit.flops` counts them.
- Notices the user cannot act on are dropped too: Lightning's "fewer training batches than log_every_n_steps"
  hint (the step counter runs across epochs, so step metrics are logged anyway), its "TPU available" line and
  "Loading `train_dataloader` to estimate number of stepping batches".
- `print_summary` ends a run with a results table (split x metric), the views each split was scored with and
  where its files are.
- `progress_bar()` is Rich's bar on a terminal; elsewhere (a log file, a pipe, a scheduler's capture, where a live
  bar shows nothing until it ends) `ProgressLines`: a line every `every_s` seconds (epoch, step, loss, clips/s,
  ETA) and one per epoch with its metrics.
- Output that is not a terminal gets wide lines (`PIPED_WIDTH`) instead of rich's 80 columns, so paths and
  metric rows are never wrapped in the middle of a name.
- Epochs are numbered from 0 everywhere: the progress bar ("Epoch 1/1" is the second of two), checkpoint names
  (epoch001-...), history.json and the x axis of curves.png, as Lightning's `current_epoch`.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from rich.console import Console
from rich.table import Table
from torch import nn

from vivit.datamodules.sampling import parse_views

PIPED_WIDTH = 240
LIBRARIES = "(lightning|lightning_fabric|lightning_utilities|torch|torchvision|torchmetrics|timm|hydra|omegaconf|wandb)"
# (logger, start of the message) of library notices that say nothing about this run
NOTICES = (
    ("lightning.pytorch.utilities.rank_zero", "💡 Tip:"),
    ("lightning.pytorch.utilities.rank_zero", "TPU available:"),
    ("lightning.pytorch.utilities.rank_zero", "Loading `train_dataloader` to estimate number of stepping batches"),
    ("lightning.pytorch.trainer.connectors.checkpoint_connector", "`weights_only` was not set"),
)
# warnings (message regex) that say nothing the user can act on
QUIET_WARNINGS = (
    r"The number of training batches \(\d+\) is smaller than the logging interval",
    # run folders are never shared (vivit/runtime/runs.py): a checkpoint folder that is not empty is a resume's
    r"Checkpoint directory .* exists and is not empty",
)


class _DropNotice(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def quiet_libraries() -> None:
    """Install the filters (idempotent)."""
    for name, prefix in NOTICES:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNotice) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_DropNotice(prefix))
    if not sys.warnoptions:  # the user asked for warnings (-W, PYTHONWARNINGS): leave them alone
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category, module=rf"{LIBRARIES}(\.|$)")
        for message in QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message)


def piped_console_kwargs() -> dict[str, Any]:
    """rich Console arguments: a wide fixed width when stdout is not a terminal, else rich's own detection."""
    return {} if sys.stdout.isatty() else {"width": PIPED_WIDTH}


def progress_bar(every_s: float = 30.0, **rich_kwargs: Any) -> ProgressBar:
    """Lightning's Rich bar on a terminal, else `ProgressLines(every_s)` (conf/callbacks/rich_progress_bar.yaml)."""
    if sys.stdout.isatty():
        return RichProgressBar(**rich_kwargs)
    return ProgressLines(every_s)


class ProgressLines(ProgressBar):
    """Progress for output that is not a terminal: while a loop runs, a line every `every_s` seconds

        epoch 3/29  step 120/960  loss 1.234  32.5 clips/s  ETA 0:08:15

    (epochs numbered from 0 as Lightning's bar; steps are optimiser steps of the whole fit; the ETA is the rest of
    the fit at the pace so far, validation included), and at each epoch's end a line with its metrics. Long
    validation and test passes report the same way, per video."""

    def __init__(self, every_s: float = 30.0) -> None:
        super().__init__()
        self.every_s = float(every_s)
        self._enabled = True
        self._fit_began = 0.0
        self._first_step = 0
        self._epoch_began = 0.0
        self._last_line = 0.0
        self._items = 0  # clips (train) or videos (evaluation) since the last line
        self._evaluation_began = 0.0
        self._evaluated_batches = 0

    def disable(self) -> None:  # Lightning disables the bar on every rank but 0
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    # -------------------------------------------------------------------------------------------- training
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_began = time.monotonic()
        self._first_step = trainer.global_step  # a resumed run's pace counts from where it started

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_began = self._last_line = time.monotonic()
        self._items = 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, *_
    ) -> None:
        self._items += batch_items(batch)
        if not self._enabled or time.monotonic() - self._last_line < self.every_s:
            return
        loss = self.get_metrics(trainer, pl_module).get("train/loss_step")
        parts = [
            f"epoch {trainer.current_epoch}/{_last_epoch(trainer)}",
            f"step {trainer.global_step}/{_total(trainer.estimated_stepping_batches)}",
            *([f"loss {float(loss):.4g}"] if loss is not None else []),
            f"{self._pace():.1f} clips/s",
            f"ETA {self._fit_eta(trainer)}",
        ]
        self._say("  ".join(parts))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._enabled:
            return
        metrics = {k: v for k, v in self.get_metrics(trainer, pl_module).items() if k != "v_num"}
        shown = "  ".join(f"{k} {_number(v)}" for k, v in sorted(metrics.items()))
        took = _duration(time.monotonic() - self._epoch_began)
        epoch = f"epoch {trainer.current_epoch}/{_last_epoch(trainer)}"
        self._say(f"{epoch} done in {took}  {shown}  ETA {self._fit_eta(trainer)}")

    # -------------------------------------------------------------------------------------------- evaluation
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._evaluation_starts()

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._evaluation_starts()

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, *_):
        if not trainer.sanity_checking:
            self._evaluation_batch("validation", batch, trainer.num_val_batches)

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, *_):
        self._evaluation_batch("test", batch, trainer.num_test_batches)

    def _evaluation_starts(self) -> None:
        self._evaluation_began = self._last_line = time.monotonic()
        self._items = self._evaluated_batches = 0

    def _evaluation_batch(self, name: str, batch: Any, totals: list[int | float]) -> None:
        self._items += batch_items(batch)
        self._evaluated_batches += 1
        if not self._enabled or time.monotonic() - self._last_line < self.every_s:
            return
        done, total = self._evaluated_batches, sum(totals) if totals else float("inf")
        elapsed = time.monotonic() - self._evaluation_began
        eta = _duration(elapsed * (total - done) / done) if done and total != float("inf") else "?"
        self._say(f"{name}  batch {done}/{_total(total)}  {self._pace():.1f} videos/s  ETA {eta}")

    # -------------------------------------------------------------------------------------------- helpers
    def _pace(self) -> float:
        """Items per second since the last line (or the start of the loop)."""
        return self._items / max(time.monotonic() - self._last_line, 1e-9)

    def _say(self, line: str) -> None:
        print(line, flush=True)
        self._last_line = time.monotonic()
        self._items = 0

    def _fit_eta(self, trainer: L.Trainer) -> str:
        """The rest of the fit at this run's pace so far ("?" before the first step or for an open-ended fit)."""
        total, done = trainer.estimated_stepping_batches, trainer.global_step - self._first_step
        if done <= 0 or total == float("inf"):
            return "?"
        elapsed = time.monotonic() - self._fit_began
        return _duration(elapsed * max(total - trainer.global_step, 0) / done)


def batch_items(batch: Any) -> int:
    """Clips (videos at test time) in a batch of vivit.datamodules: the first dimension of its `video`."""
    video = batch.get("video") if isinstance(batch, Mapping) else None
    return int(video.shape[0]) if video is not None else 0


def _last_epoch(trainer: L.Trainer) -> str:
    return "?" if trainer.max_epochs is None or trainer.max_epochs < 0 else str(trainer.max_epochs - 1)


def _total(value: int | float) -> str:
    return "?" if value == float("inf") else str(int(value))


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


def _number(value: Any) -> str:
    return f"{float(value):.4g}" if isinstance(value, int | float) or hasattr(value, "item") else str(value)


def model_line(net: nn.Module, stats: Mapping[str, Any]) -> str:
    """One line instead of Lightning's model summary: the class, parameters and GFLOPs per view (`stats` of
    vivit.models.flops: the paper's multiply-add convention, as `python -m vivit.flops` counts them)."""
    params = sum(p.numel() for p in net.parameters())
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    return (
        f"model: {type(net).__name__}, {params / 1e6:.3g} M parameters ({trainable / 1e6:.3g} M trainable), "
        f"{stats['gflops']:.3g} GFLOPs per view ({stats['num_frames']} frames x {stats['img_size']} px, "
        f"{stats['tokens']} tokens)"
    )


def views_line(views: Mapping[str, str]) -> str:
    """What each split was scored with, e.g. "val 1x1 (the centre clip), test 4x3 (4 clips x 3 crops, mean of
    the logits)"; `views`: split -> "TxS" (vivit.tasks)."""
    described = []
    for split, txs in views.items():
        clips, crops = parse_views(str(txs))
        if clips * crops == 1:
            what = "the centre clip, centre crop"
        else:
            what = f"{clips} clip{'s' * (clips > 1)} x {crops} crop{'s' * (crops > 1)}, mean of the logits"
        described.append(f"{split} {txs} ({what})")
    return ", ".join(described)


def print_summary(summary: Mapping[str, Any]) -> None:
    """A results table (split x metric) and where the run's files are."""
    splits = [s for s in ("val", "test") if s in summary]
    names = sorted({k.split("/", 1)[1] for s in splits for k in summary[s] if k.startswith(f"{s}/")})
    table = Table(title="Results")
    table.add_column("metric")
    for split in splits:
        table.add_column(split, justify="right")
    for name in names:
        cells = []
        for split in splits:
            value = summary[split].get(f"{split}/{name}")
            is_accuracy = "top" in name
            cells.append(
                ""
                if value is None
                else f"{100 * value:.2f}%"
                if is_accuracy
                else f"{int(value)}"
                if name == "unreadable"
                else f"{value:.4f}"
            )
        table.add_row(name, *cells)
    console = Console(**piped_console_kwargs())
    console.print(table)
    if summary.get("views"):
        console.print(f"views:      {views_line(summary['views'])}", soft_wrap=True, highlight=False)
    unreadable = {split: counts for split, counts in (summary.get("unreadable") or {}).items() if any(counts)}
    if unreadable:  # per split, one number per pass (epoch) over it
        console.print("unreadable videos per pass: " + ", ".join(f"{k} {v}" for k, v in unreadable.items()))
    if "test_best" in summary:
        best = {k.split("/", 1)[1]: v for k, v in summary["test_best"].items() if "top" in k}
        console.print(
            "best-by-val checkpoint on test (not the reported number): "
            + ", ".join(f"{k} {100 * v:.2f}%" for k, v in sorted(best.items()))
        )
    if summary.get("checkpoint"):
        console.print(f"checkpoint: {summary['checkpoint']}", soft_wrap=True, highlight=False)
    console.print(f"outputs:    {summary['output_dir']}", soft_wrap=True, highlight=False)

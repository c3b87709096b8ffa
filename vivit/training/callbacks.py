"""Callbacks of a training run: the curves people would rather look at than read, the `last.ckpt` a run resumes
from, and the count of unreadable videos per pass."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from matplotlib.figure import Figure

from vivit.common.files import atomic_path, write_atomically
from vivit.evaluation.split import settle_logged

log = logging.getLogger(__name__)
STAGES = ("train", "val", "test")


class TrainingCurves(L.Callback):
    """Keeps the per-epoch metrics in `history.json` and plots them into `curves.png` (loss and accuracy)."""

    def __init__(self, output_dir: str) -> None:
        self.output_dir = Path(output_dir)
        self.history: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # runs after the epoch's validation, so train and val metrics of the same epoch are both there
        if trainer.fast_dev_run:
            return
        row = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        for key, value in trainer.callback_metrics.items():
            if key.startswith("lr-"):  # LearningRateMonitor's, set only when a batch of this fit ran: see below
                continue
            if isinstance(value, torch.Tensor) and value.numel() == 1 and not key.endswith("_step"):
                row[key.removesuffix("_epoch")] = float(value)
        # the learning rates at the epoch's end, from the optimisers themselves: a run resumed from a checkpoint
        # saved at validation end replays this hook before any batch, when the monitor has logged nothing yet
        for optimizer in trainer.optimizers:
            for i, group in enumerate(optimizer.param_groups):
                row[f"lr-{type(optimizer).__name__}/pg{i + 1}"] = float(group["lr"])
        if self.history and self.history[-1]["epoch"] == row["epoch"]:
            # resumed from this epoch's end: Lightning runs the epoch-end hooks once more
            self.history[-1] = row
        else:
            self.history.append(row)

    def state_dict(self) -> dict[str, Any]:
        # in the checkpoint, so a resumed run appends to the epochs before it (history.json, curves.png)
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.on_fit_end(trainer, pl_module)  # an interrupted run keeps the epochs it finished

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.history or not trainer.is_global_zero:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(self.output_dir / "history.json", json.dumps(self.history, indent=1))
        plot_curves(self.history, self.output_dir / "curves.png")


def plot_curves(history: list[dict[str, float]], path: Path) -> None:
    """Two panels: losses and top-1 accuracies against epochs."""
    epochs = [row["epoch"] for row in history]  # from 0, as the progress bar, checkpoint names and history.json
    keys = sorted({k for row in history for k in row} - {"epoch", "step"})
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    for key in keys:
        values = [row.get(key, float("nan")) for row in history]
        if key.endswith("loss"):
            ax_loss.plot(epochs, values, marker=".", label=key)
        elif "top1" in key:
            ax_acc.plot(epochs, [100 * v for v in values], marker=".", label=key)
    ax_loss.set(xlabel="epoch (from 0)", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch (from 0)", ylabel="%", title="top-1 accuracy", ylim=(0, 100))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")


class LastCheckpoint(L.pytorch.callbacks.Checkpoint):
    """`last.ckpt` = the latest state: written at every training epoch end and when the run is interrupted
    (SIGTERM, SLURM's timeout signal, Ctrl+C), so resuming from it never repeats an epoch.

    Lightning's `ModelCheckpoint(save_last=True)` refreshes `last.ckpt` only when it also writes a top-k file,
    so with `save_top_k=1` it stays at the best epoch. Being a `Checkpoint`, this callback runs after the other
    callbacks (Lightning orders checkpoint callbacks last): the best score and the history of the epoch it saves
    are already up to date.
    """

    FILENAME = "last.ckpt"

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)

    @property
    def path(self) -> Path:
        return self.dirpath / self.FILENAME

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.fast_dev_run and not trainer.sanity_checking:
            trainer.save_checkpoint(self.path)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # only interruptions: a bug's state is not worth resuming from, and it keeps the previous epoch's file
        if isinstance(exception, (SIGTERMException, KeyboardInterrupt)) and not trainer.fast_dev_run:
            trainer.save_checkpoint(self.path)
            log.warning(
                "interrupted: saved a resumable checkpoint at epoch %d, step %d: %s",
                trainer.current_epoch,
                trainer.global_step,
                self.path,
            )


class UnreadableVideos(L.Callback):
    """Unreadable videos per pass (epoch) over each split, summed over ranks: logged as `<split>/unreadable` (so
    validate/test results, metrics.json and the results table carry it) and kept per pass in `counts`, which a
    resumed run continues from its checkpoint. Training items say how many unreadable videos were replaced to make
    them (`unreadable`); evaluation items are `valid=False` when their video could not be read."""

    CHECKPOINT_KEY = "vivit_unreadable_counts"

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = {stage: [] for stage in STAGES}
        self._pass: dict[str, Any] = {stage: 0 for stage in STAGES}  # this rank's count (a tensor on the device)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, *_: Any
    ) -> None:
        if "unreadable" in batch:
            self._pass["train"] = self._pass["train"] + batch["unreadable"].sum()

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, *_: Any
    ) -> None:
        if "valid" in batch:
            self._pass["val"] = self._pass["val"] + (~batch["valid"]).sum()

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, *_: Any
    ) -> None:
        if "valid" in batch:
            self._pass["test"] = self._pass["test"] + (~batch["valid"]).sum()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end_pass(trainer, pl_module, "train")

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end_pass(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._end_pass(trainer, pl_module, "test")

    def _end_pass(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        local, self._pass[stage] = self._pass[stage], 0
        settle_logged(trainer)  # before the sum over ranks below: one order of collectives on every rank
        local = torch.as_tensor(local, device=pl_module.device, dtype=torch.float32)
        count = int(trainer.strategy.reduce(local, reduce_op="sum"))
        if trainer.sanity_checking:
            return
        self.counts[stage].append(count)
        if count and trainer.is_global_zero:
            log.warning("%d unreadable %s videos in this pass (see the warnings above for their paths)", count, stage)
        # summed over ranks already: the same on every rank, so "max" is the value (and Lightning's DDP hint is quiet)
        pl_module.log(
            f"{stage}/unreadable", float(count), on_step=False, on_epoch=True, sync_dist=True, reduce_fx="max"
        )

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[self.CHECKPOINT_KEY] = self.counts

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        # only a resumed fit continues the counts; testing the best-by-val checkpoint after fitting (test_best)
        # loads that epoch's checkpoint too, and must not take the passes since then back
        if trainer.state.fn == TrainerFn.FITTING and self.CHECKPOINT_KEY in checkpoint:
            self.counts = {stage: list(checkpoint[self.CHECKPOINT_KEY].get(stage, [])) for stage in STAGES}

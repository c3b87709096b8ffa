"""Stopping on a signal, all ranks together: one decision, one agreed step, one checkpoint, one exit code.

Lightning's own handlers run collectives inside the signal handler (SIGTERM: a broadcast from rank 0; SLURM's
SIGUSR1: `save_checkpoint`, whose barrier is a collective) and let each rank stop on its own flag at the end of a
batch. With several ranks, a handler's collective meets another collective of a rank that is elsewhere: the job
hangs (about 1 requeue in 4 with two tasks) or the ranks stop at different steps and exit with different codes.

Here a handler only notes the signal. Before every training batch that starts an accumulation cycle, each rank
adds what it noted to one all-reduce (MAX over the ranks), the same collective at the same step on every rank:
all ranks see the same answer at the same batch and stop there together, by raising `SIGTERMException` from the
hook. Lightning then runs `on_exception` everywhere (`LastCheckpoint` saves `last.ckpt` with the position of the
last finished batch: the batch just fetched is not counted, vivit.datamodules.datamodule) and `fit` raises on
every rank; vivit.tasks.train turns that into `Preempted` (exit 143) and, for SLURM's requeue signal, rank 0 alone
runs `scontrol requeue` once.

The handlers are installed before `fit` (so Lightning leaves the requeue signal alone and keeps them as the
process's own) and again when training starts, over Lightning's SIGTERM handler.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class AgreedStop(L.Callback):
    """Notes SIGTERM and the requeue signal; all ranks stop at the first batch where any rank has noted one."""

    def __init__(self) -> None:
        self.requeue_signal: int | None = None  # the signal that also asks for a requeue (SLURM's), if any
        self.noted = {"stop": False, "requeue": False}  # this rank's, since install()
        self.agreed = {"stop": False, "requeue": False}  # all ranks', at the last agreement
        self._previous: dict[int, Any] = {}

    # -- signals -------------------------------------------------------------------------------------
    def install(self, requeue_signal: int | None, stop_signals: tuple[int, ...] = (signal.SIGTERM,)) -> None:
        """Handle `stop_signals` (stop) and `requeue_signal` (stop, then requeue) by noting them only."""
        self.requeue_signal = requeue_signal
        self._signals = tuple(s for s in (*stop_signals, requeue_signal) if s is not None)
        for signum in self._signals:
            previous = signal.signal(signum, self._note)
            self._previous.setdefault(signum, previous)

    def restore(self) -> None:
        """The handlers from before `install` (a sweep's next job in this process starts clean)."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    def ignore_further(self) -> None:
        """Once the run stops: the same signals arriving later (SLURM's SIGTERM after a requeue, another rank's
        SIGUSR1 landing after the agreed stop) are ignored. A Python handler would not do: the interpreter puts the
        default action back while it shuts down, and SIGUSR1's default would end the rank with another status."""
        for signum in self._signals:
            signal.signal(signum, signal.SIG_IGN)

    def _note(self, signum: int, frame: Any) -> None:
        # no collective, no I/O that could block: the hook below acts on it at the next agreed step
        self.noted["stop"] = True
        if signum == self.requeue_signal:
            self.noted["requeue"] = True

    # -- the agreed step -----------------------------------------------------------------------------
    def agree(self, trainer: L.Trainer) -> dict[str, bool]:
        """What the ranks noted, the same answer on every rank (an all-reduce; every rank must call it)."""
        noted = torch.tensor([self.noted["stop"], self.noted["requeue"]], dtype=torch.int32)
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            noted = noted.to(trainer.strategy.root_device)
            torch.distributed.all_reduce(noted, op=torch.distributed.ReduceOp.MAX)
        stop, requeue = (bool(v) for v in noted.tolist())
        self.agreed = {"stop": stop, "requeue": requeue}
        return self.agreed

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning registered its SIGTERM handler after fit began: ours again, over it
        if self._previous:
            for signum in self._signals:
                signal.signal(signum, self._note)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx % max(1, trainer.accumulate_grad_batches):  # inside an accumulation cycle: its gradients
            return
        if self.agree(trainer)["stop"]:
            log.warning(
                "stopping on a signal at epoch %d, step %d (all ranks at this batch)",
                trainer.current_epoch,
                trainer.global_step,
            )
            raise SIGTERMException

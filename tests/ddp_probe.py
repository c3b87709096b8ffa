"""Test instrumentation loaded into train.py runs with `+callbacks.probe._target_=tests.ddp_probe.Probe`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import lightning as L

import vivit.training.module


class Probe(L.Callback):
    """Writes, per rank, its pid, the training sample indices and the mixup lambdas it drew: probe_rank<r>.json.

    `crash_rank`: that rank dies after its first training batch, alone: it raises (`crash_how=raise`) or is killed
    by SIGKILL (`kill`: the out-of-memory killer, a lost node); `before_rendezvous`: it exits while being built."""

    def __init__(self, output_dir: str, crash_rank: int | None = None, crash_how: str = "raise") -> None:
        self.output_dir, self.crash_rank, self.crash_how = Path(output_dir), crash_rank, crash_how
        if crash_how == "before_rendezvous" and os.environ.get("LOCAL_RANK") == str(crash_rank):
            os._exit(3)  # an extra rank that fails while its job is built, before the process group exists
        self.indices: list[int] = []
        self.seed: int | None = None
        self.lambdas: list[float] = []
        mixup = vivit.training.module.mixup

        def recording_mixup(video, targets, alpha):
            mixed, mixed_targets = mixup(video, targets, alpha)
            # mixed = lam * video + (1 - lam) * video.flip(0): lam from the element where the two differ most
            diff = (video - video.flip(0)).flatten()
            j = int(diff.abs().argmax())
            self.lambdas.append(float((mixed.flatten()[j] - video.flip(0).flatten()[j]) / diff[j]))
            return mixed, mixed_targets

        vivit.training.module.mixup = recording_mixup

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.indices += batch["index"].tolist()
        if self.crash_rank == trainer.global_rank and batch_idx == 1:
            if self.crash_how == "kill":
                import signal

                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError(f"probe: rank {trainer.global_rank} crashes on purpose")

    def on_train_start(self, trainer, pl_module) -> None:
        # the seed the rank's generators were last seeded with (RankSeed: seed + rank); unlike the draws themselves,
        # it does not depend on how much randomness each rank's own samples consumed
        import torch

        self.seed = torch.initial_seed()

    def on_train_end(self, trainer, pl_module) -> None:
        self._write(trainer)

    def on_fit_start(self, trainer, pl_module) -> None:
        self._write(trainer)  # the pid is known even if the run dies later

    def _write(self, trainer) -> None:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "pid": os.getpid(),
            "world_size": trainer.world_size,
            "indices": self.indices,
            "lambdas": self.lambdas,
            "seed": self.seed,
        }
        (self.output_dir / f"probe_rank{trainer.global_rank}.json").write_text(json.dumps(record))


class SignalAtEpochEnd(L.Callback):
    """Sends `signum` (a name, e.g. SIGUSR1) to this process at the end of training epoch `epoch` on rank 0: SLURM's
    timeout signal. Writes signal_sent.json so a test can tell the attempt that got it."""

    def __init__(self, output_dir: str, signum: str = "SIGUSR1", epoch: int = 0) -> None:
        self.output_dir, self.signum, self.epoch = Path(output_dir), signum, epoch

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch and trainer.is_global_zero:
            import signal

            (self.output_dir / "signal_sent.json").write_text(json.dumps({"epoch": self.epoch, "pid": os.getpid()}))
            os.kill(os.getpid(), getattr(signal, self.signum))


class SignalAtBatch(L.Callback):
    """Sends `signum` to this process (every rank, or `rank` only) at the end of training batch `batch` of epoch
    `epoch`: a preemption in the middle of an epoch, at a known step."""

    def __init__(self, signum: str = "SIGTERM", epoch: int = 0, batch: int = 0, rank: int | None = None) -> None:
        self.signum, self.epoch, self.batch, self.rank = signum, epoch, batch, rank

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        chosen = self.rank is None or self.rank == trainer.global_rank
        if chosen and (trainer.current_epoch, batch_idx) == (self.epoch, self.batch):
            import signal

            os.kill(os.getpid(), getattr(signal, self.signum))

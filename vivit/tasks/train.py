"""`python train.py` (console: vivit-train): fit, then validate and test the final model (scenic's protocol).

The summary (metrics.json and the results table) holds the validation and test results of the final weights
(`last.ckpt`) with their whole-split metrics (vivit.evaluation.split: mean per-class accuracy, a dataset's own
breakdown), the files both evaluations wrote (per-class and worst-classes CSVs, confusion figures, sample clips, for
`val` and `test`), and the unreadable videos per pass.
`test_best=true` also tests the best-by-val checkpoint, under `test_best/...`, where validation and test are
different data (elsewhere that would be model selection on the reported split, so it is skipped).
"""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from vivit.common.files import write_atomically
from vivit.runtime import preflight
from vivit.runtime.errors import Preempted
from vivit.runtime.resume import is_continuation, record_continuation, resume_arguments, resume_command
from vivit.runtime.slurm import requeue_job, requeue_signal, restart_count
from vivit.tracking.console import print_summary
from vivit.tracking.wandb import finish_wandb
from vivit.training.preemption import AgreedStop

from .build import Run, build
from .command import hydra_job, run_command

log = logging.getLogger(__name__)
VALIDATION_VIEWS = "1x1"  # validation scores the centre clip's centre crop (docs/protocol.md); tests: the views


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then validate and test the final model. Returns (and writes) the final metrics."""
    run = build(cfg, "fit")
    output_dir = Path(cfg.paths.output_dir)
    if HydraConfig.initialized() and is_continuation(output_dir, cfg.get("resume"), cfg.get("ckpt_path")):
        record_continuation(output_dir, list(HydraConfig.get().overrides.task))  # the run started: its record
    weights_only = not cfg.get("trusted", False)  # Lightning's own torch.load of the checkpoint
    try:
        trained = cfg.get("train", True)
        if trained:
            fit(run, cfg.get("ckpt_path") or requeued_checkpoint(run.trainer), weights_only)
        weights = final_weights(run.trainer) if trained else cfg.get("ckpt_path")
        summary: dict[str, Any] = {
            "output_dir": str(output_dir),
            "tested": "final model",
            "checkpoint": weights,  # the file validate and test loaded (None: the weights in memory)
            "init": cfg.model.get("init"),  # the weights training started from, init_per_job and folders resolved
        }
        summary["val"] = results(
            run.trainer.validate(
                run.module, datamodule=run.datamodule, ckpt_path=weights, verbose=False, weights_only=weights_only
            )
        )
        summary["views"] = {"val": VALIDATION_VIEWS}
        if cfg.get("test", True):
            summary["views"]["test"] = run.test_views
            summary["test"] = results(
                run.trainer.test(
                    run.module, datamodule=run.datamodule, ckpt_path=weights, verbose=False, weights_only=weights_only
                )
            )
            if cfg.get("test_best") and trained:
                summary.update(test_best(run))
        if run.evaluation.files:
            summary["files"] = run.evaluation.files
        summary["unreadable"] = run.unreadable.counts
        summary["tf32"] = run.tf32
    finally:
        finish_wandb()
    write_summary(summary, output_dir, run.trainer)
    return summary


job = hydra_job(train)  # what Hydra runs for each job of `train` (a SLURM sweep's launcher pickles it)


def check(cfg: DictConfig, output_key: str = "paths.output_dir") -> None:
    """train.py's checks before its run folder is made (vivit.runtime.preflight)."""
    preflight.check_before_work(cfg, "fit", output_key)


def main(root: str | Path | None = None) -> Any:
    """The command: `python train.py`, `vivit-train`, `python -m vivit.tasks.train` (vivit.tasks.command)."""
    return run_command("train", job, root, rewrite_argv=resume_arguments, check=check)


def results(outputs: list[dict[str, float]]) -> dict[str, float]:
    """What `trainer.validate/test` returned, as one flat dict of floats."""
    return {k: float(v) for r in outputs for k, v in r.items()}


def write_summary(summary: dict[str, Any], output_dir: Path, trainer: L.Trainer) -> None:
    """metrics.json in the run folder and the results table (rank 0)."""
    if not trainer.is_global_zero:
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(output_dir / "metrics.json", json.dumps(summary, indent=2))
    print_summary(summary)


# ------------------------------------------------------------------------------------------------ fit and preemption
def fit(run: Run, ckpt_path: str | None, weights_only: bool = True) -> None:
    """`trainer.fit`, stopped on SIGTERM / SIGUSR1 by all ranks at one agreed batch (vivit.training.preemption),
    which `fit` turns into `Preempted` (exit 143) on every rank. Under SLURM's auto-requeue SIGUSR1 (the
    environment's requeue signal) also requeues the job, once, from rank 0, after last.ckpt is saved. The
    checkpoint is read with `weights_only` (False only for `trusted=true`)."""
    trainer = run.trainer
    stop = agreed_stop(trainer)
    stop.install(requeue_signal(trainer), tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGUSR1", None)) if s))
    try:
        trainer.fit(run.module, datamodule=run.datamodule, ckpt_path=ckpt_path, weights_only=weights_only)
        stopped = stop.agree(trainer)["stop"]  # a signal during the last validation: no batch came after it
    except SIGTERMException:
        stopped = True
    except BaseException:
        stop.restore()
        raise
    if not stopped:
        stop.restore()
        return
    stop.ignore_further()  # every rank exits 143, whatever signal lands while it ends
    if (stop.agreed["requeue"] or stop.noted["requeue"]) and trainer.is_global_zero:
        requeue_job()
    last = last_checkpoint(trainer)
    where = f"continue it with: {resume_command(last)}" if last else "no checkpoint was saved"
    raise Preempted(f"stopped by a signal at epoch {trainer.current_epoch}, step {trainer.global_step}; {where}")


def agreed_stop(trainer: L.Trainer) -> AgreedStop:
    """The run's `AgreedStop` callback (vivit.tasks.build adds one to every trainer)."""
    return next(c for c in trainer.callbacks if isinstance(c, AgreedStop))


def requeued_checkpoint(trainer: L.Trainer) -> str | None:
    """A requeued SLURM job's own last.ckpt (its folder is the same on every attempt, vivit/runtime/slurm.py)."""
    if not restart_count():
        return None
    last = last_checkpoint(trainer)
    found = f"resuming from {last}" if last else "no last.ckpt in the job folder (Lightning takes its hpc_ckpt if any)"
    rank_zero_info(f"SLURM restart {restart_count()}: {found}")
    return last


def final_weights(trainer: L.Trainer) -> str | None:
    """The file validate/test load after fit: last.ckpt, named explicitly. With `ckpt_path=None` Lightning loads
    the newest `hpc_ckpt_*.ckpt` of the folder whenever it runs under SLURM (a requeued job's weights from before
    its preemption), not the weights in memory. None only where fit saved no last.ckpt (fast_dev_run)."""
    last = last_checkpoint(trainer)
    if last is None and restart_count():
        log.warning("no last.ckpt after fit: validate/test may load Lightning's hpc_ckpt instead of the final weights")
    return last


def last_checkpoint(trainer: L.Trainer) -> str | None:
    """The checkpoint of the final weights (last.ckpt), else None (fast_dev_run saves none)."""
    for callback in trainer.checkpoint_callbacks:
        path = getattr(callback, "path", None) or getattr(callback, "last_model_path", None)
        if path and Path(path).is_file():
            return str(path)
    return None


# ------------------------------------------------------------------------------------------------ test_best
def same_data(a: list, b: list) -> bool:
    """Whether two splits' records are the same videos (e.g. EPIC, SSv2, MiT, K600: "test" is the val file)."""

    def key(r: Any) -> tuple:
        return (str(r.path), r.start, r.end)

    return bool({key(r) for r in a} & {key(r) for r in b})


def test_best(run: Run) -> dict[str, Any]:
    """Test the best-by-val checkpoint, under its own name, only where val and test are different data."""
    callback = run.trainer.checkpoint_callback
    best = callback.best_model_path if callback is not None else ""
    if not best:
        return {}
    if same_data(run.datamodule.index.records("val"), run.datamodule.index.records("test")):
        log.warning("test_best skipped: validation and test are the same videos (selection on the reported split)")
        return {}
    with run.evaluation.metrics_only():  # the run's files describe the final model
        tested = results(run.trainer.test(run.module, datamodule=run.datamodule, ckpt_path=best, verbose=False))
    return {"checkpoint_best": best, "test_best": {k.replace("test/", "test_best/", 1): v for k, v in tested.items()}}


if __name__ == "__main__":
    main()

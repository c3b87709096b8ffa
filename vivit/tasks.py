"""What `train.py` and `eval.py` do, as plain functions of a composed config (so tests can call them).

build -> fit -> validate/test the best checkpoint -> metrics.json + a printed table.
Configuration mistakes (bad shapes, missing dataset roots, unknown checkpoint paths) surface while building,
before any training step, as a `ConfigError` with a one-line message; the entry points print it without a
traceback.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from vivit.checkpoint import INIT_KEYS, build_model, read_checkpoint
from vivit.loggers import finish_wandb
from vivit.module import VideoClassifier
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A problem with the configuration or the files it points to, reported in one line."""


class Preempted(Exception):
    """The run was stopped by SIGTERM or SLURM's timeout signal after saving `last.ckpt`: not a success."""


PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM, what a shell reports for a process ended by SIGTERM


def _forward_to_sigterm(signum: int, frame: Any) -> None:
    """SLURM's timeout signal (SIGUSR1, `#SBATCH --signal=USR1@90`) stops a run like SIGTERM: Lightning's
    SIGTERM handler makes the loops stop at the next batch and the checkpoint callbacks save."""
    os.kill(os.getpid(), signal.SIGTERM)


@dataclass
class Run:
    datamodule: L.LightningDataModule
    module: VideoClassifier
    trainer: L.Trainer


def _root_cause(error: BaseException) -> BaseException:
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def _missing(error: MissingMandatoryValue) -> ConfigError:
    """`???` left in the config, e.g. `data.root` of a real dataset."""
    key = error.full_key or "a key"
    return ConfigError(f"{key}: no value (???). Set it on the command line, e.g. `{key}=...` (see the comments in conf/).")


# What a mistake in the config raises while objects are built: reported as one line naming the config key.
CONFIG_MISTAKES = (ValueError, TypeError, KeyError, FileNotFoundError, NotADirectoryError)


@contextmanager
def _reported_as(key: str):
    """Turn a configuration mistake raised inside the block into a one-line `ConfigError` about `key`."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as error:  # Hydra wraps the target's exception in InstantiationException
        cause = _root_cause(error)
        if isinstance(cause, MissingMandatoryValue):
            raise _missing(cause) from error
        if isinstance(cause, CONFIG_MISTAKES):
            raise ConfigError(f"{key}: {cause}") from error
        raise


def _instantiate(node: DictConfig, key: str, **kwargs: Any) -> Any:
    with _reported_as(key):
        return hydra.utils.instantiate(node, **kwargs)


def _instantiate_group(group: DictConfig | None, key: str) -> list[Any]:
    """Every node with a `_target_` in a group such as `callbacks` or `logger` (null entries are skipped)."""
    if not group:
        return []
    return [
        _instantiate(node, f"{key}.{name}")
        for name, node in group.items()
        if isinstance(node, DictConfig) and "_target_" in node
    ]


def _build_net(cfg: DictConfig, initialise_weights: bool) -> torch.nn.Module:
    """The backbone, initialised from `model.init` (an image ViT or a video checkpoint) when training starts."""
    with _reported_as("model"):
        net = build_model(cfg.model)
    source = cfg.model.get("init")
    if source and initialise_weights:
        from vivit.pretrained import initialise

        with _reported_as("model.init"):
            initialise(net, source, **OmegaConf.to_container(cfg.model.get("init_options") or {}, resolve=True))
    return net


def run_config(cfg: DictConfig) -> dict[str, Any]:
    """What a checkpoint keeps of the config: model and data, unresolved (for eval.py) and resolved."""
    source = {key: OmegaConf.to_container(cfg[key], resolve=False) for key in ("model", "data")}
    resolved = {key: OmegaConf.to_container(cfg[key], resolve=True) for key in ("model", "data")}
    for key in INIT_KEYS:  # how the weights were initialised is history: keep the value, not its interpolation
        if key in source["model"]:
            source["model"][key] = resolved["model"][key]
    return {"source": source, "resolved": resolved}


def build(cfg: DictConfig, stage: str = "fit") -> Run:
    """Seed, instantiate data, model, callbacks, loggers and trainer, and check the data is there."""
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    L.seed_everything(cfg.seed, workers=True)
    if cfg.get("eval") and cfg.eval.get("views"):  # the command line's test protocol wins over the data config's
        cfg.data.test_views = cfg.eval.views
    net = _build_net(cfg, initialise_weights=stage == "fit" and not cfg.get("ckpt_path"))
    datamodule = _instantiate(cfg.data, "data")
    module = _instantiate(cfg.module, "module", net=net, optimizer=cfg.optim.optimizer)
    module.run_config = run_config(cfg)
    loggers = _instantiate_group(cfg.get("logger"), "logger")
    callbacks = _instantiate_group(cfg.get("callbacks"), "callbacks")
    if not loggers:  # Lightning raises on a LearningRateMonitor without a logger
        callbacks = [c for c in callbacks if not isinstance(c, L.pytorch.callbacks.LearningRateMonitor)]
    trainer = _instantiate(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False)
    with _reported_as("data"):  # surface a missing dataset root or annotation file now, not after an epoch
        datamodule.prepare_data()
        datamodule.setup(stage)
    return Run(datamodule, module, trainer)


def _metrics(results: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(v) for r in results for k, v in r.items()}


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then validate and test the best checkpoint. Returns (and writes) the final metrics."""
    run = build(cfg, "fit")
    output_dir = Path(cfg.paths.output_dir)
    try:
        if cfg.get("train", True):
            _fit(run, cfg.get("ckpt_path"))
        checkpoint = _best_checkpoint(run.trainer)
        summary: dict[str, Any] = {"output_dir": str(output_dir), "checkpoint": checkpoint}
        summary["val"] = _metrics(run.trainer.validate(run.module, datamodule=run.datamodule, ckpt_path=checkpoint, verbose=False))
        if cfg.get("test", True):
            summary["test"] = _metrics(run.trainer.test(run.module, datamodule=run.datamodule, ckpt_path=checkpoint, verbose=False))
    finally:
        finish_wandb()
    _write_summary(summary, output_dir, run.trainer)
    return summary


def _fit(run: Run, ckpt_path: str | None) -> None:
    """`trainer.fit`, turning a SIGTERM / SIGUSR1 stop (Lightning exits with code 0) into `Preempted`."""
    previous = signal.signal(signal.SIGUSR1, _forward_to_sigterm) if hasattr(signal, "SIGUSR1") else None
    try:
        run.trainer.fit(run.module, datamodule=run.datamodule, ckpt_path=ckpt_path)
    except SIGTERMException as error:
        last = [c.path for c in run.trainer.checkpoint_callbacks if hasattr(c, "path") and c.path.is_file()]
        where = f"resume with ckpt_path={last[0]}" if last else "no checkpoint was saved"
        raise Preempted(f"stopped by a signal at epoch {run.trainer.current_epoch}, step "
                        f"{run.trainer.global_step}; {where}") from error
    finally:
        if previous is not None:
            signal.signal(signal.SIGUSR1, previous)


def _best_checkpoint(trainer: L.Trainer) -> str | None:
    """The best checkpoint by the monitored metric, else the last one, else None (fast_dev_run saves none)."""
    callback = trainer.checkpoint_callback
    if callback is None:
        return None
    return callback.best_model_path or callback.last_model_path or None


def _write_summary(summary: dict[str, Any], output_dir: Path, trainer: L.Trainer) -> None:
    if not trainer.is_global_zero:
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    print_summary(summary)


def print_summary(summary: dict[str, Any]) -> None:
    """A results table (split x metric) and where the run's files are."""
    from rich.console import Console
    from rich.table import Table

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
            cells.append("" if value is None else f"{100 * value:.2f}%" if is_accuracy else f"{value:.4f}")
        table.add_row(name, *cells)
    unreadable = {k: int(v) for s in splits for k, v in summary[s].items() if k.startswith("data/unreadable_")}
    console = Console()
    console.print(table)
    if any(unreadable.values()):
        console.print("unreadable videos: " + ", ".join(f"{k.rsplit('_', 1)[1]} {v}" for k, v in unreadable.items()))
    if summary.get("checkpoint"):
        console.print(f"checkpoint: {summary['checkpoint']}")
    console.print(f"outputs:    {summary['output_dir']}")


# --------------------------------------------------------------------------------------------------- eval
def read_run_checkpoint(ckpt_path: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The backbone weights and the config of a train.py checkpoint or a converted file, or a ConfigError."""
    try:
        weights, config = read_checkpoint(ckpt_path)
    except FileNotFoundError as error:
        raise ConfigError(f"ckpt_path: no checkpoint file at '{ckpt_path}'. Pass the .ckpt of a train.py run "
                          "(outputs/train/runs/<time>/checkpoints/) or a file made by `python -m vivit.convert`.") from error
    except Exception as error:  # not a torch file, not a dict, no net.* weights
        raise ConfigError(f"ckpt_path: '{ckpt_path}' cannot be used: {error}") from error
    if not config:
        raise ConfigError(f"ckpt_path: '{ckpt_path}' holds no ViViT config (key 'vivit_config'); "
                          "it was not written by train.py or vivit.convert.")
    return weights, config


def merge_saved_config(cfg: DictConfig, saved: dict[str, Any], overrides: list[str]) -> DictConfig:
    """Take model and data from the checkpoint unless the command line chose them.

    `data=k400` (a group choice) keeps the freshly composed data config; `data.batch_size=4` (a key)
    is applied on top of the saved one.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    cfg = cfg.copy()
    for group in ("model", "data"):
        if any(o.key_or_group == group for o in parsed):
            continue
        if group not in saved["source"]:
            raise ConfigError(f"{group}: the checkpoint does not say which {group} it was made for; "
                              f"choose one on the command line, e.g. `{group}=...` (see conf/{group}/).")
        node = OmegaConf.create(saved["source"][group])
        for o in parsed:
            if o.key_or_group.startswith(group + "."):
                OmegaConf.update(node, o.key_or_group[len(group) + 1 :], o.value(), force_add=True)
        cfg[group] = node
    return cfg


def evaluate(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """Evaluate a checkpoint on `cfg.split` with the multi-view protocol `cfg.eval.views`."""
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise ConfigError("ckpt_path: missing. Usage: python eval.py ckpt_path=PATH/TO/best.ckpt [eval.views=4x3]")
    if cfg.split not in ("val", "test"):
        raise ConfigError(f"split: expected 'val' or 'test', got '{cfg.split}'.")
    weights, saved = read_run_checkpoint(cfg.ckpt_path)
    cfg = merge_saved_config(cfg, saved, overrides or [])
    stage = "validate" if cfg.split == "val" else "test"
    run = build(cfg, stage)
    run.module.net.load_state_dict(weights)
    if cfg.eval.get("save_predictions"):
        run.module.predictions = []
    try:
        if stage == "validate":
            results = run.trainer.validate(run.module, datamodule=run.datamodule, verbose=False)
        else:
            results = run.trainer.test(run.module, datamodule=run.datamodule, verbose=False)
    finally:
        finish_wandb()
    summary = {"output_dir": str(cfg.paths.output_dir), "checkpoint": str(cfg.ckpt_path),
               "views": str(cfg.data.test_views), cfg.split: _metrics(results)}
    if run.module.predictions is not None:
        summary["predictions"] = _save_predictions(run, "val" if stage == "validate" else "test", Path(cfg.paths.output_dir))
    _write_summary(summary, Path(cfg.paths.output_dir), run.trainer)
    return summary


def _save_predictions(run: Run, split: str, output_dir: Path) -> str:
    """Per-video logits (averaged over views) keyed by the records' ids, e.g. for a benchmark submission."""
    batches = run.module.predictions
    index = torch.cat([b["index"] for b in batches])
    records = run.datamodule.datasets[split].records
    heads = [k.removeprefix("logits/") for k in batches[0] if k.startswith("logits/")]
    predictions = {
        "ids": [records[i].id for i in index.tolist()],
        "logits": {head: torch.cat([b[f"logits/{head}"] for b in batches]) for head in heads},
    }
    path = output_dir / f"predictions_{split}.pt"
    if run.trainer.is_global_zero:
        torch.save(predictions, path)
    return str(path)


def set_project_root(entry_point: str) -> None:
    """Let `paths.root_dir` default to the folder of the entry point, wherever it is started from."""
    os.environ.setdefault("VIVIT_ROOT", str(Path(entry_point).resolve().parent))

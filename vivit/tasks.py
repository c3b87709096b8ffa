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
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import MissingMandatoryValue

from vivit import preflight
from vivit.atomic import write_atomically
from vivit.console import model_line, piped_console_kwargs, quiet_libraries
from vivit.checkpoint import INIT_KEYS, build_model, plain_classes, read_checkpoint
from vivit.distributed import RankSeed, apply_global_batch, start_ranks_from_job
from vivit.loggers import continue_logs, finish_wandb
from vivit.slurm import check_launcher, lightning_requeues, restart_count
from vivit.module import VideoClassifier
from vivit.runs import register_resolvers
from vivit.seeding import EpochSeeds
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)
register_resolvers()  # conf/hydra/default.yaml's run folders, also for configs composed by tests and notebooks


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


def _chain(error: BaseException) -> list[BaseException]:
    """The error and its causes, outermost first."""
    chain = [error]
    while chain[-1].__cause__ is not None and chain[-1].__cause__ not in chain:
        chain.append(chain[-1].__cause__)
    return chain


def _missing(chain: list[BaseException]) -> ConfigError | None:
    """`???` left in the config, e.g. `data.root` of a real dataset. OmegaConf re-raises it with the full key;
    with OC_CAUSE=1 or a tracer active (coverage, a debugger) the key-less original is chained below it, so the
    outermost one that names its key is used."""
    missing = [e for e in chain if isinstance(e, MissingMandatoryValue)]
    if not missing:
        return None
    key = next((e.full_key for e in missing if e.full_key), None) or "a key"
    return ConfigError(f"{key}: no value (???). Set it on the command line, e.g. `{key}=...` (see the comments in conf/).")


# What a mistake in the config raises while objects are built: explicit validation of a value (ValueError naming
# the key), a missing file or folder. Reported as one line naming the config key.
CONFIG_MISTAKES = (ValueError, FileNotFoundError, NotADirectoryError)


def _raised_by_the_call(error: BaseException) -> bool:
    """A TypeError/KeyError raised where Hydra calls or looks up the target (an unknown or missing argument),
    not inside the target's own code: the innermost frame of its traceback is Hydra's."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{os.sep}hydra{os.sep}" in tb.tb_frame.f_code.co_filename


def is_config_mistake(error: BaseException) -> bool:
    """Whether `error` (raised while building objects from the config) is a mistake in the config rather than a
    bug: Hydra/OmegaConf composition and instantiation errors, explicit validation, missing files, and wrong
    arguments to a `_target_`. A TypeError or KeyError from inside project code is a bug and keeps its traceback."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    chain = _chain(error)
    cause = chain[-1]
    if isinstance(cause, (OmegaConfBaseException, HydraException)):
        return True  # e.g. an interpolation to a key that does not exist
    if isinstance(cause, ImportError) and any(isinstance(e, HydraException) for e in chain):
        return True  # a `_target_` that cannot be located
    if isinstance(cause, CONFIG_MISTAKES):
        return True
    return isinstance(cause, (TypeError, KeyError)) and _raised_by_the_call(cause)


@contextmanager
def _reported_as(key: str):
    """Turn a configuration mistake raised inside the block into a one-line `ConfigError` about `key`; anything
    else (a bug) propagates unchanged, with its traceback."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as error:  # Hydra wraps the target's exception in InstantiationException
        chain = _chain(error)
        missing = _missing(chain)
        if missing is not None:
            raise missing from error
        if is_config_mistake(error):
            raise ConfigError(f"{key}: {chain[-1]}") from error
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


def build_trainer(node: DictConfig, **kwargs: Any) -> L.Trainer:
    """The Lightning Trainer of `trainer:`. Its `plugins` are named like callbacks, so that a preset adds one
    (hydra/launcher=slurm: the SLURM environment) without replacing the default atomic checkpoint writer."""
    plugins = _instantiate_group(node.get("plugins"), "trainer.plugins")
    with _reported_as("trainer"):
        node = OmegaConf.to_container(node, resolve=True)
    node.pop("plugins", None)
    return _instantiate(node, "trainer", plugins=plugins or None, **kwargs)


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


def build(cfg: DictConfig, stage: str = "fit", checkpoint: preflight.Checkpoint | None = None) -> Run:
    """Seed, instantiate data, model, callbacks, loggers and trainer, and check the data is there.

    Mistakes that would surface after work are reported first (vivit/preflight.py); `checkpoint` (eval.py's, or
    `train.py ckpt_path=`'s) must fit the model, which is checked before any data is generated or decoded."""
    quiet_libraries()
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    with _reported_as("hydra/launcher"):
        check_launcher(cfg)
    with _reported_as("global_batch"):  # before preflight: its message explains a devices x batch mismatch best
        split = apply_global_batch(cfg)
    resume = preflight.check_before_work(cfg, stage)
    checkpoint = checkpoint or resume
    L.seed_everything(cfg.seed, workers=True)
    if split:
        rank_zero_info(split)
    if cfg.get("eval") and cfg.eval.get("views"):  # the command line's test protocol wins over the data config's
        cfg.data.test_views = cfg.eval.views
    datamodule = _instantiate(cfg.data, "data")
    if cfg.data.get("num_classes") is None:  # not given: the index's class count (the model's head follows it)
        with _reported_as("data"):
            cfg.data.num_classes = datamodule.resolve_num_classes()
    net = _build_net(cfg, initialise_weights=stage == "fit" and not cfg.get("ckpt_path"))
    if checkpoint is not None:
        preflight.check_fits(net, checkpoint, cfg)
    if rank_zero_only.rank == 0:  # instead of Lightning's model summary (off in conf/trainer/default.yaml)
        print(model_line(net, cfg.model), flush=True)
    module = _instantiate(cfg.module, "module", net=net, optimizer=cfg.optim.optimizer)
    module.run_config = run_config(cfg)
    loggers = _instantiate_group(cfg.get("logger"), "logger")
    if stage == "fit" and cfg.get("ckpt_path"):  # resuming: the logs of a run folder continue from its checkpoint
        continue_logs(loggers, checkpoint_step(cfg.ckpt_path))
    from vivit.dashboards import log_run_config

    log_run_config(loggers, cfg)  # train.py and eval.py alike: every logger gets the resolved config
    callbacks = _instantiate_group(cfg.get("callbacks"), "callbacks")
    if not loggers:  # Lightning raises on a LearningRateMonitor without a logger
        callbacks = [c for c in callbacks if not isinstance(c, L.pytorch.callbacks.LearningRateMonitor)]
    callbacks.append(RankSeed(cfg.seed))
    callbacks.append(EpochSeeds(cfg.seed))  # every epoch's randomness from (seed, rank, epoch): exact resume
    trainer = build_trainer(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    start_ranks_from_job(trainer, cfg)  # DDP under Hydra: extra ranks re-create this job (vivit/distributed.py)
    with _reported_as("data"):  # surface a missing dataset root or annotation file now, not after an epoch
        datamodule.prepare_data()
        datamodule.setup(stage)
        module.run_config["classes"] = plain_classes(datamodule.index.classes)  # checkpoints answer with names
        if stage == "fit" and cfg.get("test", True):  # an unknown label in the test split: now, not after training
            datamodule.index.records("test")
    return Run(datamodule, module, trainer)


def checkpoint_step(ckpt_path: str) -> int:
    """The global step a Lightning checkpoint was saved at (memory-mapped: the weights are not read)."""
    with _reported_as("ckpt_path"):
        checkpoint = torch.load(ckpt_path, map_location="cpu", mmap=True, weights_only=False)
    return int(checkpoint.get("global_step", 0))


def _metrics(results: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(v) for r in results for k, v in r.items()}


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then validate and test the final model (scenic's protocol). Returns (and writes) the final metrics.

    `test_best=true` also tests the best-by-val checkpoint, under `test_best/...`, where validation and test are
    different data (elsewhere that would be model selection on the reported split, so it is skipped)."""
    run = build(cfg, "fit")
    output_dir = Path(cfg.paths.output_dir)
    try:
        trained = cfg.get("train", True)
        if trained:
            _fit(run, cfg.get("ckpt_path") or _requeued_checkpoint(run.trainer))
        # None = the weights in memory: the final train state. Without training, the checkpoint given.
        weights = None if trained else cfg.get("ckpt_path")
        summary: dict[str, Any] = {"output_dir": str(output_dir), "tested": "final model",
                                   "checkpoint": _last_checkpoint(run.trainer) if trained else weights}
        summary["val"] = _metrics(run.trainer.validate(run.module, datamodule=run.datamodule, ckpt_path=weights, verbose=False))
        if cfg.get("test", True):
            run.module.predictions = []
            summary["test"] = _metrics(run.trainer.test(run.module, datamodule=run.datamodule, ckpt_path=weights, verbose=False))
            _merge(summary, _test_outputs(run, "test", output_dir, cfg), "test")
            run.module.predictions = None
            if cfg.get("test_best") and trained:
                summary.update(_test_best(run))
        summary["unreadable"] = run.module.unreadable_counts
    finally:
        finish_wandb()
    _write_summary(summary, output_dir, run.trainer)
    return summary


def _requeued_checkpoint(trainer: L.Trainer) -> str | None:
    """A requeued SLURM job's own last.ckpt (its folder is the same on every attempt, vivit/slurm.py)."""
    if not restart_count():
        return None
    last = _last_checkpoint(trainer)
    found = f"resuming from {last}" if last else "no last.ckpt in the job folder (Lightning takes its hpc_ckpt if any)"
    rank_zero_info(f"SLURM restart {restart_count()}: {found}")
    return last


def _fit(run: Run, ckpt_path: str | None) -> None:
    """`trainer.fit`, turning a SIGTERM / SIGUSR1 stop (Lightning exits with code 0) into `Preempted`.
    Under Lightning's SLURM auto-requeue, SIGUSR1 stays Lightning's (save + `scontrol requeue`)."""
    forward = hasattr(signal, "SIGUSR1") and not lightning_requeues(run.trainer)
    previous = signal.signal(signal.SIGUSR1, _forward_to_sigterm) if forward else None
    try:
        run.trainer.fit(run.module, datamodule=run.datamodule, ckpt_path=ckpt_path)
    except SIGTERMException as error:
        last = _last_checkpoint(run.trainer)
        where = f"resume with ckpt_path={last}" if last else "no checkpoint was saved"
        raise Preempted(f"stopped by a signal at epoch {run.trainer.current_epoch}, step "
                        f"{run.trainer.global_step}; {where}") from error
    finally:
        if previous is not None:
            signal.signal(signal.SIGUSR1, previous)


def _merge(summary: dict[str, Any], extras: dict[str, Any], split: str) -> None:
    summary[split].update(extras.pop(split, {}))
    summary.update(extras)


def _last_checkpoint(trainer: L.Trainer) -> str | None:
    """The checkpoint of the final weights (last.ckpt), else None (fast_dev_run saves none)."""
    for callback in trainer.checkpoint_callbacks:
        path = getattr(callback, "path", None) or getattr(callback, "last_model_path", None)
        if path and Path(path).is_file():
            return str(path)
    return None


def same_data(a: list, b: list) -> bool:
    """Whether two splits' records are the same videos (e.g. EPIC, SSv2, MiT, K600: "test" is the val file)."""
    def key(r):
        return (str(r.path), r.start, r.end)
    return bool({key(r) for r in a} & {key(r) for r in b})


def _test_best(run: Run) -> dict[str, Any]:
    """Test the best-by-val checkpoint, under its own name, only where val and test are different data."""
    callback = run.trainer.checkpoint_callback
    best = callback.best_model_path if callback is not None else ""
    if not best:
        return {}
    if same_data(run.datamodule.index.records("val"), run.datamodule.index.records("test")):
        log.warning("test_best skipped: validation and test are the same videos (selection on the reported split)")
        return {}
    results = _metrics(run.trainer.test(run.module, datamodule=run.datamodule, ckpt_path=best, verbose=False))
    return {"checkpoint_best": best, "test_best": {k.replace("test/", "test_best/", 1): v for k, v in results.items()}}


def _gathered(predictions: list[dict[str, torch.Tensor]], trainer: L.Trainer) -> list[dict[str, torch.Tensor]]:
    """Every rank's per-batch predictions, on every rank (each rank tested a different share of the videos)."""
    if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        shares: list[Any] = [None] * trainer.world_size
        torch.distributed.all_gather_object(shares, predictions)
        return [batch for share in shares for batch in share]
    return predictions


def _test_outputs(run: Run, split: str, output_dir: Path, cfg: DictConfig) -> dict[str, Any]:
    """Mean per-class accuracy, per-class CSV and confusion PNG (vivit.evaluation), and for EPIC-KITCHENS-100 the
    official breakdowns, or the challenge submission JSON on the unlabelled test file. Merged into the summary."""
    from vivit import evaluation

    batches = _gathered(run.module.predictions or [], run.trainer)
    if not batches:
        return {}
    index = torch.cat([b["index"] for b in batches])
    records = run.datamodule.datasets[split].records
    heads = [k.removeprefix("logits/") for k in batches[0] if k.startswith("logits/")]
    logits = {head: torch.cat([b[f"logits/{head}"] for b in batches]) for head in heads}
    valid = torch.cat([b["valid"] for b in batches])
    labels = {head: torch.tensor([_label(records[i].label, head) for i in index.tolist()]) for head in heads}
    classes = run.datamodule.index.classes
    classes = classes if isinstance(classes, dict) else {"": classes}
    out: dict[str, Any] = {}
    if not run.trainer.is_global_zero:
        return out
    output_dir.mkdir(parents=True, exist_ok=True)
    written = evaluation.write_outputs(output_dir, split, logits, labels, classes, valid)
    metrics, files = dict(written["metrics"]), list(written["files"])
    samples = _sample_clips(run, split, index, logits, labels, classes, valid)
    if samples:
        files.append(str(evaluation.plot_samples(output_dir / f"samples_{split}.png", [s["frames"] for s in samples],
                                                 [s["caption"] for s in samples])))
    from vivit.dashboards import log_test_outputs

    log_test_outputs(run.trainer.loggers, split, files, samples)
    from datamodules.index import EpicKitchens100

    epic = run.datamodule.index
    if isinstance(epic, EpicKitchens100) and set(heads) == {"noun", "verb"}:
        ids = [records[i].id for i in index.tolist()]
        if (labels["noun"] >= 0).all():
            try:
                metrics.update(_epic_breakdown(epic, split, ids, logits, labels, valid))
            except FileNotFoundError as error:  # an annotations folder without the breakdown files
                log.warning("EPIC-KITCHENS-100 unseen/tail breakdown skipped: %s", error)
        else:
            files.append(str(_epic_submission(epic, split, ids, logits, cfg, output_dir)))
    if metrics:
        out[split] = metrics  # merged into the split's block by the caller
    out["files"] = files
    return out


def _sample_clips(run: Run, split: str, index: torch.Tensor, logits: dict, labels: dict, classes: dict,
                  valid: torch.Tensor, n: int = 8) -> list[dict[str, Any]]:
    """A few test videos to look at (chosen on the first head: its most confident mistakes and successes), each
    as a strip of its centre clip's decoded frames with the true and predicted class names."""
    from datamodules import reader
    from datamodules.sampling import centre_indices
    from vivit import evaluation

    first = next(iter(logits))
    labelled = torch.stack([y >= 0 for y in labels.values()]).all(0)
    dataset = run.datamodule.datasets[split]
    samples = []
    for position in evaluation.choose_samples(logits[first], torch.where(labelled, labels[first], -1), valid, n):
        i = int(index[position])
        try:
            frames = dataset.frames(i, centre_indices(dataset.length(i), dataset.num_frames, dataset.stride))
        except reader.READ_ERRORS as error:  # it was read for the test; a file changed since is only skipped
            log.warning("sample clip %s skipped: %s", dataset.records[i].path, error)
            continue
        caption = {"video": str(dataset.records[i].id or dataset.records[i].path),
                   **evaluation.sample_caption(position, logits, labels, classes)}
        samples.append({"frames": evaluation.frame_strip(frames), "caption": caption})
    return samples


def _label(label: Any, head: str) -> int:
    if label is None:
        return -1
    return int(label[head]) if head else int(label)


def _epic_breakdown(epic: Any, split: str, ids: list[str], logits: dict, labels: dict, valid: torch.Tensor) -> dict:
    from vivit import evaluation

    file = epic.files[split]
    unseen_file = "EPIC_100_unseen_participant_ids_test.csv" if "test" in file else \
        "EPIC_100_unseen_participant_ids_validation.csv"
    unseen = {row.strip() for row in epic.annotation_file(unseen_file).read_text().splitlines()[1:] if row.strip()}
    tail_verbs = set(evaluation.read_class_column(epic.annotation_file("EPIC_100_tail_verbs.csv"), "verb"))
    tail_nouns = set(evaluation.read_class_column(epic.annotation_file("EPIC_100_tail_nouns.csv"), "noun"))
    participants = [narration.split("_")[0] for narration in ids]
    return evaluation.epic_breakdown(logits["noun"], logits["verb"], labels["noun"], labels["verb"], participants,
                                     unseen, tail_nouns, tail_verbs, split, valid)


def _epic_submission(epic: Any, split: str, ids: list[str], logits: dict, cfg: DictConfig, output_dir: Path) -> Path:
    from vivit import evaluation

    levels = cfg.get("eval", {}).get("submission") or {}
    with _reported_as("eval.submission"):
        missing = [k for k in ("sls_pt", "sls_tl", "sls_td") if levels.get(k) is None]
        if missing:
            raise ValueError(f"{', '.join('eval.submission.' + k for k in missing)}: set the supervision levels "
                             "(integers 0-5) for the EPIC-KITCHENS challenge submission")
        submission = evaluation.epic_submission(ids, logits["noun"], logits["verb"], int(levels["sls_pt"]),
                                                int(levels["sls_tl"]), int(levels["sls_td"]))
    return evaluation.write_json(output_dir / f"epic100_submission_{split}.json", submission)


def _write_summary(summary: dict[str, Any], output_dir: Path, trainer: L.Trainer) -> None:
    if not trainer.is_global_zero:
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(output_dir / "metrics.json", json.dumps(summary, indent=2))
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
            cells.append("" if value is None else f"{100 * value:.2f}%" if is_accuracy
                         else f"{int(value)}" if name == "unreadable" else f"{value:.4f}")
        table.add_row(name, *cells)
    console = Console(**piped_console_kwargs())
    console.print(table)
    unreadable = {split: counts for split, counts in (summary.get("unreadable") or {}).items() if any(counts)}
    if unreadable:  # per split, one number per pass (epoch) over it
        console.print("unreadable videos per pass: " + ", ".join(f"{k} {v}" for k, v in unreadable.items()))
    if "test_best" in summary:
        best = {k.split("/", 1)[1]: v for k, v in summary["test_best"].items() if "top" in k}
        console.print("best-by-val checkpoint on test (not the reported number): "
                      + ", ".join(f"{k} {100 * v:.2f}%" for k, v in sorted(best.items())))
    if summary.get("checkpoint"):
        console.print(f"checkpoint: {summary['checkpoint']}", soft_wrap=True, highlight=False)
    console.print(f"outputs:    {summary['output_dir']}", soft_wrap=True, highlight=False)


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
    if not cfg.eval.get("merged"):  # DDP's extra ranks start from rank 0's config, already merged
        cfg = merge_saved_config(cfg, saved, overrides or [])
        with open_dict(cfg):
            cfg.eval.merged = True
    stage = "validate" if cfg.split == "val" else "test"
    model = (saved.get("resolved") or {}).get("model")
    run = build(cfg, stage, preflight.Checkpoint(str(cfg.ckpt_path), weights, model, "evaluate"))
    run.module.net.load_state_dict(weights)
    _check_class_names(saved.get("classes"), run.module.run_config["classes"], cfg.ckpt_path)
    run.module.predictions = []  # per-video logits: the evaluation outputs (and predictions_<split>.pt)
    split = "val" if stage == "validate" else "test"
    output_dir = Path(cfg.paths.output_dir)
    try:
        if stage == "validate":
            results = run.trainer.validate(run.module, datamodule=run.datamodule, verbose=False)
        else:
            results = run.trainer.test(run.module, datamodule=run.datamodule, verbose=False)
        summary = {"output_dir": str(cfg.paths.output_dir), "checkpoint": str(cfg.ckpt_path),
                   "views": str(cfg.data.test_views), cfg.split: _metrics(results)}
        _merge(summary, _test_outputs(run, split, output_dir, cfg), split)  # W&B still open: it gets them too
    finally:
        finish_wandb()
    summary["unreadable"] = {split: run.module.unreadable_counts[split]}
    if cfg.eval.get("save_predictions"):
        summary["predictions"] = _save_predictions(run, split, output_dir)
    _write_summary(summary, output_dir, run.trainer)
    return summary


def _check_class_names(saved: Any, data: Any, ckpt_path: str) -> None:
    """Warn when the checkpoint's classes are not the data's, in the same order: its metrics would be wrong."""
    if saved is None or saved == data:
        return
    heads = saved.items() if isinstance(saved, dict) else [("", saved)]
    for head, names in heads:
        other = data.get(head, []) if isinstance(data, dict) else data
        first = next((i for i, (a, b) in enumerate(zip(names, other)) if a != b), min(len(names), len(other)))
        log.warning("ckpt_path: '%s' was trained on other classes than the data's%s: label %d is %r in the "
                    "checkpoint, %r in the data (%d vs %d classes); metrics compare different names.", ckpt_path,
                    f" ({head})" if head else "", first, names[first] if first < len(names) else None,
                    other[first] if first < len(other) else None, len(names), len(other))
        return


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
    """Let `paths.root_dir` default to the folder of the entry point, wherever it is started from; register the
    run-folder resolver of conf/hydra/default.yaml."""
    os.environ.setdefault("VIVIT_ROOT", str(Path(entry_point).resolve().parent))
    register_resolvers()


# --------------------------------------------------------------------------------------------------- predict
def predict(cfg: DictConfig) -> list[dict[str, Any]]:
    """predict.py: top-k class names per video, printed and written as predictions.json / .csv."""
    from vivit import inference

    for key in ("ckpt_path", "inputs"):
        if OmegaConf.is_missing(cfg, key):
            raise ConfigError(f"{key}: missing. Usage: python predict.py ckpt_path=PATH inputs=VIDEO|FOLDER|LIST.txt")
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    inputs = OmegaConf.to_container(cfg.inputs) if OmegaConf.is_list(cfg.inputs) else cfg.inputs
    with _reported_as("inputs"):
        paths = inference.video_paths(inputs)
    if not paths:
        raise ConfigError(f"inputs: no videos ({', '.join(inference.VIDEO_SUFFIXES)}) found in '{cfg.inputs}'.")
    read_run_checkpoint(cfg.ckpt_path)  # a one-line error for a missing or foreign file
    with _reported_as("predict"):
        results = inference.predict(cfg.ckpt_path, [str(p) for p in paths], topk=int(cfg.topk), views=cfg.views,
                                    batch_size=int(cfg.batch_size), num_workers=int(cfg.num_workers),
                                    device=cfg.device, precision=str(cfg.precision), progress=True)
    json_path, csv_path = inference.write(results, cfg.paths.output_dir)
    inference.print_results(results, skipped=len(paths) - len(results))
    print(f"wrote {json_path} and {csv_path}")
    return results

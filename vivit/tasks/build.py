"""A run's objects from its composed config, in one direction: config -> data -> model -> module -> trainer.

`build(cfg, stage)` checks what would fail after work first (vivit.runtime.preflight), then instantiates the data
module (it decides the number of classes and the test views), the backbone with that many classes (initialised
from `model.init` when training starts), the LightningModule; it prepares the data and reads every annotation row
the run will use (a missing dataset, annotation file or bad row is reported now, in one line, before any logger
starts or any video is decoded); then the loggers (each gets the resolved config), the callbacks of the config and
those every run has (seeding, unreadable videos, the whole-split evaluation, self-describing checkpoints), the
trainer, and last the data's setup. What the data decides reaches the model and the
checkpoints as arguments, never by writing it back into `cfg` (which only derives
`trainer.accumulate_grad_batches` from `global_batch` and, for a run that starts training, `model.init` from
`init_per_job` or a run or sweep folder (vivit/runtime/job_init.py), before anything is built).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import hydra
import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from omegaconf import DictConfig, OmegaConf

from vivit.datamodules import VideoDataModule
from vivit.evaluation.split import SplitEvaluation
from vivit.models import build_model
from vivit.models.flops import build_meta_model, model_stats
from vivit.runtime import preflight
from vivit.runtime.errors import reported_as
from vivit.runtime.job_init import NO_INIT, apply_model_init
from vivit.runtime.process import apply_tf32
from vivit.runtime.ranks import apply_global_batch, start_ranks_from_job, with_collective_timeout
from vivit.runtime.slurm import check_launcher
from vivit.tracking.console import model_line, quiet_libraries
from vivit.tracking.dashboards import log_run_config, resolved_config
from vivit.tracking.logs import continue_logs
from vivit.training.callbacks import UnreadableVideos
from vivit.training.module import VideoClassifier
from vivit.training.preemption import AgreedStop
from vivit.training.seeding import EpochSeeds, RankSeed
from vivit.weights.lightning import SelfDescribingCheckpoints, run_config
from vivit.weights.pretrained import initialise

log = logging.getLogger(__name__)


@dataclass
class Run:
    """What `build` makes; `evaluation` and `unreadable` hold what the run's evaluations reported."""

    datamodule: VideoDataModule
    module: VideoClassifier
    trainer: L.Trainer
    evaluation: SplitEvaluation
    unreadable: UnreadableVideos
    test_views: str
    tf32: dict[str, Any]  # what `tf32` set (vivit.runtime.process.apply_tf32), for metrics.json


def instantiate(node: Any, key: str, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate`, a mistake in the config reported in one line naming `key`."""
    with reported_as(key):
        return hydra.utils.instantiate(node, **kwargs)


def instantiate_group(group: DictConfig | None, key: str) -> list[Any]:
    """Every node with a `_target_` in a group such as `callbacks` or `logger` (null entries are skipped)."""
    if not group:
        return []
    return [
        instantiate(node, f"{key}.{name}")
        for name, node in group.items()
        if isinstance(node, DictConfig) and "_target_" in node
    ]


def build_trainer(node: DictConfig, collective_timeout_s: float | None = None, **kwargs: Any) -> L.Trainer:
    """The Lightning Trainer of `trainer:`. Its `plugins` are named like callbacks, so that a preset adds one
    (hydra/launcher=slurm: the SLURM environment) without replacing the default atomic checkpoint writer. A DDP or
    FSDP strategy gets `collective_timeout_s` (vivit.runtime.ranks.with_collective_timeout)."""
    plugins = instantiate_group(node.get("plugins"), "trainer.plugins")
    with reported_as("trainer"):
        node = OmegaConf.to_container(node, resolve=True)
    node.pop("plugins", None)
    with reported_as("trainer.strategy"):
        strategy = with_collective_timeout(node.get("strategy", "auto"), collective_timeout_s)
    if strategy is not node.get("strategy", "auto"):  # now an object: given to the Trainer as it is
        node["strategy"] = None
        kwargs["strategy"] = strategy
    return instantiate(node, "trainer", plugins=plugins or None, **kwargs)


def build_net(model_config: dict[str, Any], initialised: bool, trusted: bool = False) -> torch.nn.Module:
    """The backbone of a resolved model config; `initialised`: from its `init` (an image ViT or a video checkpoint)
    with its `init_options`, when the config names one (a file read as data unless `trusted`)."""
    with reported_as("model"):
        net = build_model(model_config)
    if initialised and model_config.get("init") not in (None, "", NO_INIT):
        with reported_as("model.init"):
            initialise(net, model_config["init"], **(model_config.get("init_options") or {}), trusted=trusted)
    return net


def build(cfg: DictConfig, stage: str = "fit", checkpoint: preflight.Checkpoint | None = None) -> Run:
    """Check, seed and instantiate a run (see the module docstring). `checkpoint` (eval.py's) must fit the model,
    which is checked before any data is generated or decoded, as `train.py ckpt_path=`'s is."""
    quiet_libraries()
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    tf32 = apply_tf32(cfg.get("tf32"), cfg.trainer.get("precision"))
    with reported_as("hydra/launcher"):
        check_launcher(cfg)
    with reported_as("global_batch"):  # before preflight: its message explains a devices x batch mismatch best
        split = apply_global_batch(cfg)
    fresh = stage == "fit" and not cfg.get("ckpt_path")  # a new run starts from model.init; a resume from its state
    init_origin = apply_model_init(cfg) if fresh and cfg.get("train", True) else None
    resume = preflight.check_before_work(cfg, stage)
    checkpoint = checkpoint or resume
    L.seed_everything(cfg.seed, workers=True)
    for line in (split, init_origin):
        if line:
            rank_zero_info(line)

    evaluation_cfg = cfg.get("eval") or {}
    test_views = str(evaluation_cfg.get("views") or cfg.data.test_views)  # the command line's wins
    datamodule = instantiate(cfg.data, "data", test_views=test_views, seed=cfg.seed)  # seed: the training order
    with reported_as("data"):
        num_classes = datamodule.resolve_num_classes()  # the config's, else the index's count
    with reported_as("model"):
        model_config = {**OmegaConf.to_container(cfg.model, resolve=True), "num_classes": num_classes}
    net = build_net(model_config, initialised=fresh, trusted=preflight.trusted(cfg))
    if checkpoint is not None:
        preflight.check_fits(net, checkpoint, cfg)
    stats = model_stats(build_meta_model(model_config))
    if rank_zero_only.rank == 0:  # instead of Lightning's model summary (off in conf/trainer/default.yaml)
        print(model_line(net, stats), flush=True)
    module = instantiate(
        cfg.module, "module", net=net, optimizer=cfg.optim.optimizer, combined_heads=datamodule.combined_heads
    )

    tested = {"fit": "test" if cfg.get("test", True) else None, "validate": "val", "test": "test"}[stage]
    with reported_as("data"):  # a missing release or a bad annotation row now, before any logger or video
        datamodule.prepare_data()
        splits = {"fit": ["train", "val"], "validate": ["val"], "test": ["test"]}[stage]
        for split in splits + ([tested] if tested and tested not in splits else []):
            datamodule.index.records(split)
    if tested is not None:
        check_submission(datamodule, tested, evaluation_cfg.get("submission") or {})

    loggers = instantiate_group(cfg.get("logger"), "logger")
    if stage == "fit" and resume is not None:  # resuming: the logs of a run folder continue from its checkpoint
        if resume.global_step is None:
            log.warning(
                "ckpt_path: the checkpoint's step is unknown (not readable as plain data); the CSV and "
                "TensorBoard logs are kept as they are, rows after it included"
            )
        else:
            continue_logs(loggers, resume.global_step)
    vivit_config = run_config(cfg, num_classes, test_views)  # the model and data configs as built
    log_run_config(loggers, {**resolved_config(cfg), **vivit_config["resolved"]}, stats)  # every logger gets it
    callbacks = instantiate_group(cfg.get("callbacks"), "callbacks")
    if not loggers:  # Lightning raises on a LearningRateMonitor without a logger
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    evaluation = SplitEvaluation(
        cfg.paths.output_dir,
        save_predictions=bool(evaluation_cfg.get("save_predictions")),
        submission=evaluation_cfg.get("submission"),
    )
    unreadable = UnreadableVideos()
    # after the config's callbacks (the progress bar among them), in this order: the evaluation's and the
    # unreadable count's epoch-end collectives settle the logged values first (vivit.evaluation.split.settle_logged)
    callbacks += [
        RankSeed(cfg.seed),
        EpochSeeds(cfg.seed),  # every batch's randomness from (seed, rank, epoch, batch): exact resume
        AgreedStop(),  # SIGTERM / SLURM's requeue signal: all ranks stop at one batch (vivit.tasks.train.fit)
        unreadable,
        evaluation,
        SelfDescribingCheckpoints(vivit_config),  # checkpoints say what they are and answer with class names
    ]
    trainer = build_trainer(cfg.trainer, cfg.get("collective_timeout_s"), callbacks=callbacks, logger=loggers or False)
    start_ranks_from_job(trainer, cfg)  # DDP under Hydra: extra ranks re-create this job (vivit/runtime/ranks.py)

    with reported_as("data"):
        datamodule.setup(stage)
    if stage == "fit" and cfg.data.get("hflip"):
        warn_directions_flipped(datamodule.index.classes)
    return Run(datamodule, module, trainer, evaluation, unreadable, test_views, tf32)


def check_submission(datamodule: Any, split: str, options: Any) -> None:
    """On an unlabelled split of a dataset with a challenge submission (EPIC-KITCHENS' test timestamps), the
    submission's options (`eval.submission`) before any video is decoded, not after the evaluation."""
    check = getattr(datamodule.index, "check_submission", None)
    if check is None:
        return
    records = datamodule.index.records(split)
    if records and all(r.label is None for r in records):
        with reported_as("eval.submission"):
            check(options)


# a class name that says left, right or a sense of rotation: a horizontally flipped clip shows another class
DIRECTION = re.compile(r"(?<![a-z])(left|right|(counter|anti)-?clockwise|clockwise)(?![a-z])", re.IGNORECASE)


def warn_directions_flipped(classes: Iterable[str] | dict[str, Iterable[str]]) -> None:
    """One warning when training flips clips (`data.hflip`) while class names name a direction."""
    names = [n for head in classes.values() for n in head] if isinstance(classes, dict) else list(classes)
    directed = [str(n) for n in names if DIRECTION.search(str(n))]
    if directed:
        shown = ", ".join(repr(n) for n in directed[:3]) + (
            f" and {len(directed) - 3} more" if len(directed) > 3 else ""
        )
        log.warning(
            "data.hflip: training flips clips left-right, but class names name a direction (%s): a flipped clip "
            "shows another class. Set data.hflip=false (as conf/data/ssv2.yaml does).",
            shown,
        )

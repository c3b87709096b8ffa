"""Every option of every config group composes (and resolves) through the real primary configs."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from tests.conftest import CONF, compose_config
from vivit.runtime.config import model_choices, usable_workers

GROUPS = [
    "model",
    "data",
    "regularisation",
    "module",
    "optim",
    "trainer",
    "logger",
    "callbacks",
    "paths",
    "hydra",
    "experiment",
    "debug",
    "recipe",
    "protocol",
]
TRAIN_ONLY = ("recipe", "protocol")  # training choices: eval.py reads the model and data a checkpoint was trained with


def options(group: str) -> list[str]:
    if group == "model":
        return model_choices()  # the zoo's (vivit_<size>_<variant>, from the registry) and the files of conf/model
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))  # top level only: folders hold parts


@pytest.mark.parametrize(
    "config_name,group,option",
    [
        (name, g, o)
        for name in ("train", "eval")
        for g in GROUPS
        for o in options(g)
        if name == "train" or g not in TRAIN_ONLY
    ],
)
def test_every_group_option_composes_and_resolves(config_name, group, option, tmp_path):
    overrides = [f"{group}={option}"]
    if group == "data" and "\nroot: ???" in (CONF / "data" / f"{option}.yaml").read_text():
        overrides.append("data.root=/datasets/release")  # real and custom datasets: the user names the folder
    if group == "recipe":  # a paper recipe names a real dataset
        overrides.append("data.root=/datasets/release")
    if (group, option) == ("data", "folder"):  # the custom-data config leaves the classes to the user (???)
        overrides.append("data.num_classes=5")
    if (group, option) == ("experiment", "own_videos"):  # data=folder: the user's folder and classes
        overrides += ["data.root=/datasets/mine", "data.num_classes=5"]
    if config_name == "eval":
        overrides.append("ckpt_path=unused.ckpt")
    cfg = compose_config(config_name, overrides, output_dir=tmp_path)
    resolved = {key: OmegaConf.select(cfg, key) for key in cfg if key != "hydra"}
    resolved = {
        key: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v for key, v in resolved.items()
    }  # every interpolation resolves
    assert cfg.hydra.runtime.choices[group] == option
    assert "num_classes" not in resolved["model"]  # the data decides it (vivit.tasks.build)
    assert resolved["data"]["num_frames"] == resolved["model"]["num_frames"]


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), f"conf/{group}/ has no options"


def test_defaults_and_experiment_without_plus(tmp_path):
    cfg = compose_config("train", [], output_dir=tmp_path)
    choices = cfg.hydra.runtime.choices
    assert (choices.data, choices.model, choices.logger) == ("synthetic", "vivit_tiny", "wandb")
    assert cfg.trainer.accelerator == "auto"  # so trainer.devices=8 means 8 GPUs
    cfg = compose_config("train", ["experiment=demo_avgpool_control"], output_dir=tmp_path)
    assert cfg.model.temporal_pooling == "mean"


def test_debug_fdr_sets_fast_dev_run_and_drops_logger(tmp_path):
    cfg = compose_config("train", ["debug=fdr"], output_dir=tmp_path)
    assert cfg.trainer.fast_dev_run is True
    assert cfg.logger is None
    assert cfg.data.num_workers == 0


def test_loader_workers_follow_the_cores_this_process_may_use(tmp_path, monkeypatch):
    """`num_workers: ${vivit.workers:8}`: 8, or the usable cores when fewer (torch warns beyond them)."""
    kinetics = compose_config("train", ["data=k400", "data.root=/x"], output_dir=tmp_path).data
    folder = compose_config("train", ["data=folder", "data.root=/x"], output_dir=tmp_path).data
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    assert [usable_workers(n) for n in (8, 2, 1, 0)] == [2, 2, 1, 0]
    assert (kinetics.num_workers, folder.num_workers) == (2, 2)  # resolved when read, on the machine that reads
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(64)))
    assert (kinetics.num_workers, folder.num_workers) == (8, 4)

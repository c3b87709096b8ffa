"""Shared fixtures: compose the real Hydra configs of conf/ with outputs and data under a temporary folder."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import av
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# W&B keeps debug logs, settings and staged files under ~/.cache/wandb, ~/.config/wandb and ~/.local/share/wandb:
# tests (and the train.py/eval.py subprocesses they start) keep them in a temporary folder instead.
_WANDB_HOME = Path(tempfile.mkdtemp(prefix="vivit-tests-wandb-"))
for _key, _name in (("WANDB_CACHE_DIR", "cache"), ("WANDB_CONFIG_DIR", "config"), ("WANDB_DATA_DIR", "data")):
    os.environ.setdefault(_key, str(_WANDB_HOME / _name))


def compose_config(config_name: str, overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """Compose conf/<config_name>.yaml like the entry points do, with `${hydra:...}` resolvable."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """One small synthetic dataset per test session (the generator caches it under this folder)."""
    return tmp_path_factory.mktemp("data") / "synthetic"


@pytest.fixture(scope="session")
def logged_run(synthetic_root, tmp_path_factory):
    """One epoch of train.py on the small synthetic set with the default callbacks and two loggers, CSV and W&B
    (offline, the real client): (run folder, summary, config). Shared by the dashboard and predict tests, so the
    session trains once for them."""
    from tests.test_train import SMALL_DATA
    from vivit.tasks.train import train

    out = tmp_path_factory.mktemp("logged_run")
    overrides = [
        f"data.root={synthetic_root}",
        *SMALL_DATA,
        "trainer.accelerator=cpu",
        "logger=[csv,wandb]",
        "trainer.max_epochs=1",
        "callbacks=default",
        "module.views_per_forward=4",
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_SILENT", "true")
        cfg = compose_config("train", overrides, output_dir=out)
        summary = train(cfg)
    return out, summary, cfg


def run_entry(task: str, argv: list[str], root: Path, monkeypatch) -> str:
    """The line a command exits with (its SystemExit message), run in this process as `python <task>.py argv`
    through its entry point (`vivit.tasks.<task>.main`, what train.py/eval.py/predict.py call), under `root`."""
    from vivit.tasks import evaluate, predict, train

    monkeypatch.setenv("VIVIT_ROOT", str(root))
    monkeypatch.setattr(sys, "argv", [f"{task}.py", *argv])
    with pytest.raises(SystemExit) as stopped:
        {"train": train.main, "eval": evaluate.main, "predict": predict.main}[task]()
    return str(stopped.value.code)


@pytest.fixture
def no_video(monkeypatch):
    """A tripwire on PyAV: the test fails if anything opens (decodes or writes) a video."""
    opened = []
    monkeypatch.setattr(av, "open", lambda *a, **k: opened.append(a) or pytest.fail(f"a video was opened: {a}"))
    return opened

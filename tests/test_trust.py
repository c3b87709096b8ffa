"""Nothing read back runs code, and a team can share a run (README: Security and trust).

One small run, made through train.py's entry point under umask 022, gives a real run folder; crafted copies of its
checkpoint and of its folder are then handed to every entry point that reads one (eval, predict, load_checkpoint,
export, train ckpt_path=, resume=). Each crafted file, if its content were executed, would create a marker file: the
marker must never appear, and the refusal must be one line naming the file and the key.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import stat
import sys
from pathlib import Path

import pytest
import torch
from filelock import FileLock

import vivit
from tests.conftest import compose_config, run_entry
from tests.test_train import SMALL_DATA
from vivit import export
from vivit.runtime.preflight import read_resume_checkpoint
from vivit.runtime.resume import resume_arguments
from vivit.tasks import train


class Payload:
    """What a crafted pickle does when it is loaded: create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def shared_run(synthetic_root, tmp_path_factory):
    """`python train.py ...` under umask 022: one epoch of two batches; its run folder."""
    root = tmp_path_factory.mktemp("shared")
    argv = [
        f"data.root={synthetic_root}",
        *SMALL_DATA,
        "trainer.accelerator=cpu",
        "logger=csv",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
        "test=false",
    ]
    previous = os.umask(0o022)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VIVIT_ROOT", str(root))
        patch.setattr(sys, "argv", ["train.py", *argv])
        try:
            train.main()
        finally:
            os.umask(previous)
    (run,) = (root / "outputs" / "train" / "runs").iterdir()
    return run


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a file read back ran code"


def crafted(run: Path, tmp_path: Path, marker: Path, kind: str) -> Path:
    """A copy of the run's last.ckpt that loads fine as data, but would run the payload if its content were trusted:
    `target`: its model config calls torch.load on a pickle beside it (the issue's attack on instantiate);
    `pickle`: it pickles an object (the payload) that weights_only refuses;
    `data`: its data config's index is `builtins.open` of the marker (eval.py instantiates the data config)."""
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    config = checkpoint["vivit_config"]
    if kind == "target":
        payload = tmp_path / "payload.pkl"
        payload.write_bytes(pickle.dumps(Payload(marker)))
        attack = {"_target_": "torch.load", "f": str(payload), "weights_only": False}
        config["resolved"]["model"] = config["source"]["model"] = attack
    elif kind == "pickle":
        checkpoint["extra"] = Payload(marker)
    elif kind == "data":
        config["source"]["data"]["index"] = {"_target_": "builtins.open", "file": str(marker), "mode": "w"}
    path = tmp_path / f"{kind}.ckpt"
    torch.save(checkpoint, path)
    return path


def one_line(message: str) -> str:
    assert "\n" not in message, message
    return message


# ------------------------------------------------------------------------------------------------ checkpoints
def test_the_shared_run_is_readable_by_the_team(shared_run):
    """Under umask 022 every file a run writes is readable by group and others (atomic writes went through
    mkstemp's 0600 before), every folder listable."""
    files = [p for p in shared_run.rglob("*") if p.is_file()]
    names = {p.relative_to(shared_run).as_posix() for p in files}
    assert {"checkpoints/last.ckpt", "metrics.json", "history.json", "curves.png", ".hydra/config.yaml"} <= names
    unreadable = [
        p.relative_to(shared_run).as_posix() for p in files if stat.S_IMODE(p.stat().st_mode) & 0o044 != 0o044
    ]
    assert sorted(unreadable) == []
    assert all(stat.S_IMODE(p.stat().st_mode) & 0o055 == 0o055 for p in shared_run.rglob("*") if p.is_dir())


@pytest.mark.parametrize("kind", ["target", "data"])
def test_eval_refuses_a_crafted_checkpoint_in_one_line(kind, shared_run, tmp_path, marker, monkeypatch):
    ckpt = crafted(shared_run, tmp_path, marker, kind)
    message = one_line(run_entry("eval", [f"ckpt_path={ckpt}", "split=val"], tmp_path, monkeypatch))
    key = {"target": "vivit_config.source.model._target_='torch.load'", "data": "index._target_='builtins.open'"}[kind]
    assert message.startswith(f"error: ckpt_path: '{ckpt}' sets ") and key in message, message
    assert "a config read back from a file is data (if you made it yourself, add trusted=true" in message
    assert not (tmp_path / "outputs").exists()


def test_predict_refuses_a_crafted_checkpoint_in_one_line(shared_run, synthetic_root, tmp_path, marker, monkeypatch):
    ckpt = crafted(shared_run, tmp_path, marker, "target")
    video = next((synthetic_root / "val").rglob("*.mp4"))
    message = one_line(run_entry("predict", [f"ckpt_path={ckpt}", f"inputs={video}"], tmp_path, monkeypatch))
    assert message.startswith(f"error: ckpt_path: '{ckpt}' sets vivit_config.source.model._target_='torch.load'")
    assert not (tmp_path / "outputs").exists()


def test_load_checkpoint_refuses_a_crafted_file_and_trusted_reads_a_pickle(shared_run, tmp_path, marker):
    target = crafted(shared_run, tmp_path, marker, "target")
    with pytest.raises(ValueError) as error:
        vivit.load_checkpoint(target)
    assert one_line(str(error.value)).startswith(
        f"'{target}': vivit_config.resolved.model._target_='torch.load' is not a model of this project"
    )
    pickled = crafted(shared_run, tmp_path, marker, "pickle")
    with pytest.raises(ValueError, match=r"pickles objects other than tensors .* pass trusted=true") as error:
        vivit.load_checkpoint(pickled)
    one_line(str(error.value))
    assert not marker.exists()
    vivit.load_checkpoint(pickled, trusted=True)  # a file of your own: unpickled, its objects made
    assert marker.exists()
    marker.unlink()  # (the fixture checks that no other call made it)


def test_export_refuses_a_pickled_checkpoint_in_one_line(shared_run, tmp_path, marker):
    pickled = crafted(shared_run, tmp_path, marker, "pickle")
    with pytest.raises(SystemExit) as stopped:
        export.main([str(pickled), str(tmp_path / "model.pt2")])
    assert one_line(str(stopped.value.code)).startswith(f"error: '{pickled}' pickles objects other than tensors")
    assert not (tmp_path / "model.pt2").exists()


def test_train_refuses_to_resume_from_a_pickled_checkpoint(shared_run, tmp_path, marker, monkeypatch):
    pickled = crafted(shared_run, tmp_path, marker, "pickle")
    argv = [f"data.root={tmp_path / 'data'}", "logger=none", f"ckpt_path={pickled}"]
    message = one_line(run_entry("train", argv, tmp_path, monkeypatch))
    assert message.startswith(f"error: ckpt_path: '{pickled}' pickles objects other than tensors")
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "data").exists()
    read_resume_checkpoint(str(pickled), trusted=True)  # trusted=true: read as Lightning would read it
    assert marker.exists()
    marker.unlink()


# ------------------------------------------------------------------------------------------------ run folders
def records(run: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (run / ".hydra").iterdir()}


@pytest.fixture
def run_copy(shared_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(shared_run, copy, ignore=shutil.ignore_patterns(".run.lock"))
    return copy


EVIL_CONFIG = "_target_: builtins.open\nfile: {marker}\nmode: w\n"
CRAFTED_OVERRIDES = {  # a line added to the run's overrides.yaml -> the key the refusal names
    "target": ("data.index._target_=builtins.open", "data.index._target_='builtins.open'"),
    "group": ("data=../../../../../../../../..{evil}", "data='../../../"),
    "hydra": ("hydra.callbacks.x._target_=builtins.open", "hydra.callbacks.x._target_="),
    "resolver": ("tags=[${{oc.env:HOME}}]", "tags.0='${oc.env:HOME}', which calls the resolver 'oc.env'"),
}


@pytest.mark.parametrize("kind", CRAFTED_OVERRIDES)
def test_resume_refuses_a_crafted_run_folder_in_one_line(kind, run_copy, tmp_path, marker, monkeypatch):
    evil = tmp_path / "evil.yaml"
    evil.write_text(EVIL_CONFIG.format(marker=marker))
    line, named = CRAFTED_OVERRIDES[kind]
    overrides = run_copy / ".hydra" / "overrides.yaml"
    overrides.write_text(overrides.read_text() + f"- {line.format(evil=evil.with_suffix(''))}\n")
    before = records(run_copy)
    message = one_line(run_entry("train", [f"resume={run_copy}"], tmp_path, monkeypatch))
    assert message.startswith(f"error: resume: '{overrides}' sets ") and named in message, message
    assert records(run_copy) == before and not (tmp_path / "outputs").exists()


def test_resume_refuses_a_pickled_last_checkpoint(run_copy, tmp_path, marker, monkeypatch):
    pickled = crafted(run_copy, tmp_path, marker, "pickle")
    shutil.copyfile(pickled, run_copy / "checkpoints" / "last.ckpt")
    before = records(run_copy)
    message = one_line(run_entry("train", [f"resume={run_copy}"], tmp_path, monkeypatch))
    assert message.startswith("error: ckpt_path: ") and "pickles objects other than tensors" in message
    assert records(run_copy) == before


def test_a_refused_continuation_leaves_the_run_resumable(run_copy, tmp_path, monkeypatch, no_video):
    """ckpt_path=<run>/checkpoints/last.ckpt with another model is refused (it does not fit the checkpoint), and
    the run's records are as they were: `resume=<run>` still replays the run's own overrides."""
    expected = resume_arguments(["train.py", f"resume={run_copy}"])
    before = records(run_copy)
    argv = [f"ckpt_path={run_copy / 'checkpoints' / 'last.ckpt'}", "model.depth=2"]
    message = one_line(run_entry("train", argv, tmp_path, monkeypatch))
    assert message.startswith("error: model: the model config does not fit the checkpoint")
    assert records(run_copy) == before and resume_arguments(["train.py", f"resume={run_copy}"]) == expected


def test_a_run_folder_in_use_is_refused_not_mixed(run_copy, tmp_path, monkeypatch):
    """Two runs given the same hydra.run.dir: the second is refused before it writes anything into it."""
    folder = tmp_path / "shared_folder"
    folder.mkdir()
    with FileLock(folder / ".run.lock", timeout=0):  # a run holding the folder, as runs.hold does
        message = one_line(run_entry("train", [f"hydra.run.dir={folder}", "logger=none"], tmp_path, monkeypatch))
        assert message == (
            f"error: hydra.run.dir: '{folder}' is in use by a run that is still running (it holds .run.lock); two "
            "runs never share a folder: wait for it to end, or choose another folder."
        )
        assert sorted(p.name for p in folder.iterdir()) == [".run.lock"]
    before = records(run_copy)
    with FileLock(run_copy / ".run.lock", timeout=0):  # the run itself, still running
        message = one_line(run_entry("train", [f"resume={run_copy}"], tmp_path, monkeypatch))
    assert message.startswith(f"error: resume: '{run_copy}' is in use by a run that is still running")
    assert records(run_copy) == before


@pytest.mark.parametrize("model", ["vivit_tiny", "vivit_b_fe"])  # a YAML model config and a zoo (registry) one
def test_trust_is_the_command_lines_not_a_model_configs(model):
    """`trusted` is read from the command line only: a model config (saved in every checkpoint, replayed by eval.py)
    never carries it in its init_options, and an init from a zoo config passes it once."""
    cfg = compose_config("train", [f"model={model}"])
    assert "trusted" not in cfg.model.init_options and set(cfg.model.init_options) >= {"tubelet_init", "load_head"}

"""Atomic writes: an interrupted checkpoint or JSON write leaves the previous file whole."""

from __future__ import annotations

import errno

import pytest
import torch

from tests.conftest import compose_config
from vivit.common.files import write_atomically
from vivit.weights.lightning import AtomicCheckpointIO


def disk_full_after_half(monkeypatch):
    """torch.save that writes half of the file and then fails like a full disk does."""
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        import io

        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", save)


def test_an_interrupted_checkpoint_write_keeps_the_previous_last_ckpt(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"epoch": 0, "state_dict": {"net.w": torch.ones(1000)}}, path)
    size = path.stat().st_size
    disk_full_after_half(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"epoch": 1, "state_dict": {"net.w": torch.zeros(1000)}}, path)
    assert path.stat().st_size == size
    previous = torch.load(path, weights_only=True)
    assert previous["epoch"] == 0 and torch.equal(previous["state_dict"]["net.w"], torch.ones(1000))
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary file left behind


def test_the_default_trainer_writes_checkpoints_atomically(tmp_path):
    from vivit.tasks.build import build_trainer

    for trainer in ("default", "ddp"):
        cfg = compose_config(
            "train", [f"trainer={trainer}", "trainer.accelerator=cpu", "trainer.devices=1"], output_dir=tmp_path
        )
        built = build_trainer(cfg.trainer, logger=False)
        assert isinstance(built.strategy.checkpoint_io, AtomicCheckpointIO), trainer


def test_write_atomically_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = write_atomically(tmp_path / "metrics.json", '{"val": 1}')
    from pathlib import Path

    def fail(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", fail)
    with pytest.raises(OSError):
        write_atomically(path, '{"val": 2}')
    monkeypatch.undo()
    assert path.read_text() == '{"val": 1}' and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]

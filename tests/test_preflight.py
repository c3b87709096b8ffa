"""Mistakes reported before any work, in one line naming the key or file (vivit/runtime/preflight.py), through
train/eval.

"Before any work" is checked on a data root that does not exist yet: had the run started, it would have generated
the synthetic dataset there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.conftest import compose_config
from tests.test_train import small_overrides
from vivit.runtime.errors import ConfigError
from vivit.tasks.evaluate import evaluate
from vivit.tasks.train import train


def fresh_data(tmp_path: Path) -> list[str]:
    """A data root not generated yet: the run must fail before it would generate it (the first work it does)."""
    return [o for o in small_overrides(tmp_path / "not_generated") if not o.startswith("data.root=")] + [
        f"data.root={tmp_path / 'not_generated'}"
    ]


def fails_before_work(overrides: list[str], tmp_path: Path, match: str, output_dir: Path | None = None) -> str:
    cfg = compose_config("train", ["debug=fdr", *fresh_data(tmp_path), *overrides], output_dir=output_dir or tmp_path)
    with pytest.raises(ConfigError, match=match) as error:
        train(cfg)
    message = str(error.value)
    assert "\n" not in message
    assert not (tmp_path / "not_generated").exists(), "the check must come before the dataset is generated"
    return message


@pytest.fixture(scope="module")
def checkpoint(synthetic_root, tmp_path_factory) -> Path:
    """A real last.ckpt of one training step (the shared small synthetic set)."""
    out = tmp_path_factory.mktemp("preflight_run")
    cfg = compose_config(
        "train",
        [
            *small_overrides(synthetic_root),
            "trainer.max_epochs=1",
            "test=false",
            "+trainer.limit_train_batches=1",
            "+trainer.limit_val_batches=1",
        ],
        output_dir=out,
    )
    train(cfg)
    return out / "checkpoints" / "last.ckpt"


def test_an_unwritable_checkpoint_or_output_folder_is_named(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    message = fails_before_work(
        [f"callbacks.last_checkpoint.dirpath={blocker}/checkpoints"],
        tmp_path,
        r"^callbacks.last_checkpoint.dirpath: cannot write to",
    )
    assert f"'{blocker}' is a file" in message
    fails_before_work([], tmp_path, r"^paths.output_dir: cannot write to", output_dir=blocker / "run")


def test_a_negative_learning_rate_is_named(tmp_path):
    fails_before_work(["optim.optimizer.lr=-0.1"], tmp_path, r"^optim.optimizer.lr=-0.1: expected a number >= 0")


def test_device_batch_clipping_with_fsdp_or_fp16_is_named(tmp_path):
    """Clipping each device batch needs its whole, unscaled gradient: not sharded (FSDP), not loss-scaled (fp16)."""
    scope = "optim.grad_clip_scope=device_batch"
    fails_before_work([scope, "trainer=fsdp"], tmp_path, r"^optim.grad_clip_scope=device_batch: FSDP shards")
    fails_before_work([scope, "trainer.precision=16-mixed"], tmp_path, r"^optim.grad_clip_scope=device_batch: trainer")


def test_more_cpu_devices_than_cores_is_named(tmp_path):
    cores = os.cpu_count()
    fails_before_work(
        ["trainer.accelerator=cpu", f"trainer.devices={cores + 1}"],
        tmp_path,
        rf"^trainer.devices={cores + 1}: {cores + 1} CPU processes asked for, but this machine has {cores} CPU cores",
    )


def test_resuming_from_a_missing_foreign_truncated_or_weights_only_file_is_named(checkpoint, tmp_path):
    missing = tmp_path / "nope.ckpt"
    fails_before_work([f"ckpt_path={missing}"], tmp_path, rf"^ckpt_path: no checkpoint file at '{missing}'")
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    fails_before_work([f"ckpt_path={text}"], tmp_path, r"^ckpt_path: .* is not a torch.save file")
    data = checkpoint.read_bytes()
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(data[: len(data) * 2 // 3])  # what a full disk left before the writes were atomic
    fails_before_work([f"ckpt_path={truncated}"], tmp_path, r"^ckpt_path: .*truncated.ckpt' is truncated")
    weights_only = tmp_path / "weights.pt"
    torch.save({"state_dict": torch.load(checkpoint, weights_only=True)["state_dict"]}, weights_only)
    fails_before_work(
        [f"ckpt_path={weights_only}"],
        tmp_path,
        r"^ckpt_path: .* is not a training checkpoint \(no optimizer_states, loops\)",
    )
    # `train=false ckpt_path=...` only tests the checkpoint: its weights are enough
    from vivit.runtime.preflight import read_resume_checkpoint

    assert "blocks.0.attn.qkv.weight" in read_resume_checkpoint(str(weights_only), resume=False).weights


def test_resuming_with_a_model_that_does_not_fit_names_the_model_key(checkpoint, tmp_path):
    message = fails_before_work(
        [f"ckpt_path={checkpoint}", "model.embed_dim=32", "model.num_heads=2"],
        tmp_path,
        r"^model: the model config does not fit the checkpoint",
    )
    assert "model.embed_dim=32 here, 64 in the checkpoint" in message and str(checkpoint) in message


def test_evaluating_with_a_model_that_does_not_fit_names_the_model_key(checkpoint, tmp_path):
    overrides = [f"ckpt_path={checkpoint}", "split=val", "model.depth=2"]
    cfg = compose_config("eval", [*overrides, "trainer.accelerator=cpu"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"^model: the model config does not fit the checkpoint") as error:
        evaluate(cfg, overrides=overrides)
    assert "model.depth=2 here, 3 in the checkpoint" in str(error.value) and "\n" not in str(error.value)
    assert "eval.py takes the model config from the checkpoint" in str(error.value)


def test_a_correct_resume_passes_the_checks(checkpoint, synthetic_root, tmp_path):
    """The checks do not reject what is right: the same config resumes (one more epoch) from the checkpoint."""
    cfg = compose_config(
        "train",
        [
            *small_overrides(synthetic_root),
            "trainer.max_epochs=2",
            "test=false",
            "+trainer.limit_train_batches=1",
            "+trainer.limit_val_batches=1",
            f"ckpt_path={checkpoint}",
        ],
        output_dir=tmp_path,
    )
    assert train(cfg)["val"]

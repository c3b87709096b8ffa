"""End to end through the real configs: train (fast_dev_run and a short real run), eval, CLI, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import compose_config, run_entry
from vivit.runtime.errors import ConfigError
from vivit.tasks.evaluate import evaluate
from vivit.tasks.train import train

SMALL_DATA = ["data.index.num_train=64", "data.index.num_val=32", "data.index.num_test=32", "data.batch_size=16"]


def small_overrides(synthetic_root: Path) -> list[str]:
    return [f"data.root={synthetic_root}", *SMALL_DATA, "logger=none", "trainer.accelerator=cpu"]


def test_fast_dev_run_trains_validates_and_tests(synthetic_root, tmp_path):
    cfg = compose_config("train", ["debug=fdr", *small_overrides(synthetic_root)], output_dir=tmp_path)
    summary = train(cfg)
    assert set(summary["val"]) >= {"val/top1", "val/top5", "val/loss"}
    assert set(summary["test"]) >= {"test/top1", "test/top5", "test/loss"}
    assert json.loads((tmp_path / "metrics.json").read_text())["val"] == summary["val"]


@pytest.fixture(scope="module")
def trained_run(synthetic_root, tmp_path_factory):
    """Two real epochs on the small synthetic set: checkpoints, metrics.json, curves."""
    out = tmp_path_factory.mktemp("run")
    overrides = [*small_overrides(synthetic_root), "trainer.max_epochs=2", "callbacks=default", "logger=csv"]
    cfg = compose_config("train", overrides, output_dir=out)
    return out, train(cfg)


def test_training_writes_checkpoints_metrics_and_curves(trained_run):
    out, summary = trained_run
    assert Path(summary["checkpoint"]).is_file()
    assert Path(summary["checkpoint"]).parent == out / "checkpoints"
    last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert (last["epoch"], last["global_step"]) == (1, 8)  # the last of 2 epochs of 4 steps, not the best one
    assert Path(summary["checkpoint"]).name == "last.ckpt"  # the final weights are the tested ones (scenic)
    assert any(p.name.startswith("epoch") for p in (out / "checkpoints").iterdir())  # the best keeps its own name
    names = [p.name for p in (out / "checkpoints").iterdir()]
    assert all("/" not in n for n in names) and not any(p.is_dir() for p in (out / "checkpoints").iterdir())
    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1]
    assert {"train/loss", "val/top1"} <= set(history[-1])
    assert (out / "curves.png").stat().st_size > 1000
    assert (out / "csv" / "metrics.csv").is_file()
    checkpoint = torch.load(summary["checkpoint"], map_location="cpu", weights_only=False)
    assert checkpoint["vivit_config"]["resolved"]["model"]["num_classes"] == 8
    from vivit.datamodules.synthetic import CLASSES

    assert checkpoint["vivit_config"]["classes"] == CLASSES  # the index's names, in label order


def test_eval_reproduces_the_validation_top1_of_the_run(trained_run, tmp_path):
    out, summary = trained_run
    cfg = compose_config(
        "eval", [f"ckpt_path={summary['checkpoint']}", "split=val", "trainer.accelerator=cpu"], output_dir=tmp_path
    )
    # model and data come from the checkpoint: the composed defaults (full-size synthetic set) are replaced
    result = evaluate(cfg, overrides=[f"ckpt_path={summary['checkpoint']}", "split=val"])
    assert result["val"]["val/top1"] == pytest.approx(summary["val"]["val/top1"], abs=1e-6)
    assert result["val"]["val/loss"] == pytest.approx(summary["val"]["val/loss"], rel=1e-5)
    assert json.loads((tmp_path / "metrics.json").read_text())["val"] == result["val"]


def test_eval_multi_view_test_and_key_override_on_saved_data(trained_run, tmp_path):
    out, summary = trained_run
    overrides = [f"ckpt_path={summary['checkpoint']}", "eval.views=2x3", "data.batch_size=4"]
    cfg = compose_config("eval", [*overrides, "trainer.accelerator=cpu"], output_dir=tmp_path)
    result = evaluate(cfg, overrides=overrides)
    assert result["views"] == {"test": "2x3"}
    assert 0.0 <= result["test"]["test/top1"] <= 1.0


def test_bad_shapes_fail_before_training_with_the_config_key(synthetic_root, tmp_path):
    cfg = compose_config(
        "train", ["debug=fdr", *small_overrides(synthetic_root), "model.num_frames=7"], output_dir=tmp_path
    )
    with pytest.raises(ConfigError, match=r"model.num_frames=7"):
        train(cfg)
    cfg = compose_config(
        "train", ["debug=fdr", *small_overrides(synthetic_root), "model.img_size=36"], output_dir=tmp_path
    )
    with pytest.raises(ConfigError, match=r"model.img_size=36"):
        train(cfg)


def test_unknown_dataset_root_is_a_one_line_error(tmp_path):
    missing = tmp_path / "no_such_dataset"
    cfg = compose_config(
        "train",
        ["debug=fdr", "data=folder", f"data.root={missing}", "data.num_classes=3", "logger=none"],
        output_dir=tmp_path / "out",
    )
    with pytest.raises(ConfigError) as error:
        train(cfg)
    assert str(missing) in str(error.value) and "\n" not in str(error.value)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_eval_without_a_checkpoint_is_one_line(tmp_path, monkeypatch):
    """eval.py's entry point (in this process): a missing or absent ckpt_path exits with one line, no traceback."""
    out = f"paths.log_dir={tmp_path / 'outputs'}"
    message = run_entry("eval", ["ckpt_path=/nonexistent/best.ckpt", out], tmp_path, monkeypatch)
    assert message.startswith("error: ckpt_path: no checkpoint file at '/nonexistent/best.ckpt'"), message
    assert run_entry("eval", [out], tmp_path, monkeypatch).startswith("error: ckpt_path: missing")


def test_model_init_loads_an_image_vit_before_training(synthetic_root, tmp_path):
    """`model.init=<ViT file>`: the tiny demo model starts from a matching image ViT (central-frame tubelets)."""
    from safetensors.torch import save_file
    from timm.models.vision_transformer import VisionTransformer

    from vivit.tasks.build import build

    vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=3, num_heads=4, num_classes=0)
    for p in vit.parameters():
        torch.nn.init.normal_(p, std=0.1)
    save_file(vit.state_dict(), str(tmp_path / "vit.safetensors"))
    overrides = ["debug=fdr", *small_overrides(synthetic_root), f"model.init={tmp_path / 'vit.safetensors'}"]
    net = build(compose_config("train", overrides, output_dir=tmp_path), "fit").module.net
    assert torch.equal(net.blocks[2].mlp.fc2.weight, vit.blocks[2].mlp.fc2.weight)
    assert torch.equal(net.patch_embed.proj.weight[:, :, 1], vit.patch_embed.proj.weight)  # central frame of t=2
    assert not net.patch_embed.proj.weight[:, :, 0].any()
    with pytest.raises(ConfigError, match="model.init"):
        build(
            compose_config("train", [*overrides[:-1], f"model.init={tmp_path / 'missing.pth'}"], output_dir=tmp_path),
            "fit",
        )


def test_eval_saves_per_video_predictions(trained_run, tmp_path):
    out, summary = trained_run
    overrides = [f"ckpt_path={summary['checkpoint']}", "eval.save_predictions=true", "eval.views=2x1"]
    cfg = compose_config("eval", [*overrides, "trainer.accelerator=cpu"], output_dir=tmp_path)
    result = evaluate(cfg, overrides=overrides)
    predictions = torch.load(result["predictions"])
    assert len(predictions["ids"]) == len(set(predictions["ids"])) == 32  # every test video once
    logits = predictions["logits"][""]
    assert logits.shape == (32, 8)
    # the saved logits give the same top-1 as the logged metric
    from vivit.datamodules.folder import FolderVideos  # noqa: F401  (the synthetic index is a FolderVideos)

    cfg_data = torch.load(summary["checkpoint"], weights_only=False)["vivit_config"]["resolved"]["data"]
    index = hydra_index(cfg_data)
    label_of = {r.id: r.label for r in index.records("test")}
    labels = torch.tensor([label_of[i] for i in predictions["ids"]])
    top1 = (logits.argmax(1) == labels).float().mean().item()
    assert top1 == pytest.approx(result["test"]["test/top1"], abs=1e-6)


def hydra_index(data_cfg: dict):
    import hydra

    return hydra.utils.instantiate(data_cfg["index"])


def test_eval_accepts_a_converted_file_and_needs_a_data_choice(synthetic_root, tmp_path):
    """A `vivit.convert` output holds only the model: eval.py takes the data from the command line."""
    from omegaconf import OmegaConf

    from vivit.models import build_model
    from vivit.weights.checkpoint import save_checkpoint

    train_cfg = compose_config("train", small_overrides(synthetic_root), output_dir=tmp_path)
    model_source = OmegaConf.to_container(train_cfg.model, resolve=False)
    model_resolved = {**OmegaConf.to_container(train_cfg.model, resolve=True), "num_classes": 8}
    net = build_model(model_resolved)
    save_checkpoint(tmp_path / "converted.pt", net.state_dict(), model_source, model_resolved)

    overrides = [f"ckpt_path={tmp_path / 'converted.pt'}", "split=val"]
    cfg = compose_config("eval", overrides, output_dir=tmp_path)
    with pytest.raises(ConfigError, match="data: the checkpoint does not say which data"):
        evaluate(cfg, overrides=overrides)

    overrides += ["data=synthetic", *[o for o in small_overrides(synthetic_root) if o.startswith("data.")]]
    cfg = compose_config("eval", [*overrides, "trainer.accelerator=cpu"], output_dir=tmp_path)
    result = evaluate(cfg, overrides=overrides)
    # the zero-initialised head of a fresh model predicts class 0 for every clip: top-1 = share of class 0
    assert result["val"]["val/top1"] == pytest.approx(1 / 8, abs=1e-6)


def test_eval_warns_when_the_checkpoint_names_other_classes(synthetic_root, tmp_path, caplog):
    """Class names round-trip train -> convert -> eval: a file whose names are not the data's is flagged."""
    from omegaconf import OmegaConf

    from vivit.datamodules.synthetic import CLASSES
    from vivit.models import build_model
    from vivit.weights.checkpoint import save_checkpoint

    train_cfg = compose_config("train", small_overrides(synthetic_root), output_dir=tmp_path)
    source = OmegaConf.to_container(train_cfg.model, resolve=False)
    resolved = {**OmegaConf.to_container(train_cfg.model, resolve=True), "num_classes": 8}
    state = build_model(resolved).state_dict()
    data = ["data=synthetic", *[o for o in small_overrides(synthetic_root) if o.startswith("data.")]]
    for name, classes in (("same.pt", CLASSES), ("swapped.pt", [CLASSES[1], CLASSES[0], *CLASSES[2:]])):
        save_checkpoint(tmp_path / name, state, source, resolved, classes)
        overrides = [f"ckpt_path={tmp_path / name}", "split=val", *data]
        caplog.clear()
        evaluate(compose_config("eval", [*overrides, "trainer.accelerator=cpu"], output_dir=tmp_path), overrides)
        warned = [r.getMessage() for r in caplog.records if "other classes" in r.getMessage()]
        if name == "same.pt":
            assert warned == []
        else:
            assert len(warned) == 1 and f"label 0 is {CLASSES[1]!r} in the checkpoint" in warned[0]


def test_a_missing_dataset_root_is_a_one_line_error_naming_the_key(tmp_path):
    cfg = compose_config("train", ["debug=fdr", "data=k400", "logger=none"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"^data.root: no value") as error:
        train(cfg)
    assert "\n" not in str(error.value)

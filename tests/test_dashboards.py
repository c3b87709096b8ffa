"""The resolved config reaches every logger; W&B also gets the model's parameters and GFLOPs (real wandb, offline)."""

from __future__ import annotations

import json

import yaml

from tests.conftest import compose_config
from tests.fixtures.wandb_records import read_records, run_config
from tests.test_train import small_overrides
from vivit.flops import build_meta_model, model_stats
from vivit.tasks import train


def test_offline_wandb_run_holds_the_resolved_config_and_the_model_cost(synthetic_root, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    overrides = [*small_overrides(synthetic_root), "logger=wandb", "+trainer.fast_dev_run=true",
                 "optim.optimizer.lr=0.0123"]
    cfg = compose_config("train", overrides, output_dir=tmp_path)
    train(cfg)
    [log] = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    config = run_config(read_records(log))
    assert json.loads(config["optim"])["optimizer"]["lr"] == 0.0123  # the resolved config, nested
    assert json.loads(config["model"])["num_classes"] == 8  # ${data.num_classes} resolved
    assert json.loads(config["data"])["root"] == str(synthetic_root)
    stats = model_stats(build_meta_model(cfg.model))
    assert json.loads(config["model/params"]) == stats["params"] > 100_000
    assert abs(json.loads(config["model/gflops_per_view"]) - stats["gflops"]) < 1e-5


def test_csv_logger_gets_the_resolved_config(synthetic_root, tmp_path):
    overrides = [*small_overrides(synthetic_root), "logger=csv", "trainer.max_epochs=1", "optim.optimizer.lr=0.0456"]
    train(compose_config("train", overrides, output_dir=tmp_path))
    hparams = yaml.safe_load((tmp_path / "csv" / "hparams.yaml").read_text())
    assert hparams["optim"]["optimizer"]["lr"] == 0.0456 and hparams["model"]["num_classes"] == 8
    # throughput, once per epoch: 64 training clips in 4 batches, 32 val clips
    import csv

    rows = list(csv.DictReader((tmp_path / "csv" / "metrics.csv").open()))
    train_rate = [float(r["perf/train_clips_per_s"]) for r in rows if r.get("perf/train_clips_per_s")]
    val = [float(r["perf/val_clips_per_s"]) for r in rows if r.get("perf/val_clips_per_s")]
    assert len(train_rate) == 1 and 1 < train_rate[0] < 1e5 and len(val) == 2 and all(1 < v < 1e5 for v in val)

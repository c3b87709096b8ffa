"""The resolved config reaches every logger; W&B also gets the model's parameters and GFLOPs, the throughput and
the final test's confusion matrix, per-class and worst-classes tables and sample clips (real wandb, offline),
which are files in the run folder too."""

from __future__ import annotations

import csv
import json

import pytest
import yaml
from omegaconf import OmegaConf

from tests.fixtures.wandb_records import history_items, read_records, run_config
from vivit.datamodules.synthetic import CLASSES
from vivit.flops import build_meta_model, model_stats


def test_offline_wandb_run_holds_the_config_the_model_cost_and_the_test_outputs(logged_run, synthetic_root):
    out, _, cfg = logged_run
    [log] = (out / "wandb").glob("offline-run-*/run-*.wandb")
    records = read_records(log)
    config = run_config(records)
    assert json.loads(config["module"])["views_per_forward"] == 4  # the command line's value
    assert json.loads(config["module"])["warmup_epochs"] == cfg.optim.warmup_epochs  # ${optim.warmup_epochs} resolved
    assert json.loads(config["model"])["num_classes"] == 8  # what the data decided, as the model was built
    assert json.loads(config["data"])["root"] == str(synthetic_root)
    stats = model_stats(build_meta_model({**OmegaConf.to_container(cfg.model, resolve=True), "num_classes": 8}))
    assert json.loads(config["model/params"]) == stats["params"] > 100_000
    assert abs(json.loads(config["model/gflops_per_view"]) - stats["gflops"]) < 1e-5
    assert json.loads(config["model/gflops_per_test_video"]) == json.loads(config["model/gflops_per_view"])  # 1x1
    # the throughput and the final test's evaluation outputs, as W&B media in the run, and as files in the run folder
    logged = history_items(records)
    assert all(logged[f"perf/{stage}_clips_per_s"] > 0 for stage in ("train", "val", "test"))
    files = log.parent / "files"
    assert logged["test/confusion"]["_type"] == "image-file"
    assert (files / logged["test/confusion"]["path"]).stat().st_size > 1000
    tables = {
        key: json.loads((files / logged[key]["path"]).read_text()) for key in ("test/per_class", "test/worst_classes")
    }
    assert all(logged[key]["_type"] == "table-file" for key in tables)
    assert tables["test/per_class"]["columns"] == ["class", "name", "count", "top1", "top5"]
    assert [row[1] for row in tables["test/per_class"]["data"]] == CLASSES  # one row per class, by name
    assert sum(row[2] for row in tables["test/per_class"]["data"]) == 32  # every test video; counts as numbers
    worst = tables["test/worst_classes"]["data"]
    assert worst and [row[3] for row in worst] == sorted(row[3] for row in worst)  # lowest top-1 first
    samples = logged["test/samples"]
    assert samples["_type"] == "images/separated" and samples["count"] == len(samples["captions"]) == 8
    assert len({caption.split(" | ")[1] for caption in samples["captions"]}) == 8  # one clip of each class
    for caption in samples["captions"]:  # "<video> | true: X | predicted: Y (p%)"
        video, true, predicted = caption.split(" | ")
        assert (
            true.removeprefix("true: ") in CLASSES and predicted.removeprefix("predicted: ").split(" (")[0] in CLASSES
        )
    # the confusion matrix and the strips of the final validation and of the test
    assert len(list((files / "media" / "images").rglob("*.png"))) == 2 * (1 + 8)
    for name in (
        "confusion_test.png",
        "per_class_test.csv",
        "worst_classes_test.csv",
        "samples_test.png",
        "confusion_val.png",
        "samples_val.png",
    ):
        assert (out / name).stat().st_size > 100, name
    # the whole-split metrics reach W&B from where metrics.json gets them
    summary = json.loads((out / "metrics.json").read_text())
    for split in ("val", "test"):
        key = f"{split}/mean_class_top1"
        assert logged[key] == pytest.approx(summary[split][key]) and 0 <= logged[key] <= 1


def test_csv_logger_gets_the_resolved_config_and_the_throughput(logged_run):
    out, _, _ = logged_run
    hparams = yaml.safe_load((out / "csv" / "hparams.yaml").read_text())
    assert hparams["module"]["views_per_forward"] == 4 and hparams["model"]["num_classes"] == 8
    logged = {key for row in csv.DictReader((out / "csv" / "metrics.csv").open()) for key, v in row.items() if v}
    assert {"val/mean_class_top1", "test/mean_class_top1", "test/mean_class_top5"} <= logged  # whole-split metrics
    # throughput, once per epoch: 64 training clips in 4 batches, 32 val clips (the epoch's and the final validation)
    rows = list(csv.DictReader((out / "csv" / "metrics.csv").open()))
    train_rate = [float(r["perf/train_clips_per_s"]) for r in rows if r.get("perf/train_clips_per_s")]
    val = [float(r["perf/val_clips_per_s"]) for r in rows if r.get("perf/val_clips_per_s")]
    assert len(train_rate) == 1 and 1 < train_rate[0] < 1e5 and len(val) == 2 and all(1 < v < 1e5 for v in val)

"""The Optuna sweeper preset: composes, and a 2-trial sweep runs train.py and gets val/top1 back."""

from __future__ import annotations

import yaml

from tests.conftest import compose_config
from tests.test_docs import run_in_process
from tests.test_train import SMALL_DATA


def test_optuna_preset_composes_with_the_search_space(tmp_path):
    cfg = compose_config("train", ["+sweep=optuna_lr_reg"], output_dir=tmp_path)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert sweeper.direction == "maximize" and cfg.optimized_metric == "val/top1"
    assert sweeper.params["optim.optimizer.lr"] == "tag(log, interval(1e-3, 1.0))"
    assert {"regularisation.label_smoothing", "regularisation.mixup_alpha", "model.drop_path_rate"} <= set(
        sweeper.params
    )


def test_two_trial_optuna_sweep_runs_and_reports_the_best_value(synthetic_root, tmp_path, monkeypatch):
    """train.py's entry point in this process (the sweeper plugin runs the trials in it too)."""
    monkeypatch.chdir(tmp_path)
    args = [
        "+sweep=optuna_lr_reg",
        "hydra.sweeper.n_trials=2",
        "debug=fdr",
        f"data.root={synthetic_root}",
        *SMALL_DATA,
        "data.cache_decoded=false",  # fdr reads 1 batch
        "logger=none",
        "trainer.accelerator=cpu",
        f"hydra.sweep.dir={tmp_path}",
    ]
    assert run_in_process("train.py", args) == 0
    best = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    assert 0.0 <= best["best_value"] <= 1.0
    assert 1e-3 <= best["best_params"]["optim.optimizer.lr"] <= 1.0
    lrs = {yaml.safe_load((tmp_path / str(job) / ".hydra" / "overrides.yaml").read_text())[0] for job in (0, 1)}
    assert len(lrs) == 2  # two different trials

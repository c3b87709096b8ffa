"""What train.py prints when its output is piped: progress lines instead of a live bar, no library tips,
deprecation noise or notices nobody can act on, the project's own model line instead of Lightning's summary, the
views of each split, paths on one line, and one epoch numbering (from 0) everywhere."""

from __future__ import annotations

import json
import re
import sys
import warnings

import pytest
import torch
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.utilities.warnings import PossibleUserWarning

from tests.conftest import ROOT
from tests.test_train import run_cli, small_overrides
from vivit.tracking.console import ProgressLines, progress_bar, quiet_libraries, views_line


def test_a_piped_train_run_prints_clean_wide_lines_and_one_epoch_numbering(synthetic_root, tmp_path):
    log_dir = tmp_path / "a_folder_name_long_enough_that_the_checkpoint_path_passes_eighty_columns"
    result = run_cli(
        str(ROOT / "train.py"),
        *small_overrides(synthetic_root),
        "trainer.max_epochs=2",
        "test=false",
        "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1",
        "callbacks.rich_progress_bar.every_s=0",  # a progress line after every batch
        "logger=csv",  # with a logger, 2 batches an epoch would bring Lightning's log_every_n_steps hint
        f"paths.log_dir={log_dir}",
        cwd=tmp_path,
    )  # stdout and stderr are pipes here, not a terminal
    assert result.returncode == 0, result.stderr[-3000:]
    # the run writes into its own Hydra folder under paths.log_dir, nothing of Lightning's own beside it
    (out,) = (log_dir / "train" / "runs").iterdir()
    assert not (tmp_path / "lightning_logs").exists() and not (ROOT / "lightning_logs").exists()
    printed = result.stdout + result.stderr
    noises = ("💡", "Tip:", "litlogger", "litmodels", "deprecated", "FutureWarning", "Total FLOPs", "weights_only")
    notices = ("logging interval", "TPU available", "to estimate number of stepping batches")
    for noise in (*noises, *notices):
        assert noise not in printed, f"{noise!r} in the output:\n{printed[-3000:]}"
    assert re.search(r"^model: FactorisedEncoderViViT, 0.227 M parameters .* GFLOPs per view", printed, re.M)
    last = out / "checkpoints" / "last.ckpt"
    assert f"\ncheckpoint: {last}\n" in result.stdout  # the whole path on one line (> 80 characters)
    assert f"\noutputs:    {out}\n" in result.stdout
    # progress lines, not a live bar: per batch (every_s=0) epoch, step of the fit, loss, pace and ETA ...
    steps = re.findall(
        r"^epoch (\d)/1  step (\d)/4  loss ([\d.]+)  [\d.]+ clips/s  ETA (\d+:\d\d:\d\d|\?)$", printed, re.M
    )
    assert [(e, s) for e, s, *_ in steps] == [("0", "1"), ("0", "2"), ("1", "3"), ("1", "4")], printed[-3000:]
    assert steps[-1][3] == "0:00:00"  # nothing left after the last step
    # ... and each epoch's metrics, with the validation's
    ends = re.findall(r"^epoch (\d)/1 done in \d+:\d\d:\d\d  .*train/top1 [\d.]+  val/top1 ([\d.]+)", printed, re.M)
    assert [e for e, _ in ends] == ["0", "1"] and "Epoch " not in printed, printed[-3000:]  # no Rich bar
    assert re.search(r"^validation  batch 1/1  [\d.]+ videos/s  ETA 0:00:00$", printed, re.M), printed[-3000:]
    history = json.loads((out / "history.json").read_text())
    assert float(ends[-1][1]) == pytest.approx(history[-1]["val/top1"], abs=1e-4)
    assert "\nviews:      val 1x1 (the centre clip, centre crop)\n" in result.stdout  # test=false: no test views
    assert re.search(r"^│ mean_class_top1 +│ +[\d.]+% │$", result.stdout, re.M), result.stdout[-2000:]
    # the last epoch has one number in the progress lines, the checkpoints and history.json (curves: below)
    shown = [int(n) for n in re.findall(r"^epoch (\d+)/1\b", printed, re.M)]
    history = [row["epoch"] for row in history]
    saved = torch.load(last, map_location="cpu", weights_only=True)["epoch"]
    best = [int(p.name[5:8]) for p in (out / "checkpoints").glob("epoch*.ckpt")]
    assert shown[-1] == history[-1] == saved == 1 and history == [0, 1] and len(best) == 1 and best[0] in history


def test_curves_number_epochs_as_history_json(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from vivit.training.callbacks import plot_curves

    drawn = {}
    save = Figure.savefig

    def keep(self, *args, **kwargs):
        drawn["x"] = [list(line.get_xdata()) for ax in self.axes for line in ax.lines]
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    history = [
        {"epoch": 0, "step": 4, "train/loss": 2.0, "val/top1": 0.2},
        {"epoch": 1, "step": 8, "train/loss": 1.5, "val/top1": 0.4},
    ]
    plot_curves(history, tmp_path / "curves.png")
    assert drawn["x"] == [[0, 1], [0, 1]] and (tmp_path / "curves.png").stat().st_size > 1000


def test_the_progress_is_a_live_bar_on_a_terminal_and_lines_elsewhere(monkeypatch):
    class Terminal:
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdout", Terminal())
    assert isinstance(progress_bar(every_s=5), RichProgressBar)
    monkeypatch.undo()
    lines = progress_bar(every_s=5)  # pytest captures stdout: not a terminal
    assert isinstance(lines, ProgressLines) and lines.every_s == 5.0


def test_notices_nobody_can_act_on_are_dropped_and_warnings_they_can_are_kept():
    hint = "The number of training batches (3) is smaller than the logging interval Trainer(log_every_n_steps=10)."
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_libraries()
        warnings.warn(hint, PossibleUserWarning, stacklevel=1)
        warnings.warn("GPU available but not used. You can set it by doing `Trainer(accelerator='gpu')`.", stacklevel=1)
    assert [str(w.message)[:13] for w in caught] == ["GPU available"]


def test_views_line_says_what_each_split_was_scored_with():
    assert views_line({"val": "1x1", "test": "4x3"}) == (
        "val 1x1 (the centre clip, centre crop), test 4x3 (4 clips x 3 crops, mean of the logits)"
    )
    assert views_line({"test": "2x1"}) == "test 2x1 (2 clips x 1 crop, mean of the logits)"

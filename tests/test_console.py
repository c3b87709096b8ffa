"""What train.py prints when its output is piped: no library tips or deprecation noise, the project's own model
line instead of Lightning's summary, paths on one line, and one epoch numbering (from 0) everywhere."""

from __future__ import annotations

import json
import re

import torch

from tests.conftest import ROOT
from tests.test_train import run_cli, small_overrides


def test_a_piped_train_run_prints_clean_wide_lines_and_one_epoch_numbering(synthetic_root, tmp_path):
    out = tmp_path / "a_folder_name_long_enough_that_the_checkpoint_path_passes_eighty_columns" / "run"
    result = run_cli(
        str(ROOT / "train.py"),
        *small_overrides(synthetic_root),
        "trainer.max_epochs=2",
        "test=false",
        "+trainer.limit_train_batches=1",
        "+trainer.limit_val_batches=1",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
    )  # stdout and stderr are pipes here, not a terminal
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout + result.stderr
    for noise in ("💡", "Tip:", "litlogger", "litmodels", "deprecated", "FutureWarning", "Total FLOPs", "weights_only"):
        assert noise not in printed, f"{noise!r} in the output:\n{printed[-3000:]}"
    assert re.search(r"^model: FactorisedEncoderViViT, 0.227 M parameters .* GFLOPs per view", printed, re.M)
    last = out / "checkpoints" / "last.ckpt"
    assert f"\ncheckpoint: {last}\n" in result.stdout  # the whole path on one line (> 80 characters)
    assert f"\noutputs:    {out}\n" in result.stdout
    # the progress bar's last line keeps its metrics on it (rich wraps them at 80 columns when piped)
    assert re.search(r"^Epoch 1/1 .* val/top1: [\d.]+ .*train/top1: [\d.]+ *$", printed, re.M), printed[-3000:]
    # the last epoch has one number in the progress bar, the checkpoints and history.json (curves: below)
    shown = [int(n) for n in re.findall(r"Epoch (\d+)/1\b", printed)]
    history = [row["epoch"] for row in json.loads((out / "history.json").read_text())]
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

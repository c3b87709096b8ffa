"""What a run prints: the project's own lines, without library tips and deprecation noise, readable when piped.

- `quiet_libraries()` drops Lightning's advertising tips ("💡 Tip: ... litlogger / litmodels"), its
  "`weights_only` was not set" notice, and deprecation warnings raised inside the libraries (not actionable
  here; `python -W default train.py ...` or PYTHONWARNINGS shows them again).
- Lightning's model summary is off (conf/trainer/default.yaml: its FLOPs column reads 0 for this model);
  `model_line` prints parameters and GFLOPs per view as `python -m vivit.flops` counts them.
- `print_summary` ends a run with a results table (split x metric) and where its files are.
- Output that is not a terminal (a log file, a scheduler's capture) gets wide lines (`PIPED_WIDTH`) instead of
  rich's 80 columns, so paths and metric rows are never wrapped in the middle of a name.
- Epochs are numbered from 0 everywhere: the progress bar ("Epoch 1/1" is the second of two), checkpoint names
  (epoch001-...), history.json and the x axis of curves.png, as Lightning's `current_epoch`.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Mapping
from typing import Any

from lightning.pytorch.callbacks import RichProgressBar
from rich.console import Console
from rich.table import Table
from torch import nn

PIPED_WIDTH = 240
LIBRARIES = "(lightning|lightning_fabric|lightning_utilities|torch|torchvision|torchmetrics|timm|hydra|omegaconf|wandb)"
# (logger, start of the message) of library notices that say nothing about this run
NOTICES = (
    ("lightning.pytorch.utilities.rank_zero", "💡 Tip:"),
    ("lightning.pytorch.trainer.connectors.checkpoint_connector", "`weights_only` was not set"),
)


class _DropNotice(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def quiet_libraries() -> None:
    """Install the filters (idempotent)."""
    for name, prefix in NOTICES:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNotice) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_DropNotice(prefix))
    if not sys.warnoptions:  # the user asked for warnings (-W, PYTHONWARNINGS): leave them alone
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category, module=rf"{LIBRARIES}(\.|$)")


def piped_console_kwargs() -> dict[str, Any]:
    """rich Console arguments: a wide fixed width when stdout is not a terminal, else rich's own detection."""
    return {} if sys.stdout.isatty() else {"width": PIPED_WIDTH}


class ProgressBar(RichProgressBar):
    """Lightning's rich progress bar, with wide lines instead of 80 columns when the output is piped."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["console_kwargs"] = {**piped_console_kwargs(), **(kwargs.get("console_kwargs") or {})}
        super().__init__(**kwargs)


def model_line(net: nn.Module, stats: Mapping[str, Any]) -> str:
    """One line instead of Lightning's model summary: the class, parameters and GFLOPs per view (`stats` of
    vivit.models.flops: the paper's multiply-add convention, as `python -m vivit.flops` counts them)."""
    params = sum(p.numel() for p in net.parameters())
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    return (
        f"model: {type(net).__name__}, {params / 1e6:.3g} M parameters ({trainable / 1e6:.3g} M trainable), "
        f"{stats['gflops']:.3g} GFLOPs per view ({stats['num_frames']} frames x {stats['img_size']} px, "
        f"{stats['tokens']} tokens)"
    )


def print_summary(summary: Mapping[str, Any]) -> None:
    """A results table (split x metric) and where the run's files are."""
    splits = [s for s in ("val", "test") if s in summary]
    names = sorted({k.split("/", 1)[1] for s in splits for k in summary[s] if k.startswith(f"{s}/")})
    table = Table(title="Results")
    table.add_column("metric")
    for split in splits:
        table.add_column(split, justify="right")
    for name in names:
        cells = []
        for split in splits:
            value = summary[split].get(f"{split}/{name}")
            is_accuracy = "top" in name
            cells.append(
                ""
                if value is None
                else f"{100 * value:.2f}%"
                if is_accuracy
                else f"{int(value)}"
                if name == "unreadable"
                else f"{value:.4f}"
            )
        table.add_row(name, *cells)
    console = Console(**piped_console_kwargs())
    console.print(table)
    unreadable = {split: counts for split, counts in (summary.get("unreadable") or {}).items() if any(counts)}
    if unreadable:  # per split, one number per pass (epoch) over it
        console.print("unreadable videos per pass: " + ", ".join(f"{k} {v}" for k, v in unreadable.items()))
    if "test_best" in summary:
        best = {k.split("/", 1)[1]: v for k, v in summary["test_best"].items() if "top" in k}
        console.print(
            "best-by-val checkpoint on test (not the reported number): "
            + ", ".join(f"{k} {100 * v:.2f}%" for k, v in sorted(best.items()))
        )
    if summary.get("checkpoint"):
        console.print(f"checkpoint: {summary['checkpoint']}", soft_wrap=True, highlight=False)
    console.print(f"outputs:    {summary['output_dir']}", soft_wrap=True, highlight=False)

"""What a run prints: the project's own lines, without library tips and deprecation noise, readable when piped.

- `quiet_libraries()` drops Lightning's advertising tips ("💡 Tip: ... litlogger / litmodels"), its
  "`weights_only` was not set" notice, and deprecation warnings raised inside the libraries (not actionable
  here; `python -W default train.py ...` or PYTHONWARNINGS shows them again).
- Lightning's model summary is off (conf/trainer/default.yaml: its FLOPs column reads 0 for this model);
  `model_line` prints parameters and GFLOPs per view as `python -m vivit.flops` counts them.
- Output that is not a terminal (a log file, a scheduler's capture) gets wide lines (`PIPED_WIDTH`) instead of
  rich's 80 columns, so paths and metric rows are never wrapped in the middle of a name.
- Epochs are numbered from 0 everywhere: the progress bar ("Epoch 1/1" is the second of two), checkpoint names
  (epoch001-...), history.json and the x axis of curves.png, as Lightning's `current_epoch`.
"""

from __future__ import annotations

import logging
import sys
import warnings
from typing import Any

from lightning.pytorch.callbacks import RichProgressBar
from torch import nn

PIPED_WIDTH = 240
LIBRARIES = ("(lightning|lightning_fabric|lightning_utilities|torch|torchvision|torchmetrics|timm|hydra|omegaconf"
             "|wandb)")
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


def model_line(net: nn.Module, model_cfg: Any) -> str:
    """One line instead of Lightning's model summary: the class, parameters and GFLOPs per view (the paper's
    multiply-add convention, as `python -m vivit.flops` counts them)."""
    from vivit.flops import build_meta_model, model_stats

    params = sum(p.numel() for p in net.parameters())
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    line = f"model: {type(net).__name__}, {params / 1e6:.3g} M parameters ({trainable / 1e6:.3g} M trainable)"
    try:
        stats = model_stats(build_meta_model(model_cfg))
    except (AttributeError, NotImplementedError, RuntimeError):  # a model of your own without the ViViT geometry
        return line
    return (f"{line}, {stats['gflops']:.3g} GFLOPs per view ({stats['num_frames']} frames x {stats['img_size']} px, "
            f"{stats['tokens']} tokens)")

"""Weights & Biases that never prompts and never hangs.

`wandb.init` prompts for an API key on a terminal, raises without one off a terminal, and retries for 90 s
without a network. The mode is therefore chosen before W&B is touched:

- `WANDB_MODE=disabled` -> disabled (tests and CI);
- credentials found (`WANDB_API_KEY` or a netrc entry for the W&B host) and `WANDB_MODE` not `offline` -> online;
- otherwise -> offline, with a one-line hint on how to upload the run later with `wandb sync`.
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

log = logging.getLogger(__name__)

DEFAULT_HOST = "https://api.wandb.ai"


def has_wandb_credentials(environ: dict[str, str] | None = None) -> bool:
    """True when an API key is in the environment or in the netrc file that `wandb login` writes."""
    env = os.environ if environ is None else environ
    if env.get("WANDB_API_KEY"):
        return True
    host = urlparse(env.get("WANDB_BASE_URL", DEFAULT_HOST)).hostname or "api.wandb.ai"
    netrc_path = Path(env.get("NETRC", Path.home() / ".netrc"))
    try:
        return netrc.netrc(netrc_path).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_wandb_mode(environ: dict[str, str] | None = None) -> str:
    """'online', 'offline' or 'disabled', following the rules in the module docstring."""
    env = os.environ if environ is None else environ
    requested = env.get("WANDB_MODE", "").strip().lower()
    if requested == "disabled":
        return "disabled"
    if requested in ("offline", "dryrun"):
        return "offline"
    if has_wandb_credentials(env):
        return "online"
    if requested == "online":
        log.warning("WANDB_MODE=online but no W&B credentials were found: logging offline instead.")
    return "offline"


def multirun_group() -> str | None:
    """The multirun's name (its sweep folder), so all jobs of one `-m` sweep land in one W&B group."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
    except (ImportError, ValueError):
        return None
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    return f"{hydra_cfg.job.name}-{Path(hydra_cfg.sweep.dir).name}"


def wandb_logger(save_dir: str, group: str | None = None, name: str | None = None, **kwargs: Any):
    """A Lightning `WandbLogger` in the mode chosen by `resolve_wandb_mode`."""
    from lightning.pytorch.loggers import WandbLogger

    mode = resolve_wandb_mode()
    if mode == "offline":
        log.info("W&B: no credentials, logging offline. Upload later with: wandb sync %s/wandb/offline-run-*", save_dir)
    return WandbLogger(
        save_dir=save_dir,
        name=name or Path(save_dir).name,
        group=group or multirun_group(),
        mode=mode,
        **kwargs,
    )


def finish_wandb() -> None:
    """Close the W&B run, so the next job of a multirun starts a new one instead of reusing it."""
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()

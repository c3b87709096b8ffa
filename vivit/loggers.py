"""Weights & Biases that never prompts and never hangs.

`wandb.init` prompts for an API key on a terminal, raises without one off a terminal, and retries for 90 s
without a network. The mode is therefore chosen before W&B is touched:

- `WANDB_MODE=disabled` -> disabled (tests and CI);
- credentials found as wandb finds them (`WANDB_API_KEY`, the netrc entry of the host in wandb's settings, as
  `wandb login [--host URL]` writes them, or a settings file's api_key) and `WANDB_MODE` not `offline` -> online;
- otherwise -> offline, with a one-line hint on how to upload the run later with `wandb sync`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from unittest import mock
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_HOST = "https://api.wandb.ai"


def wandb_settings(environ: Mapping[str, str]):
    """wandb's settings as `wandb.init` loads them: the settings file (`wandb login --host` writes base_url there;
    WANDB_CONFIG_DIR moves it), then the environment."""
    from wandb.sdk.wandb_settings import Settings

    settings = Settings()
    config_dir = environ.get("WANDB_CONFIG_DIR")
    folder = Path(config_dir).expanduser() if config_dir else Path("~", ".config", "wandb").expanduser()
    settings.settings_system = str(folder / "settings")
    settings.update_from_system_settings()
    settings.update_from_env_vars(dict(environ))
    return settings


def has_wandb_credentials(environ: Mapping[str, str] | None = None) -> bool:
    """True when wandb itself would find credentials for its host, without prompting.

    wandb's own lookup (`authenticate_session(prompt=False)`): WANDB_API_KEY or an identity-token file, the netrc
    entry of the host (`wandb login`, `wandb login --host URL`), or an api_key in the settings files.
    """
    from wandb.errors import AuthenticationError
    from wandb.sdk.lib.wbauth.authenticate import authenticate_session

    env = dict(os.environ if environ is None else environ)
    with mock.patch.dict(os.environ, env, clear=True):  # wandb reads os.environ (WANDB_API_KEY, NETRC, ...)
        settings = wandb_settings(env)
        try:
            auth = authenticate_session(host=settings.base_url, source="vivit", prompt=False, update_session=False)
        except AuthenticationError as error:
            log.warning("W&B credentials found but not usable (%s): logging offline.", error)
            return False
        if auth is None and settings.api_key:  # an api_key in a settings file
            return True
    return auth is not None


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
    if mode != "disabled" and "id" not in kwargs:  # one W&B run per run folder, continued by every resume
        from vivit.runs import wandb_run_id

        run_id, resuming = wandb_run_id(save_dir)
        kwargs.update(id=run_id, **({"resume": "allow"} if resuming else {}))
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


def continue_logs(loggers: list, step: int) -> None:
    """Resuming in the same run folder at global step `step`: the CSV and TensorBoard logs keep what was logged
    before that step and drop what the interrupted run logged after its checkpoint (the resumed run logs it
    again). Call before the loggers write anything."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank != 0:  # DDP's other ranks do not write these logs
        return
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger) and logger._experiment is None:
            logger._kwargs["purge_step"] = step  # SummaryWriter hides the events at and after it
        elif isinstance(logger, CSVLogger):
            _keep_csv_rows_before(logger, step)


def _keep_csv_rows_before(logger, step: int) -> None:
    """Lightning's CSV writer deletes an existing metrics.csv when it starts: keep its rows before `step`."""
    import csv

    path = Path(logger.log_dir) / "metrics.csv"
    if not path.is_file():
        return
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        header, rows = list(reader.fieldnames or []), [r for r in reader if r.get("step") and int(r["step"]) < step]
    writer = logger.experiment  # deletes the file
    writer.metrics_keys = sorted(header)  # so the first save appends under this header (or widens it)
    with path.open("w", newline="") as file:
        out = csv.DictWriter(file, fieldnames=writer.metrics_keys)
        out.writeheader()
        out.writerows(rows)

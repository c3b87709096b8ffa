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
import secrets
import string
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.loggers import WandbLogger
from wandb.errors import AuthenticationError
from wandb.sdk.lib.wbauth.authenticate import authenticate_session
from wandb.sdk.wandb_settings import Settings

log = logging.getLogger(__name__)


def wandb_settings(environ: Mapping[str, str]):
    """wandb's settings as `wandb.init` loads them: the settings file (`wandb login --host` writes base_url there;
    WANDB_CONFIG_DIR moves it), then the environment."""
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
    env = dict(os.environ if environ is None else environ)
    with _environment(env):  # wandb reads os.environ (WANDB_API_KEY, NETRC, ...)
        settings = wandb_settings(env)
        try:
            auth = authenticate_session(host=settings.base_url, source="vivit", prompt=False, update_session=False)
        except AuthenticationError as error:
            log.warning("W&B credentials found but not usable (%s): logging offline.", error)
            return False
        if auth is None and settings.api_key:  # an api_key in a settings file
            return True
    return auth is not None


@contextmanager
def _environment(environ: Mapping[str, str]) -> Iterator[None]:
    """`os.environ` is exactly `environ` inside the block, and what it was before afterwards."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


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
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    return f"{hydra_cfg.job.name}-{Path(hydra_cfg.sweep.dir).name}"


def wandb_logger(save_dir: str, group: str | None = None, name: str | None = None, **kwargs: Any):
    """A Lightning `WandbLogger` in the mode chosen by `resolve_wandb_mode`."""
    mode = resolve_wandb_mode()
    if mode == "offline":
        log.info("W&B: no credentials, logging offline. Upload later with: wandb sync %s/wandb/offline-run-*", save_dir)
    if mode != "disabled" and "id" not in kwargs:  # one W&B run per run folder, continued by every resume
        run_id, resuming = wandb_run_id(save_dir)
        kwargs.update(id=run_id, **({"resume": "allow"} if resuming else {}))
    logger = WandbLogger(
        save_dir=save_dir,
        name=name or Path(save_dir).name,
        group=group or multirun_group(),
        mode=mode,
        **kwargs,
    )
    # Lightning passes `anonymous=None` to wandb.init, for which wandb warns on every run that "the anonymous
    # setting has no effect"; left out, wandb keeps its default and says nothing.
    if logger._wandb_init.get("anonymous") is None:
        logger._wandb_init.pop("anonymous", None)
    return logger


def finish_wandb() -> None:
    """Close the W&B run, so the next job of a multirun starts a new one instead of reusing it."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


def wandb_run_id(save_dir: str | Path) -> tuple[str, bool]:
    """The W&B run id of the run folder `save_dir` and whether it was there already (a resumed run).

    The id is made once per run folder (wandb/run_id) and reused by every resume. Every rank of a run asks (the
    folder is shared, vivit.runtime.runs), in any order, even at the same instant: the file is published with
    `os.link`, which fails when the name exists, so the first writer's id is the run's and every other rank reads
    that one (a rename would let a later rank replace an id rank 0 already started W&B with: two runs).
    """
    path = Path(save_dir) / "wandb" / "run_id"
    if path.is_file():
        return path.read_text().strip(), True
    run_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))  # wandb's style
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"run_id.{os.getpid()}.{secrets.token_hex(4)}")
    temporary.write_text(run_id + "\n")  # complete before it has the name: a reader never sees half an id
    try:
        os.link(temporary, path)
    except FileExistsError:
        return path.read_text().strip(), False  # another rank of this start published first: its id
    finally:
        temporary.unlink()
    return run_id, False

"""How a mistake in the config reaches the user: one line naming the key, never a traceback; and how a stopped run
says so. A bug keeps its traceback: only the failures meant here are turned into lines.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from hydra.errors import HydraException
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException


class ConfigError(Exception):
    """A problem with the configuration or the files it points to, reported in one line."""


class Preempted(Exception):
    """The run was stopped by SIGTERM or SLURM's timeout signal after saving `last.ckpt`: not a success."""


PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM, what a shell reports for a process ended by SIGTERM

# What a mistake in the config raises while objects are built: explicit validation of a value (ValueError naming
# the key), a missing file or folder.
CONFIG_MISTAKES = (ValueError, FileNotFoundError, NotADirectoryError)


def _chain(error: BaseException) -> list[BaseException]:
    """The error and its causes, outermost first."""
    chain = [error]
    while chain[-1].__cause__ is not None and chain[-1].__cause__ not in chain:
        chain.append(chain[-1].__cause__)
    return chain


def _missing(chain: list[BaseException]) -> ConfigError | None:
    """`???` left in the config, e.g. `data.root` of a real dataset. OmegaConf re-raises it with the full key;
    with OC_CAUSE=1 or a tracer active (coverage, a debugger) the key-less original is chained below it, so the
    outermost one that names its key is used."""
    missing = [e for e in chain if isinstance(e, MissingMandatoryValue)]
    if not missing:
        return None
    key = next((e.full_key for e in missing if e.full_key), None) or "a key"
    return ConfigError(
        f"{key}: no value (???). Set it on the command line, e.g. `{key}=...` (see the comments in conf/)."
    )


def _raised_by_the_call(error: BaseException) -> bool:
    """A TypeError/KeyError raised where Hydra calls or looks up the target (an unknown or missing argument),
    not inside the target's own code: the innermost frame of its traceback is Hydra's."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{os.sep}hydra{os.sep}" in tb.tb_frame.f_code.co_filename


def is_config_mistake(error: BaseException) -> bool:
    """Whether `error` (raised while building objects from the config) is a mistake in the config rather than a
    bug: Hydra/OmegaConf composition and instantiation errors, explicit validation, missing files, and wrong
    arguments to a `_target_`. A TypeError or KeyError from inside project code is a bug and keeps its traceback."""
    chain = _chain(error)
    cause = chain[-1]
    if isinstance(cause, (OmegaConfBaseException, HydraException)):
        return True  # e.g. an interpolation to a key that does not exist
    if isinstance(cause, ImportError) and any(isinstance(e, HydraException) for e in chain):
        return True  # a `_target_` that cannot be located
    if isinstance(cause, CONFIG_MISTAKES):
        return True
    return isinstance(cause, (TypeError, KeyError)) and _raised_by_the_call(cause)


@contextmanager
def reported_as(key: str) -> Iterator[None]:
    """Turn a configuration mistake raised inside the block into a one-line `ConfigError` about `key`; anything
    else (a bug) propagates unchanged, with its traceback."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as error:  # re-raised unless is_config_mistake says it is one (Hydra wraps the target's own)
        chain = _chain(error)
        missing = _missing(chain)
        if missing is not None:
            raise missing from error
        if is_config_mistake(error):
            message = str(chain[-1])
            named = message.startswith((f"{key}.", f"{key}:", f"{key}="))  # e.g. "model.depth=0 must be ..."
            raise ConfigError(message if named else f"{key}: {message}") from error
        raise

"""The one way in: every command that runs a task (`python train.py`, `python eval.py`, `python predict.py`, the
console scripts vivit-train/-eval/-predict and `python -m vivit.tasks.<task>`) is `run_command` around one task
function, so whatever works from a clone works installed, sweeps of DDP jobs included.

It composes the config with Hydra (conf/ and the model zoo, vivit.runtime.config), runs the task as one job of a
possible sweep (its DDP ranks end with it, vivit.runtime.ranks), prints a config mistake as one line (a sweep goes
on to its other jobs), exits 143 when the run was preempted, and returns the value a Hydra sweeper optimises.
Hydra's own flags may come anywhere on the command line (`python train.py resume=<run> --cfg job`): they are moved
before the overrides, where Hydra's parser needs them.
`paths.root_dir` (where data/ and outputs/ go) is the clone's folder for its scripts, the current folder otherwise.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from vivit.runtime.config import CONF_DIR
from vivit.runtime.errors import PREEMPTED_EXIT_CODE, ConfigError, Preempted
from vivit.runtime.ranks import one_job

Task = Callable[[DictConfig], Any]

# Hydra's command-line flags that take a value (hydra/_internal/utils.py::get_args_parser); `--info` takes one of
# INFO_VALUES optionally. Every other argument starting with "-" is a flag on its own.
VALUE_FLAGS = frozenset({"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn"})
VALUE_FLAGS |= {"--config-dir", "-cd", "--experimental-rerun"}
INFO_VALUES = frozenset({"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"})


def hydra_job(task: Task) -> Callable[[DictConfig], Any]:
    """What Hydra runs for each job of a command: `task` as one job of a possible sweep, a config mistake as one
    line, a preemption as exit code 143, and the value a sweeper optimises. (A SLURM sweep's launcher pickles it.)"""

    def run_job(cfg: DictConfig) -> Any:
        try:
            with one_job():  # DDP: this job's ranks end with it (vivit/runtime/ranks.py)
                result = task(cfg)
        except ConfigError as error:
            if HydraConfig.get().mode == RunMode.MULTIRUN:
                raise  # the sweep runs its other jobs; Hydra reports the failure at the end
            sys.exit(f"error: {error}")
        except Preempted as error:  # non-zero, so a scheduler does not take the run for finished
            print(f"preempted: {error}", file=sys.stderr)
            sys.exit(PREEMPTED_EXIT_CODE)
        metric = cfg.get("optimized_metric")  # the value a Hydra sweeper optimises, when an experiment names one
        return result.get("val", {}).get(metric) if metric and isinstance(result, dict) else None

    return run_job


def run_command(
    config_name: str,
    job: Callable[[DictConfig], Any],
    root: str | Path | None = None,
    rewrite_argv: Callable[[list[str]], list[str]] | None = None,
) -> Any:
    """Run `job` (a `hydra_job`) on conf/<config_name>.yaml composed with the command line.

    `root`: the folder of data/ and outputs/ (default: the current folder; `VIVIT_ROOT` wins over both).
    `rewrite_argv`: turns the command line into the one Hydra parses (train: `resume=<run folder>`), raising a
    ValueError with a one-line message for a command line it cannot take.
    """
    os.environ.setdefault("VIVIT_ROOT", str(Path(root or Path.cwd()).resolve()))
    if rewrite_argv is not None:
        try:
            sys.argv = rewrite_argv(sys.argv)
        except ValueError as error:
            sys.exit(f"error: {error}")
    sys.argv = hydra_flags_first(sys.argv)
    return hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(job)()


def hydra_flags_first(argv: list[str]) -> list[str]:
    """`argv` with Hydra's flags (and their values) before the overrides, each group in its order. Hydra's argparse
    takes the positional overrides in one run only, so `a=1 --cfg job b=2` (or the line `resume=` expands to)
    fails there. Overrides never start with "-" (`key=value`, `+key=value`, `~key`)."""
    flags: list[str] = []
    overrides: list[str] = []
    rest = list(argv[1:])
    while rest:
        arg = rest.pop(0)
        if not arg.startswith("-"):
            overrides.append(arg)
            continue
        flags.append(arg)
        takes_value = arg in VALUE_FLAGS or (arg in ("--info", "-i") and rest and rest[0] in INFO_VALUES)
        if takes_value and rest:
            flags.append(rest.pop(0))
    return [argv[0], *flags, *overrides]

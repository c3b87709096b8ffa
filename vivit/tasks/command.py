"""The one way in: every command that runs a task (`python train.py`, `python eval.py`, `python predict.py`, the
console scripts vivit-train/-eval/-predict and `python -m vivit.tasks.<task>`) is `run_command` around one task
function, so whatever works from a clone works installed, sweeps of DDP jobs included.

It composes the config with Hydra (conf/ and the model zoo, vivit.runtime.config), runs the task's checks before
Hydra makes the run folder (`CheckFirst`, a Hydra callback of conf/hydra/default.yaml), runs the task as one job of
a possible sweep (its DDP ranks end with it, vivit.runtime.ranks; its folder held for it, vivit.runtime.runs), prints
a config mistake as one line (a command-line mistake Hydra finds while composing too; a sweep goes on to its other
jobs), exits 143 when the run was preempted, and returns the value a Hydra sweeper optimises. Hydra's own flags may
come anywhere on the command line (`python train.py resume=<run> --cfg job`): they are moved before the overrides,
where Hydra's parser needs them. `paths.root_dir` (where data/ and outputs/ go) is the clone's folder for its
scripts, the current folder otherwise.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from vivit.runtime import runs
from vivit.runtime.config import CONF_DIR
from vivit.runtime.errors import PREEMPTED_EXIT_CODE, ConfigError, Preempted
from vivit.runtime.process import fresh_process
from vivit.runtime.ranks import one_job
from vivit.runtime.schema import composition_error

Task = Callable[[DictConfig], Any]
Check = Callable[[DictConfig, str], None]  # a task's checks: (config, the key that names the run folder)


@dataclass
class Command:
    """What the command running in this process told its Hydra callback and its error handler."""

    config_name: str = ""
    check: Check | None = None
    job_started: bool = False  # an error after this is the task's, not a mistake on the command line


command = Command()


class CheckFirst(Callback):
    """The task's checks (schema, hardware, files read back), before Hydra makes the run folder or writes into it;
    then an explicit `hydra.run.dir` (or `hydra.sweep.dir`) is held for this run (vivit.runtime.runs.hold).

    A mistake ends the process with its one line: Hydra turns an exception raised by a callback into a warning and
    goes on (hydra/_internal/callbacks.py), so the callback exits itself, as the task's own errors do."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        explicit = not uses_new_dir(config, "run")
        with exit_on_mistakes():
            folder = planned_folder(config)
            key = "resume" if config.get("resume") else "hydra.run.dir" if explicit else "paths.log_dir"
            if command.check is not None:
                with as_if_in(config, folder) as task_cfg:
                    command.check(task_cfg, key)
            if explicit:
                runs.hold(folder, key)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # each job is checked as it starts (a failed job's folder is the sweep's record of it, see hydra_job); an
        # explicit sweep folder is held, so that two sweeps never write into each other's job folders
        if not uses_new_dir(config, "sweep"):
            with exit_on_mistakes():
                runs.hold(Path(str(config.hydra.sweep.dir)).absolute(), "hydra.sweep.dir")


@contextmanager
def exit_on_mistakes() -> Iterator[None]:
    """A ConfigError (or a config that does not resolve) inside the block ends the process with one line."""
    try:
        yield
    except ConfigError as error:
        sys.exit(f"error: {error}")
    except (HydraException, OmegaConfBaseException) as error:
        sys.exit(f"error: {composition_error(error, command.config_name, sys.argv[1:])}")


def uses_new_dir(config: DictConfig, mode: str) -> bool:
    """Whether `hydra.<mode>.dir` is a new folder of the `vivit.new_dir` resolver (else a folder given explicitly)."""
    return "vivit.new_dir" in str(OmegaConf.to_container(config.hydra[mode], resolve=False)["dir"])


def planned_folder(config: DictConfig) -> Path:
    """The run folder Hydra will make for `config`, named without making it (vivit.runtime.runs.planning)."""
    planned = copy.deepcopy(config)  # the resolver caches its folder: this copy's name is not the run's
    with runs.planning():
        return Path(str(OmegaConf.select(planned, "hydra.run.dir"))).absolute()


@contextmanager
def as_if_in(config: DictConfig, folder: Path) -> Iterator[DictConfig]:
    """The task's config as Hydra will hand it over with the run folder `folder` (`paths.output_dir` resolves to
    it), for checks made before the folder exists."""
    config = copy.deepcopy(config)
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = str(folder)
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(config)
    try:
        task_cfg = copy.deepcopy(config)
        with read_write(task_cfg), open_dict(task_cfg):
            del task_cfg["hydra"]
        yield task_cfg
    finally:
        HydraConfig.instance().cfg = previous


# Hydra's command-line flags that take a value (hydra/_internal/utils.py::get_args_parser); `--info` takes one of
# INFO_VALUES optionally. Every other argument starting with "-" is a flag on its own.
VALUE_FLAGS = frozenset({"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn"})
VALUE_FLAGS |= {"--config-dir", "-cd", "--experimental-rerun"}
INFO_VALUES = frozenset({"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"})


def hydra_job(task: Task) -> Callable[[DictConfig], Any]:
    """What Hydra runs for each job of a command: `task` as one job of a possible sweep, in a folder held for it, a
    config mistake as one line (a single run's folder removed: the run never started), a preemption as exit code
    143, and the value a sweeper optimises. (A SLURM sweep's launcher pickles it.)"""

    def run_job(cfg: DictConfig) -> Any:
        command.job_started = True
        folder = Path(HydraConfig.get().runtime.output_dir)
        try:
            runs.hold(folder, "hydra.run.dir")
            # the next job of an in-process sweep starts as this one did: environment, threads, memory, and
            # DDP: this job's ranks and process group end with it (vivit/runtime/process.py, ranks.py)
            with fresh_process(), one_job(folder=folder):
                result = task(cfg)
        except ConfigError as error:
            if HydraConfig.get().mode == RunMode.MULTIRUN:
                # the sweep runs its other jobs and reports the failure at the end; the job's folder stays, the
                # sweep's record of a job that failed (vivit.experiments.collect lists it with its overrides)
                raise
            runs.remove_unstarted(folder)  # a single run that failed its checks leaves no folder
            sys.exit(f"error: {error}")
        except Preempted as error:  # non-zero, so a scheduler does not take the run for finished
            print(f"preempted: {error}", file=sys.stderr)
            sys.exit(PREEMPTED_EXIT_CODE)
        finally:
            runs.release(folder)
        metric = cfg.get("optimized_metric")  # the value a Hydra sweeper optimises, when an experiment names one
        return result.get("val", {}).get(metric) if metric and isinstance(result, dict) else None

    return run_job


def run_command(
    config_name: str,
    job: Callable[[DictConfig], Any],
    root: str | Path | None = None,
    rewrite_argv: Callable[[list[str]], list[str]] | None = None,
    check: Check | None = None,
) -> Any:
    """Run `job` (a `hydra_job`) on conf/<config_name>.yaml composed with the command line.

    `root`: the folder of data/ and outputs/ (default: the current folder; `VIVIT_ROOT` wins over both).
    `rewrite_argv`: turns the command line into the one Hydra parses (train: `resume=<run folder>`), raising a
    ValueError or ConfigError with a one-line message for a command line it cannot take.
    `check`: the task's checks, run before Hydra makes the run folder (`CheckFirst`).
    """
    os.environ.setdefault("VIVIT_ROOT", str(Path(root or Path.cwd()).resolve()))
    # Hydra then raises what it finds while composing instead of printing it over several lines: it is one line here
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    if rewrite_argv is not None:
        try:
            sys.argv = rewrite_argv(sys.argv)
        except (ValueError, ConfigError) as error:
            sys.exit(f"error: {error}")
    sys.argv = hydra_flags_first(sys.argv)
    command.config_name, command.check, command.job_started = config_name, check, False
    try:
        return hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(job)()
    except ConfigError as error:  # the checks before the folder, or the first failed job of a sweep
        sys.exit(f"error: {error}")
    except (HydraException, OmegaConfBaseException) as error:
        if command.job_started:
            raise  # the task's own: a bug keeps its traceback
        sys.exit(f"error: {composition_error(error, config_name, sys.argv[1:])}")
    finally:
        command.check = None


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

"""Run folders: one per run, named by its start time, never shared, and only for a run that started.

Names are `<YYYY-mm-dd_HH-MM-SS>` and, when a run started in the same second took that name, `..._2`, `..._3`:
readable, sorted by start time, and unique because each folder is created exclusively (`mkdir` fails for the
second process, also on a shared filesystem), not just named. The `vivit.new_dir` resolver of
conf/hydra/default.yaml (registered by vivit.runtime.config) makes them; while the checks run before a run starts
(`planning()`), it only names the folder it would make. DDP's extra ranks get rank 0's folder on their command
line (vivit/runtime/ranks.py), so they never make one.

A run holds its folder (`hold`: an OS file lock on `<folder>/.run.lock`, released when the process ends, also by a
kill) for as long as it runs, so a second run given the same explicit `hydra.run.dir`, or a `resume=` of a run that
is still running, is refused instead of writing into it. A folder this process made for a single run whose checks
then failed (a config mistake found while building the run, e.g. a bad annotation row) is removed again
(`remove_unstarted`) as long as it holds only Hydra's records of the attempt. (A sweep keeps a failed job's folder:
it is the sweep's record of that job, which vivit.experiments.collect reports as failed.) Files a run wrote are
never edited by a later command: a continued run adds its record beside the first one (`write_once`).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path

from filelock import FileLock, Timeout

from .errors import ConfigError

log = logging.getLogger(__name__)

TIME_FORMAT = "%Y-%m-%d_%H-%M-%S"
LOCK = ".run.lock"
HYDRA_RECORDS = ".hydra"  # Hydra's record of a run (config.yaml, hydra.yaml, overrides.yaml)

_planning: ContextVar[bool] = ContextVar("planning", default=False)
_made: set[Path] = set()  # run and sweep folders this process created
_held: dict[Path, FileLock] = {}  # run folders this process holds


@contextmanager
def planning() -> Iterator[None]:
    """Inside the block, `new_run_dir` names the folder it would make and makes nothing (checks before a run)."""
    token = _planning.set(True)
    try:
        yield
    finally:
        _planning.reset(token)


def new_run_dir(parent: str | Path, prefix: str = "") -> Path:
    """`parent/<prefix><start time>`, or with `_2`, `_3`, ... when a run of the same second has that name."""
    parent = Path(parent)
    stamp = prefix + datetime.now().strftime(TIME_FORMAT)
    names = (parent / (stamp if n == 1 else f"{stamp}_{n}") for n in range(1, 100_000))
    if _planning.get():
        return next(path for path in names if not path.exists())
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"paths.log_dir: cannot make '{parent}' ({error.strerror or error}); set paths.log_dir=... to a folder "
            "you can write to."
        ) from error
    for path in names:
        try:
            path.mkdir()
        except FileExistsError:
            continue
        _made.add(path.resolve())
        return path
    raise FileExistsError(f"{parent}: no free run folder name for {stamp}")


def is_extra_rank() -> bool:
    """Whether this process is a DDP rank other than the first (it writes into rank 0's folder, held by rank 0)."""
    return any(int(os.environ.get(name) or 0) > 0 for name in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "NODE_RANK"))


def hold(folder: str | Path, key: str = "hydra.run.dir") -> None:
    """Take `folder` for this process's run, making it if needed; a ConfigError naming `key` when another run holds
    it. Held until `release` or the end of the process."""
    folder = Path(folder).resolve()
    if folder in _held or is_extra_rank():
        return
    if not folder.exists():
        folder.mkdir(parents=True)
        _made.add(folder)
    lock = FileLock(folder / LOCK, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise ConfigError(
            f"{key}: '{folder}' is in use by a run that is still running (it holds {LOCK}); two runs never share "
            "a folder: wait for it to end, or choose another folder."
        ) from None
    _held[folder] = lock


def release(folder: str | Path) -> None:
    lock = _held.pop(Path(folder).resolve(), None)
    if lock is not None:
        lock.release()


def made_here(folder: Path) -> bool:
    """Whether this process created `folder`."""
    return folder.resolve() in _made


def only_records(folder: Path) -> bool:
    """Whether `folder` holds only what Hydra writes when a job starts (its .hydra/ files, its log) and the lock."""
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if path.is_dir():
            if relative != Path(HYDRA_RECORDS):
                return False
        elif not (
            relative.name == LOCK
            or (relative.parent == Path(HYDRA_RECORDS) and path.suffix == ".yaml")
            or (relative.parent == Path(".") and path.suffix == ".log")
        ):
            return False
    return True


def remove_unstarted(folder: str | Path) -> bool:
    """Remove the folder of a run that failed its checks, if this process made it and nothing but Hydra's records of
    the attempt is in it; whether it was removed."""
    folder = Path(folder).resolve()
    if not folder.is_dir() or not made_here(folder) or not only_records(folder):
        return False
    release(folder)
    shutil.rmtree(folder, ignore_errors=True)
    _made.discard(folder)
    return not folder.exists()


def write_once(folder: str | Path, stem: str, text: str) -> Path:
    """`folder/<stem>.yaml`, or `<stem>_2.yaml`, ... : a new file, created exclusively, never one already there."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(1, 100_000):
        path = folder / (f"{stem}.yaml" if n == 1 else f"{stem}_{n}.yaml")
        try:
            with path.open("x", encoding="utf-8") as f:
                f.write(text)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{folder}: no free name for {stem}.yaml")

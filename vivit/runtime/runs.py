"""Run folders: one per run, named by its start time, never shared, and only for a run that started.

Names are `<YYYY-mm-dd_HH-MM-SS>` and, when a run started in the same second took that name, `..._2`, `..._3`:
readable, sorted by start time, and unique because each folder is created exclusively (`mkdir` fails for the
second process, also on a shared filesystem), not just named. The `vivit.new_dir` resolver of
conf/hydra/default.yaml (registered by vivit.runtime.config) makes them; while the checks run before a run starts
(`planning()`), it only names the folder it would make. DDP's extra ranks get rank 0's folder on their command
line (vivit/runtime/ranks.py), so they never make one. Ranks started by an outside launcher (`torchrun`, a
hand-written `srun`) each resolve the folder themselves: rank 0 makes it and shares its name with the other ranks
of the same start (`shared_run_dir`: torchrun's agent store, or a file keyed by the SLURM job step), so a run is
one folder whatever started it.

A run holds its folder (`hold`: an OS file lock on `<folder>/.run.lock`, released when the process ends, also by a
kill) for as long as it runs, so a second run given the same explicit `hydra.run.dir`, or a `resume=` of a run that
is still running, is refused instead of writing into it. A folder this process made for a single run whose checks
then failed (a config mistake found while building the run, e.g. a bad annotation row) is removed again
(`remove_unstarted`) as long as it holds only Hydra's records of the attempt. (A sweep keeps a failed job's folder:
it is the sweep's record of that job, which vivit.experiments.collect reports as failed.) Files a run wrote are
never edited by a later command: a continued run adds its record beside the first one (`write_once`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from pathlib import Path

import torch.distributed as dist
from filelock import FileLock, Timeout

from .errors import ConfigError

log = logging.getLogger(__name__)

TIME_FORMAT = "%Y-%m-%d_%H-%M-%S"
LOCK = ".run.lock"
HYDRA_RECORDS = ".hydra"  # Hydra's record of a run (config.yaml, hydra.yaml, overrides.yaml)

_planning: ContextVar[bool] = ContextVar("planning", default=False)
_made: set[Path] = set()  # run and sweep folders this process created
_held: dict[Path, FileLock] = {}  # run folders this process holds
SHARE_WAIT_S = 300.0  # how long a rank waits for rank 0's folder name (rank 0 runs the same checks first)
SHARED = ".launches"  # <parent>/.launches/<srun step>.<n>: the folder names rank 0 shared with srun's other ranks
_shared_calls: dict[tuple[str, int, str, str], int] = {}  # folders asked for, counted in the same order by each rank


@contextmanager
def planning() -> Iterator[None]:
    """Inside the block, `new_run_dir` names the folder it would make and makes nothing (checks before a run)."""
    token = _planning.set(True)
    try:
        yield
    finally:
        _planning.reset(token)


def new_run_dir(parent: str | Path, prefix: str = "") -> Path:
    """`parent/<prefix><start time>`, or with `_2`, `_3`, ... when a run of the same second has that name; under
    torchrun or srun, the one rank 0 made (`shared_run_dir`)."""
    launch = outside_launch()
    if launch is not None and not _planning.get():
        return shared_run_dir(Path(parent), prefix, *launch)
    return make_run_dir(parent, prefix)


def make_run_dir(parent: str | Path, prefix: str = "") -> Path:
    """A new folder `parent/<prefix><start time>` (`_2`, `_3`, ...), created exclusively; only named while
    `planning()`."""
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


def outside_launch() -> tuple[str, int] | None:
    """(the name of this start, shared by its ranks; this process's global rank) when torchrun or srun started
    several ranks of this command; None for a single process and for ranks Lightning starts (vivit.runtime.ranks
    gives those rank 0's folder). A requeued or restarted start is a new start: its own folder."""
    env = os.environ
    if "TORCHELASTIC_RUN_ID" in env and int(env.get("WORLD_SIZE") or 1) > 1:
        return f"torchrun-{env['TORCHELASTIC_RUN_ID']}-{env.get('TORCHELASTIC_RESTART_COUNT', '0')}", int(env["RANK"])
    if "SLURM_JOB_ID" in env and "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS") or 1) > 1:
        step = f"{env['SLURM_JOB_ID']}.{env.get('SLURM_STEP_ID', 'batch')}.{env.get('SLURM_RESTART_COUNT', '0')}"
        return f"slurm-{step}", int(env["SLURM_PROCID"])
    return None


def shared_run_dir(parent: Path, prefix: str, launch: str, rank: int) -> Path:
    """The run folder of all ranks of one torchrun/srun start: rank 0 makes it and shares its name, the other
    ranks wait for that name (at most SHARE_WAIT_S)."""
    asked = (launch, rank, str(parent), prefix)
    n = _shared_calls[asked] = _shared_calls.get(asked, 0) + 1
    key = f"vivit/run_dir/{parent}/{prefix}/{n}"
    if launch.startswith("torchrun"):
        store = _agent_store()
        if rank == 0:
            folder = make_run_dir(parent, prefix)
            store.set(key, str(folder))
            return folder
        try:
            return Path(store.get(key).decode())
        except dist.DistStoreError:
            raise ConfigError(_no_folder_from_rank0(parent, launch)) from None
    # srun: the job's file system is shared by its nodes (the run folder must be anyway)
    note = parent / SHARED / f"{launch}.{hashlib.sha1(prefix.encode()).hexdigest()[:8]}.{n}"
    if rank == 0:
        folder = make_run_dir(parent, prefix)
        note.parent.mkdir(exist_ok=True)
        temporary = note.with_name(f"{note.name}.{os.getpid()}")
        temporary.write_text(str(folder))
        temporary.replace(note)  # whole or absent for a reader
        return folder
    deadline = time.monotonic() + SHARE_WAIT_S
    while not note.is_file():
        if time.monotonic() > deadline:
            raise ConfigError(_no_folder_from_rank0(parent, launch))
        time.sleep(0.2)
    return Path(note.read_text())


def _agent_store() -> dist.TCPStore:
    """torchrun's own store (its agent serves it at MASTER_ADDR:MASTER_PORT for as long as the ranks run)."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        raise ConfigError(
            "hydra.run.dir: torchrun runs without its agent's store (TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1), so its "
            "ranks cannot agree on a run folder; give hydra.run.dir=<folder> (the same on every rank)."
        )
    address, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    return dist.TCPStore(address, port, is_master=False, timeout=timedelta(seconds=SHARE_WAIT_S))


def _no_folder_from_rank0(parent: Path, launch: str) -> str:
    return (
        f"paths.log_dir: rank 0 of {launch} did not name its run folder under '{parent}' within {SHARE_WAIT_S:.0f} s "
        "(see rank 0's error); give hydra.run.dir=<folder> (the same on every rank) to skip the wait."
    )


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

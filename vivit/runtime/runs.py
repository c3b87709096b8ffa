"""Run folders: one per run, named by its start time, never shared; `resume=<run folder>` continues one.

Names are `<YYYY-mm-dd_HH-MM-SS>` and, when a run started in the same second took that name, `..._2`, `..._3`:
readable, sorted by start time, and unique because each folder is created exclusively (`mkdir` fails for the
second process, also on a shared filesystem), not just named. The `vivit.new_dir` resolver of
conf/hydra/default.yaml (registered by vivit.runtime.config) makes them. DDP's extra ranks get rank 0's folder on
their command line (vivit/runtime/ranks.py), so they never make one.

`python train.py resume=<run folder>` repeats the run's command-line overrides (its .hydra/overrides.yaml; later
ones on the command line win, e.g. `trainer.max_epochs=60` to train longer) and continues from its
`checkpoints/last.ckpt` in the same folder. `ckpt_path=<run folder>/checkpoints/last.ckpt` also continues in that
folder (with the overrides given); any other checkpoint starts a new folder: it branches off an earlier state.
"""

from __future__ import annotations

import os
import shlex
import sys
from datetime import datetime
from pathlib import Path

from omegaconf import OmegaConf

TIME_FORMAT = "%Y-%m-%d_%H-%M-%S"
LAST = Path("checkpoints") / "last.ckpt"


def new_run_dir(parent: str | Path, prefix: str = "") -> Path:
    """`parent/<prefix><start time>`, or with `_2`, `_3`, ... when a run of the same second has that name."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    stamp = prefix + datetime.now().strftime(TIME_FORMAT)
    for n in range(1, 100_000):
        path = parent / (stamp if n == 1 else f"{stamp}_{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"{parent}: no free run folder name for {stamp}")


def run_folder_of(ckpt_path: str | None) -> Path | None:
    """The run folder whose latest state `ckpt_path` is (`<run>/checkpoints/last.ckpt`), else None."""
    if not ckpt_path:
        return None
    path = Path(ckpt_path).expanduser().resolve()
    folder = path.parents[1] if len(path.parents) > 1 else None
    if folder is not None and path == folder / LAST and (folder / ".hydra").is_dir():
        return folder
    return None


def resume_command(ckpt_path: str) -> str:
    """The command line that continues the run whose latest state is `ckpt_path`, as the README writes it:
    `python train.py resume=<run folder>` (the command this process was started with, the run's overrides kept).
    A checkpoint outside a run folder can only be given as `ckpt_path=` (with the run's overrides repeated)."""
    folder = run_folder_of(ckpt_path)
    argument = f"resume={_shown(folder)}" if folder is not None else f"ckpt_path={_shown(Path(ckpt_path))}"
    return f"{_command_name()} {argument}"


def _command_name() -> str:
    """How this process was started: `vivit-train`, `python -m vivit.tasks.train` or `python train.py`."""
    started = Path(sys.argv[0])
    if started.name.startswith("vivit-"):
        return started.name
    if started.parent.name == "tasks" and started.parent.parent.name == "vivit":
        return f"python -m vivit.tasks.{started.stem}"
    return f"python {shlex.quote(sys.argv[0])}"


def _shown(path: Path) -> str:
    """`path` relative to the current folder when it lies inside it (outputs/train/runs/...), quoted for a shell."""
    path = Path(path).resolve()
    here = Path.cwd().resolve()
    return shlex.quote(os.path.relpath(path, here) if path.is_relative_to(here) else str(path))


def _value(argument: str, key: str) -> str | None:
    if argument.startswith(f"{key}="):
        return argument.split("=", 1)[1].strip("'\"")
    return None


def resume_arguments(argv: list[str]) -> list[str]:
    """train.py's command line with `resume=<run folder>` expanded (see the module doc); raises ValueError with a
    one-line message for a folder that is not a resumable run."""
    args = argv[1:]
    folder_arg = next((v for a in args if (v := _value(a, "resume")) is not None and v not in ("", "null")), None)
    ckpt_arg = next((v for a in args if (v := _value(a, "ckpt_path")) is not None), None)
    if any(a in ("-m", "--multirun") or a.startswith("hydra.mode=") for a in args) and folder_arg:
        raise ValueError("resume: continues one run; it cannot be used with a multirun (-m)")
    if folder_arg is None:
        folder = run_folder_of(ckpt_arg)  # ckpt_path=<run>/checkpoints/last.ckpt: continue in that folder
        if folder is None or any(a.startswith("hydra.run.dir=") for a in args):
            return argv
        return [argv[0], *args, *_same_folder(folder)]
    folder = Path(folder_arg).expanduser().resolve()
    if not (folder / LAST).is_file():
        raise ValueError(
            f"resume={folder_arg}: no {LAST} in that folder; give a run folder of train.py "
            "(outputs/train/runs/<time>) that saved at least one epoch"
        )
    saved_file = folder / ".hydra" / "overrides.yaml"
    saved = [str(o) for o in OmegaConf.load(saved_file)] if saved_file.is_file() else []
    saved = [o for o in saved if _value(o, "resume") is None and _value(o, "ckpt_path") is None]
    given = [a for a in args if _value(a, "resume") is None and _value(a, "ckpt_path") is None]
    return [
        argv[0],
        *saved,
        *given,
        f"resume={_quoted(folder)}",
        f"ckpt_path={_quoted(folder / LAST)}",
        *_same_folder(folder),
    ]


def _quoted(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _same_folder(folder: Path) -> list[str]:
    return [f"hydra.run.dir={_quoted(folder)}"]

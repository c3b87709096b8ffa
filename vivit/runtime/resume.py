"""`python train.py resume=<run folder>`: continue a run in its own folder, from its `checkpoints/last.ckpt`.

`resume=` repeats the overrides the run was last started with (its `.hydra/overrides.yaml`, or the record of its
latest continuation, `.hydra/continued[_N].yaml`; later ones on the command line win, e.g. `trainer.max_epochs=60`
to train longer). Those overrides are read back from a file, so they are checked as data (vivit.runtime.trust):
a replayed override selects the project's own configs and classes, or the resume is refused in one line, unless
`trusted=true` is on the command line. `trusted` itself is never replayed.

`ckpt_path=<run folder>/checkpoints/last.ckpt` also continues in that folder (with the overrides given); any other
checkpoint starts a new folder: it branches off an earlier state. A continuation never rewrites the run's records:
Hydra writes nothing into its `.hydra/` (`hydra.output_subdir=null`), and the continued run, once it started, adds
its own record of overrides beside the first one (`record_continuation`), so an attempt refused by the checks
leaves the run as it was.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

import yaml
from omegaconf import OmegaConf

from .runs import HYDRA_RECORDS, is_extra_rank, write_once
from .trust import TRUSTED_KEY, read_back_overrides

LAST = Path("checkpoints") / "last.ckpt"
CONTINUED = "continued"  # .hydra/continued.yaml, continued_2.yaml, ...: the overrides of each continuation


def run_folder_of(ckpt_path: str | None) -> Path | None:
    """The run folder whose latest state `ckpt_path` is (`<run>/checkpoints/last.ckpt`), else None."""
    if not ckpt_path:
        return None
    path = Path(ckpt_path).expanduser().resolve()
    folder = path.parents[1] if len(path.parents) > 1 else None
    if folder is not None and path == folder / LAST and (folder / HYDRA_RECORDS).is_dir():
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


def latest_overrides_file(folder: Path) -> Path:
    """The record of the run's latest start: its newest continuation record, else Hydra's overrides.yaml."""
    records = folder / HYDRA_RECORDS
    continued = [p for p in records.glob(f"{CONTINUED}*.yaml") if re.fullmatch(rf"{CONTINUED}(_\d+)?", p.stem)]
    if not continued:
        return records / "overrides.yaml"
    return max(continued, key=lambda p: int(p.stem.rpartition("_")[2]) if "_" in p.stem else 1)


def resume_arguments(argv: list[str]) -> list[str]:
    """train.py's command line with `resume=<run folder>` expanded (see the module doc); raises ValueError with a
    one-line message for a folder that is not a resumable run (a ConfigError, also a ValueError, for overrides
    that are not data)."""
    args = argv[1:]
    folder_arg = next((v for a in args if (v := _value(a, "resume")) is not None and v not in ("", "null")), None)
    ckpt_arg = next((v for a in args if (v := _value(a, "ckpt_path")) is not None), None)
    trusted = any((_value(a, TRUSTED_KEY) or "").lower() == "true" for a in args)
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
    saved_file = latest_overrides_file(folder)
    saved = read_overrides(saved_file)
    saved = [o for o in saved if _value(o, "resume") is None and _value(o, "ckpt_path") is None]
    if trusted:
        saved = [o for o in saved if _value(o, TRUSTED_KEY) is None]
    else:
        saved = read_back_overrides(saved, f"resume: '{saved_file}'")
    given = [a for a in args if _value(a, "resume") is None and _value(a, "ckpt_path") is None]
    return [
        argv[0],
        *saved,
        *given,
        f"resume={_quoted(folder)}",
        f"ckpt_path={_quoted(folder / LAST)}",
        *_same_folder(folder),
    ]


def read_overrides(path: Path) -> list[str]:
    """A run's saved overrides as written (a YAML list of strings; `${...}` kept as text, never resolved)."""
    if not path.is_file():
        return []
    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"resume: '{path}' is not a YAML list of overrides ({error})") from error
    if not isinstance(saved, list) or not all(isinstance(o, str) for o in saved):
        raise ValueError(f"resume: '{path}' is not a list of overrides (key=value strings)")
    return saved


def _quoted(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _same_folder(folder: Path) -> list[str]:
    return [f"hydra.run.dir={_quoted(folder)}", "hydra.output_subdir=null"]


def is_continuation(output_dir: str | Path, resume: str | None, ckpt_path: str | None) -> bool:
    """Whether a train.py run continues the run of `output_dir` (resume=, or ckpt_path=<its last.ckpt>)."""
    folder = Path(output_dir).resolve()
    return bool(resume) or run_folder_of(ckpt_path) == folder


def record_continuation(output_dir: str | Path, overrides: list[str]) -> Path | None:
    """Once a continued run has started: its overrides, as `.hydra/continued[_N].yaml` (the next resume replays
    them); the run's earlier records stay as they are."""
    if is_extra_rank():
        return None
    return write_once(Path(output_dir) / HYDRA_RECORDS, CONTINUED, OmegaConf.to_yaml(OmegaConf.create(overrides)))

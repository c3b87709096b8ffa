"""Files that are either the old version or the new one, never half of one; and files read back as data.

Writing: everything a run writes and a later run or reader trusts (checkpoints, metrics.json, history.json,
curves.png, the index caches) goes to a temporary file in the same folder (same filesystem, so the rename is
atomic), is flushed to disk, and replaces the target with `os.replace`, after which the folder itself is flushed
(the rename is on disk too); on any error the temporary file is removed and the previous file is untouched. The
file gets the mode the user's umask gives a new file (0644 under umask 022), as `open()` would, so a teammate can
read a shared run: `tempfile.mkstemp` makes its files 0600, and that mode would survive the rename.

Reading: `load_torch_file` is the project's only `torch.load`. It reads tensors and plain containers
(`weights_only=True`), so no code runs while loading; `trusted=True` unpickles anything, for files of your own.
"""

from __future__ import annotations

import os
import pickle
import secrets
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path next to `path` to write to; it replaces `path` when the block ends without an error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temporary_file(path)
    try:
        yield tmp
        with tmp.open("rb+") as f:  # on disk before the rename, or a crash could leave an empty file named `path`
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    finally:
        tmp.unlink(missing_ok=True)  # only left when something failed (after os.replace it is gone)


def _new_temporary_file(path: Path) -> Path:
    """An empty file `.<name>.<random>.tmp` beside `path`, created exclusively with mode 0666 less the umask."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:  # another writer drew the same name: draw again
            continue
        return tmp


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to disk; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a folder: the file itself is already on disk
        pass
    finally:
        os.close(fd)


def write_atomically(path: str | Path, data: str | bytes) -> Path:
    """Write `data` (text is UTF-8) to `path` so that readers see the old file or the whole new one."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)


class NotPlainData(ValueError):
    """A torch file that pickles objects other than tensors and plain containers (refused unless trusted)."""


def load_torch_file(path: str | Path, *, mmap: bool = False, trusted: bool = False) -> Any:
    """The content of a `torch.save` file, on the CPU.

    `mmap=True` maps the tensors instead of reading them (a checkpoint's metadata costs no memory). Raises
    FileNotFoundError for a missing file, `NotPlainData` for a file that needs `trusted=True`, and ValueError
    (one line, naming the file) for a file that is not a torch file, is truncated or is damaged.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at '{path}'")
    if not zipfile.is_zipfile(path):
        with path.open("rb") as f:
            truncated = f.read(4) == b"PK\x03\x04"  # a zip's first entry, but no directory at its end
        raise ValueError(
            f"'{path}' is truncated (an interrupted or full-disk write?)"
            if truncated
            else f"'{path}' is not a torch.save file"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=not trusted, mmap=mmap)
    except pickle.UnpicklingError as error:  # the weights-only unpickler refused an object
        raise NotPlainData(
            f"'{path}' pickles objects other than tensors and plain containers, and unpickling them could run "
            "code; if you made the file yourself, pass trusted=true on the command line (trusted=True in Python)"
        ) from error
    except (RuntimeError, EOFError, ValueError) as error:  # a damaged archive member
        raise ValueError(f"'{path}' cannot be read ({' '.join(str(error).split())[:200]})") from error

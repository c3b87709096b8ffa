"""Files that are either the old version or the new one, never half of one (a full disk, a kill mid-write).

Everything a run writes and a later run or reader trusts goes through here: checkpoints (`AtomicCheckpointIO`, the
trainer's default plugin in conf/trainer/default.yaml), metrics.json, history.json, curves.png and the index caches
(`write_atomically`, `atomic_path`). The new content goes to a temporary file in the same folder (same filesystem,
so the rename is atomic), is flushed to disk, and replaces the target with `os.replace`; on any error the temporary
file is removed and the previous file is untouched.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path next to `path` to write to; it replaces `path` when the block ends without an error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with tmp.open("rb+") as f:  # on disk before the rename, or a crash could leave an empty file named `path`
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only left when something failed (after os.replace it is gone)


def write_atomically(path: str | Path, data: str | bytes) -> Path:
    """Write `data` (text is UTF-8) to `path` so that readers see the old file or the whole new one."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, but through a temporary file: an interrupted save (a full disk, a kill)
    leaves the previous `last.ckpt` whole and loadable. Lightning's own writer serialises to memory first but
    then writes the target in place, so a write that fails part way truncates it."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options (got {storage_options!r})")
        if "://" in str(path):  # a remote filesystem (s3://...): fsspec's own transaction, as Lightning does
            return super().save_checkpoint(checkpoint, path, storage_options)
        with atomic_path(path) as tmp, tmp.open("wb") as f:
            torch.save(checkpoint, f)

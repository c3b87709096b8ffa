"""What every release index shares: a base class with the `VideoIndex` interface, clear errors for missing
files, one-pass folder listings, skipped-row reporting, and the on-disk record cache.

A release index turns annotation files into `VideoRecord`s. Building the records of a full release means
parsing ~250k annotation rows and listing ~250k video files, so the result is cached (JSON columns, under
`cache_dir`) and keyed by the size and modification time of every annotation file and video folder it read:
adding or removing a video changes its folder's mtime, editing an annotation file changes its own. A record's
path is stored relative to the release root and read back under it, so a cache file can point only at files of the
release it was asked about: a row that leaves the root (an absolute path, `..`) makes the file rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from vivit.common.files import write_atomically

from ..records import VIDEO_SUFFIXES, VideoRecord

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
CACHE_VERSION = 3  # bump when what an index builds changes (2: JSON columns, 3: paths relative to the root)


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vivit" / "index"


def _find(candidates: Sequence[Path], what: str, layout: str, exists) -> Path:
    """The first candidate for which `exists` holds, else a one-line FileNotFoundError naming them and the layout."""
    for path in candidates:
        if exists(path):
            return path
    tried = " or ".join(str(p) for p in candidates)
    raise FileNotFoundError(f"{what} not found: expected {tried} ({layout})")


def find_file(candidates: Sequence[Path], what: str, layout: str) -> Path:
    return _find(candidates, what, layout, Path.is_file)


def find_dir(candidates: Sequence[Path], what: str, layout: str) -> Path:
    return _find(candidates, what, layout, Path.is_dir)


def list_videos(folder: Path) -> dict[str, str]:
    """Video files directly in `folder`: stem -> file name (any video suffix, any case, e.g. EPIC's `.MP4`;
    so a release re-encoded by `vivit.datamodules.prepare` from .webm to .mp4 indexes the same). One scandir pass."""
    if not folder.is_dir():
        return {}
    videos = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, suffix = os.path.splitext(entry.name)
            if suffix.lower() in VIDEO_SUFFIXES:
                videos[stem] = entry.name
    return videos


def _stat_key(path: Path) -> list:
    try:
        st = path.stat()
    except OSError:
        return [str(path), None]
    return [str(path), st.st_size, st.st_mtime_ns]


class RecordCache:
    """JSON results keyed by their inputs' (path, size, mtime) and the index's parameters (the split among them).

    JSON, not pickle: loading a cache file cannot run code, whoever wrote it. Each file holds its own key next to
    the value and is used only when that key is the one asked for, so a file copied over another (a val cache
    under the train cache's name) or left by another version is rebuilt; so is a file that does not parse or
    whose value does not have the expected form (`load` raises). Files are replaced atomically.

    `cache_dir=None` uses ~/.cache/vivit/index ($XDG_CACHE_HOME honoured); `False` disables caching. A dataset
    folder is never written to (it is often read-only or shared); a cache that cannot be written is skipped.
    """

    SUFFIX = ".json"
    # what a cache value may fail to turn into records with: the file parsed but holds something else
    BAD_VALUE = (TypeError, ValueError, KeyError, IndexError, AttributeError)

    def __init__(self, cache_dir: str | Path | bool | None) -> None:
        self.dir = None if cache_dir is False else Path(cache_dir) if cache_dir else default_cache_dir()
        self.hits = 0  # loads served from the cache (for tests and logs)

    def get(
        self,
        name: str,
        inputs: Iterable[Path],
        params: Mapping[str, Any],
        build: Callable[[], Any],
        load: Callable[[Any], Any] = lambda value: value,
        dump: Callable[[Any], Any] = lambda value: value,
    ) -> Any:
        """`build()`, or its earlier result from the cache. `dump` turns a result into JSON-able data, `load`
        turns that back (and raises one of `BAD_VALUE` when the data is not what `dump` makes)."""
        if self.dir is None:
            return build()
        key = json.loads(
            json.dumps(
                {"v": CACHE_VERSION, "params": params, "inputs": [_stat_key(Path(p)) for p in inputs]},
                sort_keys=True,
                default=str,
            )
        )
        digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        path = self.dir / f"{name}-{digest}{self.SUFFIX}"
        try:
            stored = json.loads(path.read_bytes())
            if not isinstance(stored, dict) or stored.get("key") != key:
                raise ValueError("written for other inputs, parameters or split")
            value = load(stored["value"])
            self.hits += 1
            return value
        except FileNotFoundError:
            pass
        except (OSError, UnicodeDecodeError, *self.BAD_VALUE) as e:  # json's errors are ValueErrors
            log.info("index cache %s not used (%s: %s); rebuilding it", path, type(e).__name__, e)
        value = build()
        self._write(path, name, {"key": key, "value": dump(value)})
        return value

    def _write(self, path: Path, name: str, stored: dict) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            for stale in [*path.parent.glob(f"{name}-*{self.SUFFIX}"), *path.parent.glob(f"{name}-*.pkl")]:
                stale.unlink(missing_ok=True)  # earlier versions of the same result (.pkl: before the JSON cache)
            write_atomically(path, json.dumps(stored, separators=(",", ":")))  # a reader never sees half a file
        except OSError as e:
            log.debug("index cache not written (%s): %s", path, e)


# Records are cached as one JSON list per field (columns): parsing flat lists is ~3x faster than a list per row,
# and building the Path objects of the records then dominates.
FIELDS = ("path", "label", "id", "start", "end", "fps", "frame_template", "first_index")


def pack(records: Sequence[VideoRecord], root: Path) -> dict[str, list]:
    """Records as JSON columns, their paths relative to the release `root` (every record of a release is under it)."""
    paths = [Path(r.path).relative_to(root).as_posix() for r in records]
    return {"path": paths, **{f: [getattr(r, f) for r in records] for f in FIELDS[1:]}}


def unpack(columns: Mapping[str, Sequence], root: Path) -> list[VideoRecord]:
    """Records from `pack`'s columns, under `root`; a TypeError/KeyError/ValueError if `columns` is not what `pack`
    makes, or a row's path leaves the root."""
    fields = [columns[f] for f in FIELDS]
    if len({len(values) for values in fields}) != 1:
        raise ValueError("columns of different lengths")
    return [VideoRecord(under(root, path), *rest) for path, *rest in zip(*fields)]


def under(root: Path, relative: str) -> Path:
    """`root / relative` for a path that stays under `root`; a ValueError for one that leaves it."""
    if not isinstance(relative, str):
        raise TypeError(f"a row's path is not a string: {relative!r}")
    part = PurePosixPath(relative)
    if part.is_absolute() or ".." in part.parts or PureWindowsPath(relative).drive:
        raise ValueError(f"a row points outside the dataset root: {relative!r}")
    return root / part


def _class_names(value: Any) -> list[str] | dict[str, list[str]]:
    """A cached class list (or one per head), checked: anything else is rebuilt."""
    lists = value.values() if isinstance(value, dict) else [value]
    if not all(isinstance(names, list) and all(isinstance(n, str) for n in names) for names in lists):
        raise TypeError("not a list of class names")
    return value


class ReleaseIndex:
    """Base of the release indexes: `classes`, `records(split)`, `prepare()` (see `VideoIndex`).

    Subclasses set `name` and `layout` (for messages) and implement `check()` (raise if the release is not
    there), `load_classes()`, `split_inputs(split)` (the files and folders a split's records depend on) and
    `build(split) -> (records, rows without a video)`.
    """

    name = "dataset"
    layout = ""

    def __init__(self, root: str | Path, cache_dir: str | Path | bool | None = None) -> None:
        if root is None or str(root) in ("", "???"):
            raise ValueError(f"{self.name}: no dataset root given; set data.root=/path/to/the/release ({self.layout})")
        self.root = Path(root).expanduser()
        self.cache = RecordCache(cache_dir)
        self.missing: dict[str, int] = {}  # rows skipped per split because their video is not on disk
        self._classes: Any = None
        self._records: dict[str, list[VideoRecord]] = {}

    # -- the VideoIndex interface ----------------------------------------------------------------------

    def prepare(self) -> None:
        """Fail early, in one line, when the release is not where the config says."""
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.name} root not found: {self.root} (expected {self.layout})")
        self.check()

    @property
    def classes(self) -> Any:
        if self._classes is None:
            self.prepare()
            self._classes = self.load_classes()
        return self._classes

    def records(self, split: str) -> list[VideoRecord]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if split not in self._records:
            self.prepare()
            params = {"index": type(self).__name__, "root": str(self.root.resolve()), "split": split, **self.params()}

            def build() -> tuple[list[VideoRecord], int, int]:
                records, missing = self.build(split)
                return records, missing, len(records) + missing

            def dump(value: tuple[list[VideoRecord], int, int]) -> list:
                records, missing, total = value
                return [pack(records, self.root), missing, total]

            def load(value: list) -> tuple[list[VideoRecord], int, int]:
                columns, missing, total = value
                return unpack(columns, self.root), int(missing), int(total)

            records, missing, total = self.cache.get(
                f"{self.cache_name()}-{split}", self.split_inputs(split), params, build, load=load, dump=dump
            )
            self.missing[split] = missing
            if missing:  # reported once per split and process
                log.warning(
                    "%s %s: %d of %d annotated clips have no video on disk and are skipped",
                    self.name,
                    split,
                    missing,
                    total,
                )
            if not records:
                raise ValueError(
                    f"{self.name} {split}: none of the {total} annotated clips has a video under "
                    f"{self.root} (expected {self.layout})"
                )
            self._records[split] = records
        return self._records[split]

    # -- for subclasses -----------------------------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        """Constructor arguments that change the records (part of the cache key)."""
        return {}

    def cache_name(self) -> str:
        digest = hashlib.sha1(str(self.root.resolve()).encode()).hexdigest()[:8]
        return f"{type(self).__name__.lower()}-{digest}"

    def cached_classes(self, inputs: Sequence[Path], build: Callable[[], Any]) -> Any:
        params = {"index": type(self).__name__, "root": str(self.root.resolve()), "classes": True, **self.params()}
        return self.cache.get(f"{self.cache_name()}-classes", inputs, params, build, load=_class_names)

    def check(self) -> None:
        raise NotImplementedError

    def load_classes(self) -> Any:
        raise NotImplementedError

    def split_inputs(self, split: str) -> list[Path]:
        raise NotImplementedError

    def build(self, split: str) -> tuple[list[VideoRecord], int]:
        raise NotImplementedError


def label_index(label: str, index: Mapping[str, int], where: Path | str, hint: str) -> int:
    try:
        return index[label]
    except KeyError:
        raise ValueError(f"{where}: label {label!r} is not one of the {len(index)} classes ({hint})") from None


class LabelCheck:
    """Rows of one annotation file: a split is labelled when any row has a label, and then every row must have
    one (an unlabelled row would silently leave the accuracy's denominator). `add(line, has_label)` per row,
    `check()` at the end raises a ValueError naming the file and the first line without a label.

    `locate` turns what was passed to `add` into a line number when that is not one already (a JSON file's entry
    number: finding lines costs a second parse, so it is done only for the message)."""

    def __init__(self, path: Path, locate: Callable[[int], int] | None = None) -> None:
        self.path, self.labelled, self.empty = path, 0, []
        self.locate = locate or (lambda line: line)

    def add(self, line: int, has_label: bool) -> None:
        if has_label:
            self.labelled += 1
        else:
            self.empty.append(line)

    def check(self) -> None:
        if self.labelled and self.empty:
            raise ValueError(
                f"{self.path}:{self.locate(self.empty[0])}: no label, but {self.labelled} other rows "
                f"of this labelled split have one ({len(self.empty)} rows without a label); label every "
                "row, or none for an unlabelled split"
            )


def json_entry_lines(text: str) -> list[int]:
    """The 1-based line on which each element of a top-level JSON array starts (for messages naming a line)."""
    decoder, lines, i = json.JSONDecoder(), [], text.index("[") + 1
    line, counted = 1, 0  # newlines counted in text[:counted]
    while True:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        if i >= len(text) or text[i] == "]":
            return lines
        line, counted = line + text.count("\n", counted, i), i
        lines.append(line)
        _, i = decoder.raw_decode(text, i)

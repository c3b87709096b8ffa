"""`data=folder`: any dataset given as CSV files of `path,label` or as one folder per class.

Layout under `root` (each split independently):

    root/train.csv  root/val.csv  root/test.csv     header `path,label` (+ optional `start,end` in seconds);
                                                    paths relative to the CSV; label = class name or integer;
                                                    an empty or absent label column = unlabelled split
    root/train/<class>/*.mp4 ...                    or a folder per class instead of a CSV
    root/classes.txt                                optional: one class name per line, in index order

Class indices are the sorted class names of the training split unless `classes.txt` is given; labels that
are all integers are used as indices directly.
"""

from __future__ import annotations

import csv
from pathlib import Path

from .index.common import LabelCheck
from .records import VIDEO_SUFFIXES, VideoRecord

SPLITS = ("train", "val", "test")


class FolderVideos:
    """Index of a custom dataset. `train`/`val`/`test` name each split's CSV file or class folder
    (relative to `root`); by default `<split>.csv`, else the folder `<split>/`."""

    def __init__(
        self,
        root: str | Path,
        train: str | None = None,
        val: str | None = None,
        test: str | None = None,
        classes: str | list[str] | None = None,
        frame_template: str | None = None,
        first_index: int = 1,
        fps: float | None = None,
    ) -> None:
        self.root = Path(root)
        self.sources = {"train": train, "val": val, "test": test}
        self._classes_arg = classes
        self.frame_template = frame_template
        self.first_index = first_index
        self.fps = fps
        self._classes: list[str] | None = None
        self._integer_labels = False

    # -- classes ------------------------------------------------------------------------------------

    @property
    def classes(self) -> list[str]:
        if self._classes is None:
            self._classes = self._load_classes()
        return self._classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _load_classes(self) -> list[str]:
        if isinstance(self._classes_arg, (list, tuple)):
            return [str(c) for c in self._classes_arg]
        path = self.root / (self._classes_arg or "classes.txt")
        if path.is_file():
            names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            if not names:
                raise ValueError(f"{path} lists no classes (expected one class name per line)")
            return names
        if self._classes_arg:
            raise FileNotFoundError(f"classes file not found: {path} (expected one class name per line)")
        labels = {label for _, label, _, _ in self._rows("train") if label is not None}
        if not labels:
            raise ValueError(f"the training split of {self.root} has no labels; give a classes.txt")
        if all(label.lstrip("-").isdigit() for label in labels):
            self._integer_labels = True
            return [str(i) for i in range(max(int(label) for label in labels) + 1)]
        return sorted(labels)

    # -- records ------------------------------------------------------------------------------------

    def records(self, split: str) -> list[VideoRecord]:
        """The split's records, labels mapped to class indices."""
        index = {name: i for i, name in enumerate(self.classes)}
        records, labels = [], LabelCheck(self._source(split))
        for n, (path, label, span, line) in enumerate(self._rows(split)):
            labels.add(line, label is not None)
            records.append(
                VideoRecord(
                    path=path,
                    label=self._label_index(label, index, split, line),
                    id=f"{split}/{n}:{path.name}",
                    start=span[0],
                    end=span[1],
                    fps=self.fps,
                    frame_template=self.frame_template,
                    first_index=self.first_index,
                )
            )
        if not records:
            raise ValueError(f"split {split!r} of {self.root} is empty ({self._source(split)})")
        labels.check()
        return records

    def _label_index(self, label: str | None, index: dict[str, int], split: str, line: int) -> int | None:
        if label is None:
            return None
        if label in index:
            return index[label]
        if label.lstrip("-").isdigit() and 0 <= int(label) < len(index):
            return int(label)
        raise ValueError(
            f"{self._source(split)}:{line}: label {label!r} of split {split!r} is not one of the "
            f"{len(index)} classes; add it to {self.root / 'classes.txt'}"
        )

    def _source(self, split: str) -> Path:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if self.sources[split]:
            return self.root / self.sources[split]
        csv_path = self.root / f"{split}.csv"
        if csv_path.is_file() or not (self.root / split).is_dir():
            return csv_path
        return self.root / split

    def _rows(self, split: str):
        """(absolute path, label name or None, (start, end), line of the CSV or 0) per sample."""
        source = self._source(split)
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"dataset root not found: {self.root} (expected {split}.csv files with "
                f"'path,label' rows or folders {split}/<class>/*.mp4)"
            )
        if source.is_dir():
            return list(self._folder_rows(source))
        if not source.is_file():
            raise FileNotFoundError(
                f"annotation file not found: {source} (expected a CSV with header "
                f"'path,label', or a folder {self.root / split}/<class>/*.mp4)"
            )
        return list(self._csv_rows(source))

    def _csv_rows(self, path: Path):
        # utf-8-sig: a byte-order mark (Excel's "CSV UTF-8") is read past, not taken for part of the header
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "path" not in reader.fieldnames:
                raise ValueError(f"{path}: expected a header line 'path,label', got {reader.fieldnames}")
            for row in reader:
                label = (row.get("label") or "").strip() or None
                span = tuple(_seconds(row, key, path, reader.line_num) for key in ("start", "end"))
                yield (path.parent / row["path"].strip()), label, span, reader.line_num

    def _folder_rows(self, folder: Path):
        for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            for path in sorted(class_dir.iterdir()):
                if path.suffix.lower() in VIDEO_SUFFIXES or (self.frame_template and path.is_dir()):
                    yield path, class_dir.name, (None, None), 0


def _seconds(row: dict[str, str], key: str, path: Path, line: int) -> float | None:
    """A row's `start` or `end` in seconds (None when empty), or a ValueError naming the file and line."""
    value = (row.get(key) or "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(
            f"{path}:{line}: {key}={value!r} is not a number of seconds; write it like 12.5, or leave it empty "
            "for the whole video"
        ) from None

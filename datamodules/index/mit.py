"""Moments in Time as `Moments_in_Time_Raw.zip` unpacks (`data=mit`).

    <root>/moments_categories.txt      `name,index` per line, no header
    <root>/trainingSet.csv             no header: filename,label,positive responses,negative responses
    <root>/validationSet.csv           (filename includes the class folder: blocking/getty-...-id635808620_4.mp4)
    <root>/training/<class>/<file>.mp4
    <root>/validation/<class>/<file>.mp4

The number of classes is read from the categories file (339 in MiT v1, 305 in later releases). There is no
public labelled test set, so the `test` split evaluates the validation set (as mmaction2 does).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from ..records import VideoRecord
from .common import LabelCheck, ReleaseIndex, find_dir, find_file, label_index, list_videos

SPLITS = {
    "train": ("trainingSet.csv", "training"),
    "val": ("validationSet.csv", "validation"),
    "test": ("validationSet.csv", "validation"),
}


# The releases by their class count: the paper's numbers come from v1, the download is the current release
RELEASES = {339: "MiT v1, the paper's release", 305: "the current release, Moments_in_Time_Raw"}


class MomentsInTime(ReleaseIndex):
    name = "Moments in Time"
    layout = (
        "<root>/moments_categories.txt, <root>/trainingSet.csv, <root>/validationSet.csv, "
        "<root>/training/<class>/*.mp4, <root>/validation/<class>/*.mp4"
    )

    def categories_file(self) -> Path:
        return find_file([self.root / "moments_categories.txt"], "Moments in Time categories", self.layout)

    def check(self) -> None:
        self.categories_file()

    @staticmethod
    def describe_classes(count: int) -> str | None:
        """Which MiT release has `count` classes (a class-count mismatch says which folder was found)."""
        return RELEASES.get(count)

    def load_classes(self) -> list[str]:
        path = self.categories_file()
        pairs = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            name, _, index = line.strip().rpartition(",")
            if not name or not index.strip().isdigit():
                raise ValueError(f"{path}:{n}: expected 'name,index', got {line!r}")
            pairs.append((int(index), name))
        pairs.sort()
        if [i for i, _ in pairs] != list(range(len(pairs))):
            raise ValueError(f"{path}: class indices must be 0..{len(pairs) - 1} without gaps")
        return [name for _, name in pairs]

    def split_files(self, split: str) -> tuple[Path, Path]:
        annotations, videos = SPLITS[split]
        return (
            find_file([self.root / annotations], f"Moments in Time {split} annotations", self.layout),
            find_dir([self.root / videos], f"Moments in Time {split} videos", self.layout),
        )

    def split_inputs(self, split: str) -> list[Path]:
        path, folder = self.split_files(split)
        with os.scandir(folder) as entries:  # one folder per class: the records depend on each
            class_dirs = sorted(folder / e.name for e in entries if e.is_dir())
        return [self.categories_file(), path, folder, *class_dirs]

    def build(self, split: str) -> tuple[list[VideoRecord], int]:
        path, folder = self.split_files(split)
        index = {name: i for i, name in enumerate(self.classes)}
        hint = f"classes are listed in {self.categories_file()}"
        listings: dict[str, set[str]] = {}
        records, missing, labels = [], 0, LabelCheck(path)
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            for row in reader:
                if not row:
                    continue
                if len(row) < 2:
                    raise ValueError(
                        f"{path}:{reader.line_num}: expected 'filename,label,positive,negative' rows, got {row}"
                    )
                filename, label = row[0].strip(), row[1].strip()
                labels.add(reader.line_num, bool(label))  # every row counts, with or without its video
                class_dir, _, name = filename.rpartition("/")
                if class_dir not in listings:
                    listings[class_dir] = set(list_videos(folder / class_dir).values())
                if name not in listings[class_dir]:
                    missing += 1
                    continue
                label_id = label_index(label, index, f"{path}:{reader.line_num}", hint) if label else None
                records.append(VideoRecord(path=folder / filename, label=label_id, id=filename))
        labels.check()
        return records, missing

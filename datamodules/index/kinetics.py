"""Kinetics-400 / 600 / 700-2020 as CVDF's downloader and extractor leave them (`data=k400|k600|k700`).

    <root>/train/<youtube_id>_<start:06d>_<end:06d>.mp4 ...      one flat folder per split
    <root>/val/...  <root>/test/...
    <root>/replacement/replacement_for_corrupted_k400/*.mp4      K400: fixed copies of ~1.4k corrupt clips
    <root>/annotations/train.csv val.csv test.csv               label,youtube_id,time_start,time_end,split[,is_cc]
    K600: annotations/train.txt, val.txt (the complete lists, CSV text with the same header; CVDF marks its
          train.csv/val.csv "incomplete", so those are read only when the .txt is absent), test.csv

Labels may be quoted and contain spaces (read with `csv`); a test CSV may have no `label` column (unlabelled).
Class index = the sorted unique labels of the training annotations (as mmaction2's label maps). Rows whose
clip is not on disk (videos vanish from YouTube: ~2.5% of K400 train) are skipped and counted.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..records import VideoRecord
from .common import LabelCheck, ReleaseIndex, find_dir, find_file, label_index, list_videos

ANNOTATIONS = {  # candidate annotation files per split, first found wins
    400: {"train": ["train.csv"], "val": ["val.csv"], "test": ["test.csv"]},
    600: {"train": ["train.txt", "train.csv"], "val": ["val.txt", "validate.csv", "val.csv"], "test": ["test.csv"]},
    700: {"train": ["train.csv"], "val": ["val.csv"], "test": ["test.csv"]},
}
REPLACEMENT = "replacement/replacement_for_corrupted_k400"


def clip_key(youtube_id: str, start: str | float, end: str | float) -> tuple[str, int, int]:
    return youtube_id, int(float(start)), int(float(end))


def file_key(stem: str) -> tuple[str, int, int] | None:
    """`<youtube_id>_<start:06d>_<end:06d>` -> key; ids may contain '_' and start with '-'."""
    parts = stem.rsplit("_", 2)
    if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return parts[0], int(parts[1]), int(parts[2])


class Kinetics(ReleaseIndex):
    """Index of a CVDF Kinetics release.

    Args:
        root: the release folder (holding train/, val/, test/, annotations/).
        version: 400, 600 or 700 (700 = Kinetics-700-2020); picks the annotation file names.
        test: which annotated split the `test` split evaluates ("test", or "val" when the test annotations
            carry no labels, e.g. K600's test.csv).
        cache_dir: where the parsed index is cached (None: ~/.cache/vivit/index; False: off).
    """

    def __init__(
        self, root: str | Path, version: int = 400, test: str = "test", cache_dir: str | Path | bool | None = None
    ) -> None:
        self.version = int(version)
        if self.version not in ANNOTATIONS:
            raise ValueError(f"Kinetics version must be 400, 600 or 700, got {version}")
        self.name = f"Kinetics-{self.version}"
        files = " ".join(names[0] for names in ANNOTATIONS[self.version].values())
        self.layout = (
            f"CVDF layout: <root>/train/<youtube_id>_<start:06d>_<end:06d>.mp4, <root>/val/, "
            f"<root>/test/ and <root>/annotations/ with {files}"
        )
        super().__init__(root, cache_dir)
        if test not in ("test", "val"):
            raise ValueError(f"Kinetics test split must be 'test' or 'val', got {test!r}")
        self.test = test

    def params(self) -> dict:
        return {"version": self.version, "test": self.test}

    def annotation_file(self, split: str) -> Path:
        source = self.test if split == "test" else split
        folder = self.root / "annotations"
        return find_file(
            [folder / name for name in ANNOTATIONS[self.version][source]],
            f"{self.name} {source} annotations",
            self.layout,
        )

    def video_dir(self, split: str) -> Path:
        source = self.test if split == "test" else split
        return find_dir([self.root / source], f"{self.name} {source} videos", self.layout)

    def check(self) -> None:
        self.annotation_file("train")  # the class list comes from it

    # -- classes --------------------------------------------------------------------------------------

    def load_classes(self) -> list[str]:
        path = self.annotation_file("train")
        return self.cached_classes([path], lambda: sorted({row["label"] for row in self.rows(path)}))

    def rows(self, path: Path) -> list[dict[str, str]]:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            if "youtube_id" not in fields or "time_start" not in fields:
                raise ValueError(
                    f"{path}: expected the CVDF header 'label,youtube_id,time_start,time_end,split', "
                    f"got {','.join(fields) or 'an empty file'}"
                )
            return [
                {**{k: (v or "").strip() for k, v in row.items() if k}, "_line": str(reader.line_num)} for row in reader
            ]

    # -- records --------------------------------------------------------------------------------------

    def split_inputs(self, split: str) -> list[Path]:
        return [
            self.annotation_file("train"),
            self.annotation_file(split),
            self.video_dir(split),
            self.root / REPLACEMENT,
        ]

    def build(self, split: str) -> tuple[list[VideoRecord], int]:
        path, folder = self.annotation_file(split), self.video_dir(split)
        videos = {}
        for directory in (folder, self.root / REPLACEMENT):  # replacements win over corrupt originals
            for stem, name in list_videos(directory).items():
                if (key := file_key(stem)) is not None:
                    videos[key] = directory / name
        index = {name: i for i, name in enumerate(self.classes)}
        hint = f"classes are the labels of {self.annotation_file('train')}"
        records, missing, labels = [], 0, LabelCheck(path)
        for row in self.rows(path):
            labels.add(int(row["_line"]), bool(row.get("label")))
            key = clip_key(row["youtube_id"], row["time_start"], row["time_end"])
            video = videos.get(key)
            if video is None:
                missing += 1
                continue
            label = label_index(row["label"], index, f"{path}:{row['_line']}", hint) if row.get("label") else None
            records.append(VideoRecord(path=video, label=label, id=f"{key[0]}_{key[1]:06d}_{key[2]:06d}"))
        labels.check()
        return records, missing

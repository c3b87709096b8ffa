"""Something-Something v2 as the Qualcomm/20BN release unpacks (`data=ssv2`).

    <root>/20bn-something-something-v2/<id>.webm     `cat 20bn-something-something-v2-?? | tar zx` (or
                                                     <root>/videos/, or the .webm files directly in <root>)
    <root>/labels/something-something-v2-labels.json       {"Approaching something with your camera": "0", ...}
    <root>/labels/something-something-v2-train.json        [{"id", "label", "template", "placeholders"}, ...]
    <root>/labels/something-something-v2-validation.json
    <root>/labels/something-something-v2-test.json         [{"id"}, ...] (no labels)

The label files may also sit in <root>/ or <root>/annotations/, and be named without the
`something-something-v2-` prefix (labels.json, train.json, ...). The class of a clip is its `template` with
the brackets removed, looked up in the labels file (whose values are strings); the `label` field is the
instantiated sentence, not the class. VP9 WebM streams report 0 frames; the reader counts them from
duration x rate.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..records import VideoRecord
from .common import LabelCheck, ReleaseIndex, find_file, json_entry_lines, label_index, list_videos

VIDEO_DIRS = ("20bn-something-something-v2", "videos")
LABEL_DIRS = ("labels", "annotations", ".")
SOURCES = {"train": "train", "val": "validation"}


def template_class(template: str) -> str:
    """`"Holding [something] next to [something]"` -> `"Holding something next to something"`."""
    return template.replace("[", "").replace("]", "")


class SomethingSomethingV2(ReleaseIndex):
    """Index of SSv2. `test`: the annotation file the `test` split reads, "validation" (as scenic, whose SSv2
    test table is the validation set) or "test" (ids only, unlabelled: for a leaderboard submission)."""

    name = "Something-Something-v2"
    layout = (
        "<root>/20bn-something-something-v2/<id>.webm and <root>/labels/something-something-v2-"
        "{labels,train,validation,test}.json"
    )

    def __init__(self, root: str | Path, test: str = "validation", cache_dir: str | Path | bool | None = None) -> None:
        super().__init__(root, cache_dir)
        if test not in ("validation", "test"):
            raise ValueError(f"SSv2 test split must be 'validation' or 'test', got {test!r}")
        self.test = test

    def params(self) -> dict:
        return {"test": self.test}

    def json_file(self, name: str) -> Path:
        candidates = [
            self.root / folder / f"{prefix}{name}.json"
            for folder in LABEL_DIRS
            for prefix in ("something-something-v2-", "")
        ]
        return find_file(candidates, f"SSv2 {name} annotations", self.layout)

    def source(self, split: str) -> str:
        return self.test if split == "test" else SOURCES[split]

    def video_dir(self) -> Path:
        for name in VIDEO_DIRS:
            if (self.root / name).is_dir():
                return self.root / name
        return self.root

    def check(self) -> None:
        self.json_file("labels")

    def load_classes(self) -> list[str]:
        path = self.json_file("labels")
        labels = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(labels, dict):
            raise ValueError(f"{path}: expected a JSON object {{class name: index string}}")
        by_index = sorted((int(index), name) for name, index in labels.items())
        if [i for i, _ in by_index] != list(range(len(by_index))):
            raise ValueError(f"{path}: class indices must be 0..{len(by_index) - 1} without gaps")
        return [name for _, name in by_index]

    def split_inputs(self, split: str) -> list[Path]:
        return [self.json_file("labels"), self.json_file(self.source(split)), self.video_dir()]

    def build(self, split: str) -> tuple[list[VideoRecord], int]:
        path, folder = self.json_file(self.source(split)), self.video_dir()
        text = path.read_text(encoding="utf-8")
        entries = json.loads(text)
        videos = list_videos(folder)
        index = {name: i for i, name in enumerate(self.classes)}
        hint = f"classes are the keys of {self.json_file('labels')}"

        def line(n: int) -> int:  # the line of entry n, for a message only (a second parse)
            return json_entry_lines(text)[n]

        # every entry counts: a labelled split (train, validation) with an entry without a template is an error,
        # an ids-only file (the test JSON) is an unlabelled split
        labels = LabelCheck(path, locate=line)
        for n, entry in enumerate(entries):
            labels.add(n, bool(entry.get("template")))
        labels.check()
        records, missing = [], 0
        for n, entry in enumerate(entries):
            video_id = str(entry["id"])
            name = videos.get(video_id)
            if name is None:
                missing += 1
                continue
            template = entry.get("template")
            label = index.get(template_class(template)) if template else None
            if template and label is None:  # raises, naming the line (found only now: it costs a second parse)
                label_index(template_class(template), index, f"{path}:{line(n)}", hint)
            records.append(VideoRecord(path=folder / name, label=label, id=video_id))
        return records, missing

"""EPIC-KITCHENS-100 action recognition (`data=epic100`): verb and noun heads, from frames or videos.

    <root>/P01/rgb_frames/P01_01/frame_0000000001.jpg ...   `source: frames` (the released RGB frames, extracted
                                                            from PXX/rgb_frames/PXX_YY.tar; 1-indexed)
    <root>/P01/videos/P01_01.MP4                            `source: videos`
    <annotations>/EPIC_100_train.csv  EPIC_100_validation.csv  EPIC_100_test_timestamps.csv
    <annotations>/EPIC_100_noun_classes.csv  EPIC_100_verb_classes.csv

`root` is the downloader's EPIC-KITCHENS folder (or its parent). `annotations` is the clone of
epic-kitchens-100-annotations; by default it is looked for in <root>/epic-kitchens-100-annotations,
<root>/annotations, <root> itself, and beside <root>.

`start_frame`/`stop_frame` count frames at 60 fps for PXX_YY videos (EPIC-55) and 50 fps for PXX_1YY videos
(the EPIC-100 extension), whatever the video's native rate (checked over all validation and test rows). With
frames, a clip is the files [start_frame, stop_frame]; with videos, frame n is shown at (n - 1) / fps seconds,
so the clip spans [(start_frame - 1) / fps, stop_frame / fps) and is sampled on that 60/50 fps grid too: a
stride means the same thing for both sources.

Classes: two heads in scenic's order, {"noun": 300 names, "verb": 97 names}, indices from the class CSVs.
The paper and scenic report the validation set as the test set, so `test` reads EPIC_100_validation.csv by
default; set it to EPIC_100_test_timestamps.csv for a challenge submission (no labels: label None).

What the evaluation reports beyond top-1/top-5 is declared here, for vivit.evaluation to consume: actions are
the (verb, noun) pairs ranked by the product of the two softmaxes (`combined_heads`), the official breakdown is
overall / unseen participants / tail classes (`evaluation_subsets`), and an unlabelled split writes the challenge
file (`submission`): a zip archive holding `test.json`, ready to upload.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..records import VideoRecord
from .common import LabelCheck, ReleaseIndex, find_file, list_videos

CLASS_FILES = {"noun": "EPIC_100_noun_classes.csv", "verb": "EPIC_100_verb_classes.csv"}
FRAME_TEMPLATE = "frame_{:010d}.jpg"
SOURCES = {"frames": "rgb_frames", "videos": "videos"}
SUPERVISION_LEVELS = ("sls_pt", "sls_tl", "sls_td")  # the challenge's self-reported supervision levels, 0-5


def annotation_fps(video_id: str) -> int:
    """Rate of the annotation frame numbers: 50 for PXX_1YY (EPIC-100 extension), 60 for PXX_YY (EPIC-55)."""
    return 50 if len(video_id.split("_")[1]) == 3 else 60


class EpicKitchens100(ReleaseIndex):
    """Index of EPIC-KITCHENS-100.

    Args:
        root: the EPIC-KITCHENS folder holding P01/, P02/, ... (or the folder holding EPIC-KITCHENS/).
        source: "frames" (rgb_frames/<video>/frame_%010d.jpg) or "videos" (videos/<video>.MP4).
        annotations: folder of the annotation CSVs; None searches the usual places (module docstring).
        train, val, test: annotation file of each split.
    """

    name = "EPIC-KITCHENS-100"
    combined_heads = {"action": ("noun", "verb")}  # an action is a (verb, noun) pair, scored jointly
    # the action-recognition challenge takes a zip archive holding one `test.json` (the organisers' writer,
    # epic-kitchens/C1-Action-Recognition utils/challenge.py, zips it the same way)
    submission_file = "epic100_submission_{split}.zip"
    submission_archive_member = "test.json"
    layout = (
        "<root>/PXX/rgb_frames/PXX_YY/frame_%010d.jpg (source=frames) or <root>/PXX/videos/PXX_YY.MP4 "
        "(source=videos), annotations from epic-kitchens-100-annotations (EPIC_100_*.csv)"
    )

    def __init__(
        self,
        root: str | Path,
        source: str = "frames",
        annotations: str | Path | None = None,
        train: str = "EPIC_100_train.csv",
        val: str = "EPIC_100_validation.csv",
        test: str = "EPIC_100_validation.csv",
        cache_dir: str | Path | bool | None = None,
    ) -> None:
        super().__init__(root, cache_dir)
        if source not in SOURCES:
            raise ValueError(f"EPIC-KITCHENS source must be 'frames' or 'videos', got {source!r}")
        self.source = source
        self.annotations = Path(annotations).expanduser() if annotations else None
        self.files = {"train": train, "val": val, "test": test}

    def params(self) -> dict:
        return {"source": self.source, "annotations": str(self.annotations), "files": self.files}

    # -- where things are -----------------------------------------------------------------------------

    def video_root(self) -> Path:
        nested = self.root / "EPIC-KITCHENS"
        return nested if nested.is_dir() else self.root

    def annotation_dirs(self) -> list[Path]:
        if self.annotations is not None:
            return [self.annotations]
        return [
            self.root / "epic-kitchens-100-annotations",
            self.root / "annotations",
            self.root,
            self.root.parent / "epic-kitchens-100-annotations",
        ]

    def annotation_file(self, name: str) -> Path:
        return find_file(
            [folder / name for folder in self.annotation_dirs()],
            f"EPIC-KITCHENS-100 {name}",
            "clone epic-kitchens-100-annotations there or set data.index.annotations=/path/to/it",
        )

    def participant_dirs(self) -> list[Path]:
        """PXX/rgb_frames (or PXX/videos) of every participant on disk: what the records depend on."""
        root = self.video_root()
        with os.scandir(root) as entries:
            participants = sorted(e.name for e in entries if e.is_dir() and e.name.startswith("P"))
        return [root / p / SOURCES[self.source] for p in participants]

    def check(self) -> None:
        for name in CLASS_FILES.values():
            self.annotation_file(name)

    # -- classes and records ----------------------------------------------------------------------------

    def load_classes(self) -> dict[str, list[str]]:
        classes = {}
        for head, name in CLASS_FILES.items():
            path = self.annotation_file(name)
            with path.open(newline="", encoding="utf-8") as f:
                rows = sorted((int(row["id"]), row["key"]) for row in csv.DictReader(f))
            if [i for i, _ in rows] != list(range(len(rows))):
                raise ValueError(f"{path}: class ids must be 0..{len(rows) - 1} without gaps")
            classes[head] = [key for _, key in rows]
        return classes

    def split_inputs(self, split: str) -> list[Path]:
        return [self.annotation_file(self.files[split]), *self.participant_dirs()]

    def build(self, split: str) -> tuple[list[VideoRecord], int]:
        path = self.annotation_file(self.files[split])
        root = self.video_root()
        on_disk: dict[str, dict[str, str]] = {}  # participant -> {video id: folder or file name}
        records, missing, labels = [], 0, LabelCheck(path)
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not {"video_id", "start_frame", "stop_frame"} <= set(reader.fieldnames or []):
                raise ValueError(
                    f"{path}: expected the EPIC-KITCHENS-100 header with video_id, start_frame and "
                    f"stop_frame columns, got {reader.fieldnames}"
                )
            labelled_file = bool({"noun_class", "verb_class"} & set(reader.fieldnames))
            sizes = {head: len(names) for head, names in self.classes.items()} if labelled_file else {}
            for row in reader:
                if labelled_file:
                    labelled = all(row.get(k) not in (None, "") for k in ("noun_class", "verb_class"))
                    labels.add(reader.line_num, labelled)
                    if labelled:  # a class id outside the class files: now, not as a wrong number after training
                        self._check_classes(row, sizes, f"{path}:{reader.line_num}")
                video_id, participant = row["video_id"], row["participant_id"]
                if participant not in on_disk:
                    on_disk[participant] = self._list(root / participant / SOURCES[self.source])
                name = on_disk[participant].get(video_id)
                if name is None:
                    missing += 1
                    continue
                records.append(self._record(row, root / participant / SOURCES[self.source] / name))
        labels.check()
        return records, missing

    def _check_classes(self, row: dict[str, str], sizes: dict[str, int], where: str) -> None:
        for head, size in sizes.items():
            value = row[f"{head}_class"].strip()
            if not value.isdigit() or int(value) >= size:
                raise ValueError(
                    f"{where}: {head}_class {value!r} is not one of the {size} {head} classes "
                    f"(0..{size - 1} of EPIC_100_{head}_classes.csv)"
                )

    def _list(self, folder: Path) -> dict[str, str]:
        if self.source == "videos":
            return list_videos(folder)
        if not folder.is_dir():
            return {}
        with os.scandir(folder) as entries:
            return {e.name: e.name for e in entries if e.is_dir()}

    def _record(self, row: dict[str, str], path: Path) -> VideoRecord:
        fps = annotation_fps(row["video_id"])
        start, stop = int(row["start_frame"]), int(row["stop_frame"])
        label = None
        if row.get("noun_class") not in (None, "") and row.get("verb_class") not in (None, ""):
            label = {"noun": int(row["noun_class"]), "verb": int(row["verb_class"])}
        if self.source == "frames":
            return VideoRecord(
                path=path,
                label=label,
                id=row["narration_id"],
                start=start,
                end=stop,
                fps=fps,
                frame_template=FRAME_TEMPLATE,
                first_index=1,
            )
        return VideoRecord(
            path=path, label=label, id=row["narration_id"], start=(start - 1) / fps, end=stop / fps, fps=fps
        )

    # -- what the evaluation reports (vivit.evaluation.split) -----------------------------------------------------

    def evaluation_subsets(self, split: str, records: Sequence[VideoRecord]) -> dict[str, Any]:
        """The official action-recognition breakdown of labelled `records`: all segments (overall), the segments of
        unseen participants, and tail classes (verb metrics on segments of a tail verb, noun metrics on those of a
        tail noun, actions on segments of either, as the official evaluation script masks them)."""
        unseen_file = (
            "EPIC_100_unseen_participant_ids_test.csv"
            if "test" in self.files[split]
            else "EPIC_100_unseen_participant_ids_validation.csv"
        )
        unseen = {row.strip() for row in self.annotation_file(unseen_file).read_text().splitlines()[1:] if row.strip()}
        tail_verbs = set(read_class_column(self.annotation_file("EPIC_100_tail_verbs.csv"), "verb"))
        tail_nouns = set(read_class_column(self.annotation_file("EPIC_100_tail_nouns.csv"), "noun"))
        tail_verb = torch.tensor([r.label["verb"] in tail_verbs for r in records], dtype=torch.bool)
        tail_noun = torch.tensor([r.label["noun"] in tail_nouns for r in records], dtype=torch.bool)
        participants = [r.id.split("_")[0] for r in records]  # narration ids are PXX_YY_N
        return {
            "epic_overall": torch.ones(len(records), dtype=torch.bool),
            "epic_unseen": torch.tensor([p in unseen for p in participants], dtype=torch.bool),
            "epic_tail": {"verb": tail_verb, "noun": tail_noun, "action": tail_verb | tail_noun},
        }

    @staticmethod
    def check_submission(options: Mapping[str, Any]) -> None:
        """The challenge's supervision levels must be stated (eval.submission.*), integers 0-5."""
        missing = [f"eval.submission.{key}" for key in SUPERVISION_LEVELS if options.get(key) is None]
        if missing:
            raise ValueError(
                f"{', '.join(missing)}: set the supervision levels (integers 0-5) for the "
                "EPIC-KITCHENS challenge submission"
            )
        for key in SUPERVISION_LEVELS:
            level = options[key]
            if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 5:
                raise ValueError(
                    f"eval.submission.{key}={level!r}: the supervision levels are integers 0-5 "
                    "(see the EPIC-KITCHENS challenge guidelines)"
                )

    def submission(
        self, ids: Sequence[str], logits: Mapping[str, Tensor], options: Mapping[str, Any], top_actions: int = 100
    ) -> dict:
        """The action-recognition challenge JSON (version 0.2): per narration id the softmax scores of every verb
        and noun class, and the `top_actions` best "verb,noun" pairs by the product of the two."""
        self.check_submission(options)
        if len(set(ids)) != len(ids):
            raise ValueError("every narration id must appear once in a submission")
        p_noun, p_verb = logits["noun"].double().softmax(-1), logits["verb"].double().softmax(-1)
        results = {}
        for i, narration in enumerate(ids):
            joint = p_verb[i][:, None] * p_noun[i][None, :]  # (verbs, nouns)
            scores, flat = joint.flatten().topk(min(top_actions, joint.numel()))
            n_nouns = joint.shape[1]
            results[narration] = {
                "verb": {str(c): float(s) for c, s in enumerate(p_verb[i].tolist())},
                "noun": {str(c): float(s) for c, s in enumerate(p_noun[i].tolist())},
                "action": {f"{int(f) // n_nouns},{int(f) % n_nouns}": float(s) for s, f in zip(scores, flat)},
            }
        return {
            "version": "0.2",
            "challenge": "action_recognition",
            **{k: options[k] for k in SUPERVISION_LEVELS},
            "results": results,
        }


def read_class_column(path: Path, column: str) -> list[int]:
    """The class ids of one column of a class-list CSV (EPIC_100_tail_verbs.csv: `verb`)."""
    with Path(path).open(newline="", encoding="utf-8") as f:
        return [int(row[column]) for row in csv.DictReader(f)]

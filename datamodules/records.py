"""The record: one labelled clip of one video, the unit every index produces and every reader consumes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

Label = int | dict[str, int] | None
# an evaluation sample index (and a batch's "index"): an item that only evens out the ranks' batch counts (blank,
# unlabelled, dropped from every metric; vivit.datamodules.datamodule.PaddedDistributedSampler)
PADDING = -1
VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v")  # what counts as a video file, any case


@dataclass(frozen=True)
class VideoRecord:
    """One sample of a dataset.

    `path` is a video file or, for frame dumps, a folder of images named by `frame_template`.
    The clip span is optional: `start`/`end` are seconds for video files and inclusive frame numbers
    (as in the file names) for frame folders. `fps` overrides the rate at which frame indices are
    counted (the stream's average rate for videos; required to relate seconds to frame folders).
    `label` is a class index, a mapping head -> class index (e.g. EPIC verb/noun), or None when
    the split is unlabelled.
    """

    path: Path
    label: Label
    id: str
    start: float | int | None = None
    end: float | int | None = None
    fps: float | None = None
    frame_template: str | None = None  # e.g. "frame_{:010d}.jpg"; set => `path` is a frame folder
    first_index: int = 1  # number of the first file in a frame folder (EPIC dumps start at 1)

    @property
    def is_frame_folder(self) -> bool:
        return self.frame_template is not None

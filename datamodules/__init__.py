"""Video data: annotation files -> records -> frame indices -> decoded frames -> clips -> batches.

The repository's datamodules/ folder, imported as `vivit.datamodules` (installed there by the wheel; in a clone
through the link vivit/datamodules).

May import: vivit.common.
"""

from .datamodule import VideoDataModule, VideoDataset, VideoIndex
from .folder import FolderVideos
from .reader import VideoInfo, VideoReadError, probe, read_frames
from .records import VideoRecord
from .synthetic import SyntheticVideos

__all__ = [
    "VideoDataModule",
    "VideoDataset",
    "VideoIndex",
    "FolderVideos",
    "SyntheticVideos",
    "VideoRecord",
    "VideoInfo",
    "VideoReadError",
    "probe",
    "read_frames",
]

"""Which frames to read: scenic's temporal sampling (DMVR `sample_sequence`, `repeat_sequence=True`).

All functions take the clip length `length` (frames) and return frame indices in [0, length); a clip that
runs past the end wraps around to the start, as scenic does for videos shorter than the sample.
"""

from __future__ import annotations

import numpy as np
import torch


def clip_indices(offset: int, length: int, num_frames: int, stride: int) -> np.ndarray:
    """`num_frames` indices from `offset` every `stride` frames, wrapping past the end."""
    return (offset + stride * np.arange(num_frames)) % length


def train_indices(length: int, num_frames: int, stride: int, generator: torch.Generator | None = None) -> np.ndarray:
    """Random clip: offset ~ U[0, max(L - (n-1)*s, 1))."""
    high = max(length - (num_frames - 1) * stride, 1)
    offset = int(torch.randint(high, (1,), generator=generator))
    return clip_indices(offset, length, num_frames, stride)


def centre_indices(length: int, num_frames: int, stride: int) -> np.ndarray:
    """Central clip: offset (L - n*s) // 2, at least 0 (scenic's validation clip)."""
    return clip_indices(max((length - num_frames * stride) // 2, 0), length, num_frames, stride)


def linspaced_indices(length: int, num_frames: int, stride: int, num_clips: int) -> list[np.ndarray]:
    """`num_clips` clips at offsets linspace(0, max(0, L - n*s), num_clips), truncated to integers; one clip is
    the centre clip (DMVR: linspace only when num_test_clips > 1; linspace(0, x, 1) would start at frame 0)."""
    if num_clips == 1:
        return [centre_indices(length, num_frames, stride)]
    offsets = np.linspace(0, max(0, length - num_frames * stride), num_clips).astype(np.int64)
    return [clip_indices(int(offset), length, num_frames, stride) for offset in offsets]


def parse_views(views: str | tuple[int, int] | list[int]) -> tuple[int, int]:
    """`"4x3"` -> (4 temporal clips, 3 spatial crops)."""
    if isinstance(views, str):
        parts = views.lower().split("x")
        if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
            clips, crops = int(parts[0]), int(parts[1])
        else:
            raise ValueError(f"test_views must look like '4x3' (temporal clips x spatial crops), got {views!r}")
    else:
        clips, crops = (int(v) for v in views)
    if clips < 1 or crops not in (1, 3):
        raise ValueError(f"test_views {views!r}: need >= 1 temporal clip and 1 or 3 spatial crops")
    return clips, crops

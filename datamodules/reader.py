"""Record -> uint8 frames. PyAV for video files, torchvision's JPEG decoder for frame folders.

Two steps so that the frame indices are chosen before anything is decoded:
`probe(record)` reads only container metadata (the clip length in frames and its rate), the
sampler picks indices in [0, num_frames), and `read_frames(record, indices)` decodes just those.

Indices count frames of the clip (the record's span, or the whole video) on a grid of `fps` frames per
second: the record's `fps` override, or the stream's average rate. Each wanted index is mapped to a
timestamp and then to the decoded frame showing at that time (by pts), which also handles variable
frame rates.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter
from torchvision.io import ImageReadMode, decode_jpeg, read_file
from torchvision.transforms.v2 import functional as F

from .records import VideoRecord



class VideoReadError(RuntimeError):
    """A video (or frame folder) is missing, unreadable, truncated or empty."""


# What an unreadable video raises: the reader's own checks, and PyAV's errors while demuxing or decoding.
# Anything else (a bug in a transform, a wrong config) is not a bad video and must keep its traceback.
READ_ERRORS = (VideoReadError, av.FFmpegError)


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int  # length of the clip (the record's span) in frames at `fps`
    fps: float  # 0.0 for frame folders without an fps


def short_side_size(height: int, width: int, short_side: int | None) -> tuple[int, int]:
    """(height, width) with the shorter side resized to `short_side`, keeping the aspect ratio."""
    if short_side is None or min(height, width) == short_side:
        return height, width
    if height <= width:
        return short_side, max(1, round(width * short_side / height))
    return max(1, round(height * short_side / width)), short_side


# --------------------------------------------------------------------------------------- video files


def _open(path: Path):
    if not path.is_file():
        raise VideoReadError(f"video file not found: {path}")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
        raise VideoReadError(f"cannot open video {path}: {e}") from e


def _video_stream(container, path: Path):
    if not container.streams.video:
        raise VideoReadError(f"no video stream in {path}")
    stream = container.streams.video[0]
    # Frame threading costs more than it saves on tiny clips (measured: 15% slower on 32 px clips) and
    # halves full decoding time of 340x256 video on 2 cores.
    small = stream.codec_context.width * stream.codec_context.height <= 320 * 240
    stream.thread_type = "SLICE" if small else "AUTO"
    return stream


def _frame_rate(stream, record: VideoRecord, path: Path) -> Fraction:
    if record.fps:
        return Fraction(record.fps).limit_denominator(1_000_000)
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise VideoReadError(f"{path} reports no frame rate; give its records an fps")
    return Fraction(rate)


def _duration_seconds(stream, container) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def probe(record: VideoRecord) -> VideoInfo:
    """Length and rate of a record's clip from metadata (no decoding; packets are counted only when
    the container reports neither a frame count nor a duration)."""
    if record.is_frame_folder:
        return _probe_frame_folder(record)
    path = Path(record.path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        rate = _frame_rate(stream, record, path)
        if record.start is not None or record.end is not None:
            start = float(record.start or 0.0)
            end = float(record.end) if record.end is not None else _duration_seconds(stream, container)
            if end is None:
                raise VideoReadError(f"{path}: the clip has no end and the video reports no duration")
            num_frames = int(round((end - start) * rate))
        elif stream.frames and not record.fps:
            num_frames = stream.frames
        elif seconds := _duration_seconds(stream, container):
            num_frames = int(round(seconds * rate))  # webm/mkv often report 0 frames (PyAV#1131)
        else:
            num_frames = sum(1 for packet in container.demux(stream) if packet.size)  # demux only
    if num_frames <= 0:
        raise VideoReadError(f"empty video (0 frames): {path}")
    return VideoInfo(num_frames=num_frames, fps=float(rate))


def read_frames(record: VideoRecord, indices: Sequence[int], short_side: int | None = None) -> np.ndarray:
    """Decode the frames at `indices` (clip-relative; any order, repeats allowed).

    Returns uint8 (N, H, W, 3), upright, the shorter side resized to `short_side` by the decoder's scaler.
    """
    indices = [int(i) for i in indices]
    if not indices:
        raise ValueError("read_frames needs at least one index")
    if record.is_frame_folder:
        return _read_frame_folder(record, indices, short_side)
    path = Path(record.path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        rate = _frame_rate(stream, record, path)
        # Wanted index -> target pts on the clip's frame grid.
        start = stream.start_time or 0
        offset = Fraction(record.start or 0).limit_denominator(1_000_000)
        wanted = sorted(set(indices))
        target = {i: start + (offset + Fraction(i) / rate) / stream.time_base for i in wanted}
        # Tolerance for pts rounding: half a frame, of the stream's own rate when sampling a coarser grid.
        native = stream.average_rate or stream.guessed_rate or rate
        half_frame = 1 / (2 * max(rate, Fraction(native))) / stream.time_base
        chosen = _decode_until(container, stream, path, wanted, target, half_frame,
                               seek=target[wanted[0]] > start + half_frame)
        height, width = short_side_size(chosen[wanted[0]].height, chosen[wanted[0]].width, short_side)
        images, rotation = {}, chosen[wanted[0]].rotation
        scaler = VideoReformatter()  # one scaler context for the clip: 2x faster on small clips than per frame
        for frame in chosen.values():
            if id(frame) not in images:
                images[id(frame)] = scaler.reformat(frame, width, height, "rgb24").to_ndarray()
    frames = np.stack([images[id(chosen[i])] for i in indices])
    if rotation % 360:  # display matrix: rotate counterclockwise to upright, as players do
        frames = np.ascontiguousarray(np.rot90(frames, k=round(rotation / 90) % 4, axes=(1, 2)))
    return frames


def _decode_until(container, stream, path: Path, wanted: list[int], target: dict, half_frame, seek: bool) -> dict:
    """Decoded frame shown at each wanted target: the last frame whose pts is at most the target plus
    half a frame (so rounding in the time base never shifts a constant-rate frame, and variable-rate
    gaps repeat the frame on screen). Decoding stops after the last wanted frame."""
    if seek:
        # To the keyframe at or before the first wanted frame, in stream time base; flushes the decoder.
        container.seek(int(target[wanted[0]] - half_frame), backward=True, any_frame=False, stream=stream)
    chosen, pending, previous = {}, deque(wanted), None
    step = 2 * half_frame
    try:
        for frame in container.decode(stream):
            pts = frame.pts if frame.pts is not None else (int(previous.pts + step) if previous else 0)
            if previous is None and seek and pts > target[pending[0]] + half_frame:
                # The seek overshot (inaccurate index): decode again from the start.
                container.seek(stream.start_time or 0, backward=True, any_frame=False, stream=stream)
                return _decode_until(container, stream, path, wanted, target, half_frame, seek=False)
            while pending and pts > target[pending[0]] + half_frame:
                chosen[pending.popleft()] = previous if previous is not None else frame
            if not pending:
                break
            frame.pts = pts
            previous = frame
    except av.FFmpegError as e:
        raise VideoReadError(f"cannot decode {path}: {e}") from e
    if pending:
        if previous is None:
            raise VideoReadError(f"no frames decoded from {path} (empty or truncated)")
        # Headers may overstate the length by a frame or two: hold the last frame, as a player would.
        # Any further and the file is cut short.
        if target[pending[-1]] - previous.pts > 8 * half_frame:
            end = float(previous.pts * stream.time_base)
            wanted_end = float(target[pending[-1]] * stream.time_base)
            raise VideoReadError(f"{path} ends at {end:.2f} s, before the wanted {wanted_end:.2f} s (truncated?)")
        for i in pending:
            chosen[i] = previous
    return chosen


# ------------------------------------------------------------------------------------- frame folders


def _frame_folder_span(record: VideoRecord) -> tuple[int, int]:
    """(first file number, number of frames) of a frame-folder record."""
    folder = Path(record.path)
    if not folder.is_dir():
        raise VideoReadError(f"frame folder not found: {folder}")
    if record.start is not None and record.end is not None:
        start, end = int(record.start), int(record.end)
        return start, end - start + 1
    start = int(record.start) if record.start is not None else record.first_index
    count = 0
    while (folder / record.frame_template.format(start + count)).is_file():
        count += 1
    if count == 0:
        raise VideoReadError(f"no frames named {record.frame_template.format(start)} in {folder}")
    return start, count


def _probe_frame_folder(record: VideoRecord) -> VideoInfo:
    _, count = _frame_folder_span(record)
    return VideoInfo(num_frames=count, fps=float(record.fps or 0.0))


def _decode_jpeg_file(path: Path) -> torch.Tensor:
    try:
        return decode_jpeg(read_file(str(path)), mode=ImageReadMode.RGB)  # (3, H, W) uint8
    except (RuntimeError, OSError) as e:
        raise VideoReadError(f"cannot read frame {path}: {e}") from e


def _read_frame_folder(record: VideoRecord, indices: list[int], short_side: int | None) -> np.ndarray:
    start, count = _frame_folder_span(record)
    folder = Path(record.path)
    decoded: dict[int, torch.Tensor] = {}
    for i in sorted(set(indices)):
        if not 0 <= i < count:
            raise VideoReadError(f"frame {i} is outside the {count} frames of {folder}")
        image = _decode_jpeg_file(folder / record.frame_template.format(start + i))
        height, width = short_side_size(image.shape[-2], image.shape[-1], short_side)
        if (height, width) != tuple(image.shape[-2:]):
            image = F.resize(image, [height, width], antialias=True)
        decoded[i] = image
    return torch.stack([decoded[i] for i in indices]).permute(0, 2, 3, 1).numpy()

"""Record -> uint8 frames. PyAV (default) or torchcodec for video files, torchvision's JPEG decoder for frame folders.

Two steps so that the frame indices are chosen before anything is decoded:
`probe(record)` reads only container metadata (the clip length in frames and its rate), the
sampler picks indices in [0, num_frames), and `read_frames(record, indices)` decodes just those.

Indices count frames of the clip (the record's span, or the whole video). With a resampling rate (the
record's `fps`: `data.fps`, e.g. 25 for Kinetics as the paper, or EPIC's 60/50 annotation grid) index i is
the frame on screen at time i / fps from the clip's start (by pts). Without one, index i is the i-th
decoded frame from the clip's start, as DMVR and frame folders count: found from the packets' timestamps
(demux only), so variable-frame-rate files are counted frame by frame and seeking still works.

`decoder="torchcodec"` (`data.decoder`, the optional extra `pip install .[torchcodec]` with the system's FFmpeg
libraries) picks the same frames with torchcodec's exact seek mode: by index for counted frames, by time for a
resampling rate; frames are resized with torchvision (antialiased) instead of FFmpeg's scaler, so pixels differ
from PyAV's by the scalers' rounding, never by which frame. `decoder_device="cuda"` decodes with NVDEC.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

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
DECODERS = ("pyav", "torchcodec")


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
    stream.thread_type = thread_type(stream)
    return stream


def thread_type(stream) -> str:
    """Frame threading costs more than it saves on tiny clips (measured: 15% slower on 32 px clips) and halves full
    decoding time of 340x256 video on 2 cores."""
    small = stream.codec_context.width * stream.codec_context.height <= 320 * 240
    return "SLICE" if small else "AUTO"


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


def read_frames(
    record: VideoRecord,
    indices: Sequence[int],
    short_side: int | None = None,
    decoder: str = "pyav",
    device: str = "cpu",
) -> np.ndarray:
    """Decode the frames at `indices` (clip-relative; any order, repeats allowed) with `decoder` (pyav or
    torchcodec, on `device` for torchcodec).

    Returns uint8 (N, H, W, 3), upright, the shorter side resized to `short_side`.
    """
    indices = [int(i) for i in indices]
    if not indices:
        raise ValueError("read_frames needs at least one index")
    if record.is_frame_folder:
        return _read_frame_folder(record, indices, short_side)
    if decoder == "torchcodec":
        return _read_torchcodec(record, indices, short_side, device)
    path = Path(record.path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        rate = _frame_rate(stream, record, path)
        start = stream.start_time or 0
        offset = Fraction(record.start or 0).limit_denominator(1_000_000)
        wanted = sorted(set(indices))
        native = Fraction(stream.average_rate or stream.guessed_rate or rate)
        frame = 1 / native / stream.time_base  # one frame of the stream's own rate, in time-base units
        # pts rounding in the time base: a couple of ticks, never more than half a frame
        tolerance = min(frame / 2, max(Fraction(2), Fraction(1, 2000) / stream.time_base))
        if record.fps:  # resampling: index i is the frame on screen at i / fps from the clip's start
            target = {i: start + (offset + Fraction(i) / rate) / stream.time_base for i in wanted}
        else:  # index i is the i-th decoded frame from the clip's start (also on variable-frame-rate files)
            target = _counted_targets(container, stream, path, wanted, start + offset / stream.time_base - tolerance)
        seek = target[wanted[0]] > start + tolerance
        if not record.fps and not seek:  # demuxing read to the end: back to the start
            container.seek(start, backward=True, any_frame=False, stream=stream)
        chosen = _decode_until(container, stream, path, wanted, target, tolerance, frame, seek=seek)
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


def _counted_targets(container, stream, path: Path, wanted: list[int], clip_start) -> dict:
    """pts of the i-th frame from `clip_start` for each wanted i, from the packets' timestamps (demuxing reads
    no pixels): exact on variable-frame-rate files, and the decoder can still seek to the first one."""
    try:
        pts = sorted(p.pts for p in container.demux(stream) if p.size and p.pts is not None)
    except av.FFmpegError as e:
        raise VideoReadError(f"cannot demux {path}: {e}") from e
    pts = [p for p in pts if p >= clip_start]
    if not pts:
        raise VideoReadError(f"no frames in {path} after {float(clip_start * stream.time_base):.2f} s")
    if wanted[-1] >= len(pts) + 2:  # headers may overstate a length by a frame or two, no more
        raise VideoReadError(
            f"{path} has {len(pts)} frames from the clip's start, frame {wanted[-1]} was wanted (truncated?)"
        )
    return {i: Fraction(pts[min(i, len(pts) - 1)]) for i in wanted}


def _decode_until(
    container, stream, path: Path, wanted: list[int], target: dict, tolerance, frame_step, seek: bool
) -> dict:
    """Decoded frame shown at each wanted target: the last frame whose pts is at most the target plus
    `tolerance` (pts rounding in the time base; variable-rate gaps repeat the frame on screen). Decoding
    stops after the last wanted frame."""
    half_frame = tolerance
    if seek:
        # To the keyframe at or before the first wanted frame, in stream time base; flushes the decoder.
        container.seek(int(target[wanted[0]] - half_frame), backward=True, any_frame=False, stream=stream)
    chosen, pending, previous = {}, deque(wanted), None
    step = frame_step
    try:
        for frame in container.decode(stream):
            pts = frame.pts if frame.pts is not None else (int(previous.pts + step) if previous else 0)
            if previous is None and seek and pts > target[pending[0]] + half_frame:
                # The seek overshot (inaccurate index): decode again from the start.
                container.seek(stream.start_time or 0, backward=True, any_frame=False, stream=stream)
                return _decode_until(container, stream, path, wanted, target, tolerance, frame_step, seek=False)
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
        if target[pending[-1]] - previous.pts > 4 * frame_step:
            end = float(previous.pts * stream.time_base)
            wanted_end = float(target[pending[-1]] * stream.time_base)
            raise VideoReadError(f"{path} ends at {end:.2f} s, before the wanted {wanted_end:.2f} s (truncated?)")
        for i in pending:
            chosen[i] = previous
    return chosen


# ----------------------------------------------------------------------------------------- torchcodec


def torchcodec_decoder(source: str | bytes, device: str = "cpu"):
    """A torchcodec VideoDecoder (exact seek mode: frame indices from a scan of the file), NHWC uint8."""
    try:
        from torchcodec.decoders import VideoDecoder  # optional: pip install .[torchcodec] (+ FFmpeg libraries)
    except ImportError as e:  # also torchcodec's own error when the FFmpeg libraries are missing
        raise ImportError(
            f"data.decoder=torchcodec needs torchcodec and the FFmpeg libraries: pip install .[torchcodec] and "
            f"apt-get install libavcodec59 libavformat59 libavutil57 libswscale6 ({e})"
        ) from e
    try:
        # FFmpeg's own thread count, as the PyAV reader's frame threading
        return VideoDecoder(source, dimension_order="NHWC", seek_mode="exact", device=device, num_ffmpeg_threads=0)
    except (RuntimeError, ValueError) as e:  # torchcodec's errors on a file it cannot open
        raise VideoReadError(f"cannot open video {source if isinstance(source, str) else '(bytes)'}: {e}") from e


def torchcodec_frames_at(source: str | bytes, indices: Sequence[int], device: str = "cpu") -> np.ndarray:
    """uint8 (N, H, W, 3) decoded frames number `indices` of a file or of bytes (torchcodec)."""
    decoder = torchcodec_decoder(source, device)
    count = decoder.metadata.num_frames or 0
    try:
        wanted = sorted(set(indices))
        if count and wanted[-1] >= count:
            raise VideoReadError(f"frame {wanted[-1]} is outside the {count} frames of the video")
        frames = decoder.get_frames_at(wanted).data.cpu()
    except RuntimeError as e:
        raise VideoReadError(f"cannot decode: {e}") from e
    position = {i: k for k, i in enumerate(wanted)}
    return frames[[position[i] for i in indices]].numpy()


def _read_torchcodec(record: VideoRecord, indices: list[int], short_side: int | None, device: str) -> np.ndarray:
    """The frames `read_frames` picks, decoded by torchcodec (see the module doc)."""
    path = Path(record.path)
    if not path.is_file():
        raise VideoReadError(f"video file not found: {path}")
    decoder = torchcodec_decoder(str(path), device)
    metadata = decoder.metadata
    try:
        if record.fps:  # the frame on screen at start + i / fps (half a millisecond for rounding, as PyAV's reader)
            begin = metadata.begin_stream_seconds or 0.0
            last = (metadata.end_stream_seconds or float("inf")) - 1e-6
            times = [min(begin + float(record.start or 0) + i / record.fps + 5e-4, last) for i in indices]
            frames = decoder.get_frames_played_at(times).data.cpu()
        else:  # the i-th decoded frame from the clip's start
            first = _first_frame_index(record, path) if record.start else 0
            count = metadata.num_frames
            if count is None or count <= first:
                raise VideoReadError(f"no frames in {path} after {float(record.start or 0):.2f} s")
            if first + max(indices) >= count + 2:  # headers may overstate a length by a frame or two, no more
                raise VideoReadError(f"{path} has {count - first} frames from the clip's start (truncated?)")
            numbers = [min(first + i, count - 1) for i in indices]
            wanted = sorted(set(numbers))
            batch = decoder.get_frames_at(wanted).data.cpu()
            frames = batch[[wanted.index(n) for n in numbers]]
    except RuntimeError as e:
        raise VideoReadError(f"cannot decode {path}: {e}") from e
    height, width = short_side_size(frames.shape[1], frames.shape[2], short_side)
    if (height, width) != tuple(frames.shape[1:3]):
        frames = F.resize(frames.permute(0, 3, 1, 2), [height, width], antialias=True).permute(0, 2, 3, 1)
    return frames.numpy()


def _first_frame_index(record: VideoRecord, path: Path) -> int:
    """Number of frames before the clip's start (from the packets' timestamps, as PyAV's reader counts)."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        start = (stream.start_time or 0) + Fraction(record.start).limit_denominator(1_000_000) / stream.time_base
        tolerance = Fraction(1, 2000) / stream.time_base
        try:
            return sum(1 for p in container.demux(stream) if p.size and p.pts is not None and p.pts < start - tolerance)
        except av.FFmpegError as e:
            raise VideoReadError(f"cannot demux {path}: {e}") from e


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

"""Re-encode a release for fast loading.

    python -m vivit.datamodules.prepare SRC DST --short-side 256 [--workers N] [--gop 16]

Videos downloaded from YouTube (Kinetics, MiT) carry a keyframe only every ~250 frames, so reading a clip
from the middle means decoding from a keyframe seconds earlier; and they are often larger than the 256 px the
models read. This tool writes a copy of the release under DST with the same folder layout and file names:

- every video re-encoded with libx264 (yuv420p) at `--short-side` (never upscaled), a keyframe every `--gop`
  frames (no scene-cut keyframes), the original timestamps (variable frame rates stay variable) and display
  rotation, no audio. Containers that cannot hold H.264 (.webm, .avi) become .mp4 of the same name; the
  indexes find videos by name whatever the suffix. Frame-accurate reading is unchanged: the same timestamps
  show the same pictures, only resized;
- annotation files (.csv .json .txt .md .pkl) copied as they are; other files (frame dumps, archives) skipped;
- in parallel (`--workers` processes, one encoder thread each), with a progress bar;
- resumable: each video is written to a temporary name and renamed when complete, so an existing output is
  always complete and is skipped; a rerun redoes only what is missing (and retries what failed).

Videos that cannot be decoded are listed in DST/prepare_failures.txt and the exit status is 1.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from .reader import short_side_size
from .records import VIDEO_SUFFIXES

ANNOTATION_SUFFIXES = (".csv", ".json", ".txt", ".md", ".pkl")
H264_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}  # others become .mp4
PARTIAL = ".partial-"


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path
    short_side: int
    gop: int
    crf: int
    preset: str


def output_name(relative: Path) -> Path:
    """Same name; .webm/.avi (no H.264 inside) -> .mp4. Case is kept (EPIC's .MP4)."""
    return relative if relative.suffix.lower() in H264_CONTAINERS else relative.with_suffix(".mp4")


def even(x: int) -> int:
    return max(2, x - x % 2)


def plan(src: Path, dst: Path) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]], int]:
    """(videos, annotation files, number of other files) under `src`, each paired with its output path."""
    videos, annotations, other = [], [], 0
    for folder, dirs, files in os.walk(src):
        folder = Path(folder)
        if folder == dst or dst in folder.parents:
            dirs[:] = []
            continue
        dirs.sort()
        for name in sorted(files):
            path = folder / name
            relative = path.relative_to(src)
            suffix = path.suffix.lower()
            if suffix in VIDEO_SUFFIXES:
                videos.append((path, dst / output_name(relative)))
            elif suffix in ANNOTATION_SUFFIXES:
                annotations.append((path, dst / relative))
            else:
                other += 1
    return videos, annotations, other


# What a video that cannot be re-encoded raises: PyAV's errors while demuxing, decoding or encoding, and the checks
# of `_encode` (no video stream, no frame). Anything else (a bug, a full disk) stops the run with its traceback.
UNENCODABLE = (av.FFmpegError, ValueError)


def reencode(job: Job) -> tuple[str, str]:
    """Re-encode one video; returns (status, message) with status "done", or "failed" for a video that cannot be
    re-encoded (it is reported and the other videos go on)."""
    tmp = job.dst.with_name(f".{job.dst.stem}{PARTIAL}{os.getpid()}{job.dst.suffix}")
    try:
        job.dst.parent.mkdir(parents=True, exist_ok=True)
        _encode(job, tmp)
        os.replace(tmp, job.dst)  # atomic: an output that exists is complete
        return "done", str(job.dst)
    except UNENCODABLE as e:
        return "failed", f"{job.src}: {type(e).__name__}: {e}"
    finally:
        tmp.unlink(missing_ok=True)  # a partial file, whatever stopped it (after os.replace there is none)


def _encode(job: Job, tmp: Path) -> None:
    with av.open(str(job.src), metadata_errors="ignore") as source:
        if not source.streams.video:
            raise ValueError("no video stream")
        stream = source.streams.video[0]
        stream.thread_type = "AUTO"
        codec = stream.codec_context
        height, width = codec.height, codec.width
        if min(height, width) > job.short_side:
            height, width = short_side_size(height, width, job.short_side)
        height, width = even(height), even(width)
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        with av.open(str(tmp), "w", format=H264_CONTAINERS.get(job.dst.suffix.lower(), "mp4")) as target:
            out = target.add_stream("libx264", rate=rate)
            out.width, out.height, out.pix_fmt = width, height, "yuv420p"
            out.time_base = stream.time_base  # keep the source timestamps exactly
            out.options = {
                "crf": str(job.crf),
                "preset": job.preset,
                "threads": "1",
                "g": str(job.gop),
                "keyint_min": str(job.gop),
                "sc_threshold": "0",
                "x264-params": f"keyint={job.gop}:min-keyint={job.gop}:scenecut=0",
            }
            last_pts, step, count = None, _frame_step(stream, rate), 0
            for frame in source.decode(stream):
                if count == 0 and frame.rotation:
                    out.set_display_rotation(frame.rotation)  # before the header is written
                pts = frame.pts
                if pts is None or (last_pts is not None and pts <= last_pts):
                    pts = (last_pts + step) if last_pts is not None else 0  # keep timestamps increasing
                picture = frame.reformat(width, height, "yuv420p")
                picture.pts, picture.time_base = pts, stream.time_base
                target.mux(out.encode(picture))
                last_pts, count = pts, count + 1
            if count == 0:
                raise ValueError("no frames decoded")
            target.mux(out.encode(None))


def _frame_step(stream, rate: Fraction) -> int:
    return max(1, round(1 / (rate * stream.time_base))) if stream.time_base else 1


def remove_partials(dst: Path) -> int:
    """Temporary files left by an interrupted run."""
    removed = 0
    for path in dst.rglob(f".*{PARTIAL}*"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def copy_annotations(pairs: list[tuple[Path, Path]]) -> int:
    copied = 0
    for src, dst in pairs:
        if dst.is_file() and dst.stat().st_size == src.stat().st_size and dst.stat().st_mtime >= src.stat().st_mtime:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        copied += 1
    return copied


def prepare(
    src: Path,
    dst: Path,
    short_side: int = 256,
    gop: int = 16,
    workers: int = 1,
    crf: int = 23,
    preset: str = "fast",
    progress: bool = True,
) -> dict[str, int | list[str]]:
    """Re-encode every video of `src` into `dst` (see module docstring); returns counts and failures."""
    src, dst = Path(src).resolve(), Path(dst).resolve()
    if not src.is_dir():
        raise FileNotFoundError(f"source folder not found: {src}")
    if src == dst:
        raise ValueError("DST must differ from SRC (the release is never modified)")
    dst.mkdir(parents=True, exist_ok=True)
    remove_partials(dst)
    videos, annotations, other = plan(src, dst)
    todo = [Job(s, d, short_side, gop, crf, preset) for s, d in videos if not d.is_file()]
    copied = copy_annotations(annotations)
    failures: list[str] = []
    done = 0
    with _progress(len(todo), progress) as advance:
        if workers > 1 and len(todo) > 1:
            with multiprocessing.get_context().Pool(workers) as pool:
                results = pool.imap_unordered(reencode, todo, chunksize=4)
                for status, message in results:
                    done, failures = _count(status, message, done, failures)
                    advance()
        else:
            for job in todo:
                done, failures = _count(*reencode(job), done, failures)
                advance()
    report = dst / "prepare_failures.txt"
    if failures:
        report.write_text("\n".join(sorted(failures)) + "\n")
    else:
        report.unlink(missing_ok=True)
    return {
        "videos": len(videos),
        "encoded": done,
        "skipped": len(videos) - len(todo),
        "failed": len(failures),
        "annotations_copied": copied,
        "other_files": other,
        "failures": failures,
    }


def _count(status: str, message: str, done: int, failures: list[str]) -> tuple[int, list[str]]:
    if status == "done":
        return done + 1, failures
    return done, failures + [message]


class _progress:
    """A rich progress bar (or nothing) with an `advance()` callback."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.bar = total, enabled and total > 0, None

    def __enter__(self):
        if not self.enabled:
            return lambda: None
        self.bar = Progress("re-encoding", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=False)
        self.bar.start()
        task = self.bar.add_task("videos", total=self.total)
        return lambda: self.bar.advance(task)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vivit.datamodules.prepare",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("src", type=Path, help="the release as downloaded (e.g. /data/kinetics400)")
    parser.add_argument("dst", type=Path, help="where the re-encoded copy goes (same layout)")
    parser.add_argument("--short-side", type=int, default=256, help="shorter side in pixels (default 256)")
    parser.add_argument("--gop", type=int, default=16, help="a keyframe every N frames (default 16)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="encoding processes")
    parser.add_argument("--crf", type=int, default=23, help="libx264 quality, lower is better (default 23)")
    parser.add_argument("--preset", default="fast", help="libx264 speed preset (default fast)")
    args = parser.parse_args(argv)
    if args.short_side < 2 or args.gop < 1:
        parser.error("--short-side must be >= 2 and --gop >= 1")
    began = time.perf_counter()
    try:
        result = prepare(
            args.src,
            args.dst,
            args.short_side,
            args.gop,
            args.workers,
            args.crf,
            args.preset,
            progress=sys.stderr.isatty(),
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"{result['videos']} videos: {result['encoded']} re-encoded, {result['skipped']} already done, "
        f"{result['failed']} failed; {result['annotations_copied']} annotation files copied, "
        f"{result['other_files']} other files skipped; {time.perf_counter() - began:.1f} s"
    )
    if result["failed"]:
        print(f"unreadable videos are listed in {Path(args.dst) / 'prepare_failures.txt'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

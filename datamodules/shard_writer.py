"""Write the shards of a release (the format: `vivit.datamodules.shards`); the command is `python -m vivit.tasks.shard`.

Each record's clip is decoded once by the loose-file reader (its span, at the data config's rate `data.fps`, the
short side resized to `short_side`), then stored as an H.264 clip with a keyframe every `gop` frames
(media=video) or as JPEG frames (media=frames), beside a JSON member with its labels, id and source span.

- Plan: a split's records (the training split shuffled once with `shuffle_seed`: a shard then holds every class,
  and the reader's shuffle buffer mixes shards) cut into shards of `samples_per_shard`; shard j belongs to
  part j % parts, so the parts of a SLURM array write disjoint shards.
- Parallel: one process per shard (`workers`), a progress bar over the samples.
- Resumable: a shard is written to a temporary name and renamed when complete, then its index
  (`<shard>.json`: members, offsets, checksums, skipped videos) is written; a shard with its index is done and
  never redone. A killed run leaves at most temporary files, removed by the next run.
- Unreadable videos are skipped and listed (manifest and summary); they are the only records missing.
- The manifest and each split's sample table are written when every shard of every split is done, by whichever
  part finishes last (writing them twice gives the same files).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import multiprocessing
import os
import signal
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from torchvision.io import encode_jpeg

from vivit.common.files import write_atomically

from . import reader, shards
from .records import VideoRecord

log = logging.getLogger(__name__)
PARTIAL = ".partial-"


@dataclass(frozen=True)
class ShardJob:
    """One shard to write: its records (with their numbers in the split's plan) and how to store them."""

    out: Path
    split: str
    number: int
    records: tuple[tuple[int, VideoRecord], ...]
    media: str
    short_side: int
    gop: int
    crf: int
    jpeg_quality: int

    @property
    def name(self) -> str:
        return shards.shard_name(self.split, self.number)


# ------------------------------------------------------------------------------------------------- plan


def plan_split(records: Sequence[VideoRecord], split: str, samples_per_shard: int, shuffle_seed: int) -> list[list]:
    """The shards of a split: lists of (position in the split's plan, record)."""
    order = list(range(len(records)))
    if split == "train":
        order = [int(i) for i in np.random.default_rng(shuffle_seed).permutation(len(records))]
    numbered = [(k, records[i]) for k, i in enumerate(order)]
    return [numbered[s : s + samples_per_shard] for s in range(0, len(numbered), samples_per_shard)]


def is_done(out: Path, name: str) -> bool:
    index = out / f"{name}.json"
    if not index.is_file() or not (out / name).is_file():
        return False
    try:
        return json.loads(index.read_text())["bytes"] == (out / name).stat().st_size
    except (ValueError, KeyError, OSError):
        return False  # a damaged index: the shard is written again


# ---------------------------------------------------------------------------------------------- members


def encode_video(frames: np.ndarray, rate: Fraction, gop: int, crf: int) -> bytes:
    """H.264 (yuv420p) in MP4, frame i at pts i, a keyframe every `gop` frames (no scene cuts). yuv420p needs an
    even size: an odd side is padded by repeating its last row or column, and the reader crops it off again."""
    pad = ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0))
    frames = np.pad(frames, pad, mode="edge") if any(p[1] for p in pad) else frames
    height, width = frames.shape[1:3]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = 1 / rate
        stream.codec_context.thread_count = 1  # one encoder thread: the same bytes in every process
        stream.options = {
            "crf": str(crf),
            "preset": "fast",
            "threads": "1",
            "g": str(gop),
            "keyint_min": str(gop),
            "sc_threshold": "0",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0",
        }
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts, frame.time_base = i, 1 / rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def encode_frames(frames: np.ndarray, quality: int) -> bytes:
    images = [encode_jpeg(torch.from_numpy(f).permute(2, 0, 1).contiguous(), quality=quality) for f in frames]
    return shards.pack_jpegs([bytes(image.numpy().tobytes()) for image in images])


def clip_rate(record: VideoRecord) -> Fraction:
    """The rate a stored clip plays at: the resampling rate, else the video's own (frame folders: 25 if unknown)."""
    if record.fps:
        return Fraction(record.fps).limit_denominator(1001)
    if record.is_frame_folder:
        return Fraction(25)
    return Fraction(reader.probe(record).fps).limit_denominator(1001) or Fraction(25)


def sample(record: VideoRecord, job: ShardJob) -> tuple[dict[str, Any], bytes]:
    """(JSON member, media member) of one record; raises one of `reader.READ_ERRORS` for an unreadable video."""
    info = reader.probe(record)
    frames = reader.read_frames(record, range(info.num_frames), job.short_side)
    if job.media == "video":
        media = encode_video(frames, clip_rate(record), job.gop, job.crf)
    else:
        media = encode_frames(frames, job.jpeg_quality)
    meta = {
        "id": record.id,
        "label": record.label,
        "path": str(record.path),
        "start": record.start,
        "end": record.end,
        "fps": record.fps,
        "num_frames": int(len(frames)),
        "height": int(frames.shape[1]),
        "width": int(frames.shape[2]),
    }
    return meta, media


# ------------------------------------------------------------------------------------------------ shard


def write_shard(job: ShardJob) -> dict[str, Any]:
    """Write one shard and its index (see the module doc); returns the index."""
    import webdataset  # optional: pip install .[shards]

    tmp = job.out / f".{job.name}{PARTIAL}{os.getpid()}"
    suffix = shards.MEDIA_SUFFIX[job.media]
    written, skipped = [], []
    try:
        with tmp.open("wb") as stream, webdataset.TarWriter(stream) as tar:
            for position, record in job.records:
                try:
                    meta, media = sample(record, job)
                except reader.READ_ERRORS as e:
                    skipped.append({"id": record.id, "path": str(record.path), "error": f"{type(e).__name__}: {e}"})
                    continue
                key = f"{position:09d}"
                tar.write({"__key__": key, "json": meta, suffix: media})
                written.append((key, meta, shards.checksum(media)))
        members = member_offsets(tmp, suffix)
        digest = hashlib.sha256()
        with tmp.open("rb") as f:
            for block in iter(lambda: f.read(2**20), b""):
                digest.update(block)
        size = tmp.stat().st_size
        os.replace(tmp, job.out / job.name)
    finally:
        tmp.unlink(missing_ok=True)
    index = {
        "name": job.name,
        "bytes": size,
        "sha256": digest.hexdigest(),
        "samples": [
            {**meta, "key": key, "offset": members[key][0], "size": members[key][1], "checksum": check}
            for key, meta, check in written
        ],
        "skipped": skipped,
    }
    publish(job.out / f"{job.name}.json", json.dumps(index))  # last: the shard is done
    return index


def publish(path: Path, text: str) -> None:
    """Write atomically, readable by everyone the umask allows (the temporary file is private: shards are shared)."""
    write_atomically(path, text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def member_offsets(path: Path, suffix: str) -> dict[str, tuple[int, int]]:
    """key -> (byte offset, size) of each media member's data in a tar file."""
    with tarfile.open(path) as tar:
        return {
            m.name.rsplit(".", 1)[0]: (m.offset_data, m.size) for m in tar.getmembers() if m.name.endswith("." + suffix)
        }


# --------------------------------------------------------------------------------------------- manifest


def write_manifest(out: Path, plans: Mapping[str, list[list]], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest and the sample tables, from the shards' indexes (every shard must be done)."""
    splits = {}
    for split, plan in plans.items():
        columns: dict[str, list] = {c: [] for c in shards.SAMPLE_COLUMNS}
        entry = {"samples": 0, "skipped": [], "shards": []}
        for number in range(len(plan)):
            index = json.loads((out / f"{shards.shard_name(split, number)}.json").read_text())
            entry["shards"].append(
                {
                    "name": index["name"],
                    "samples": len(index["samples"]),
                    "bytes": index["bytes"],
                    "sha256": index["sha256"],
                }
            )
            entry["skipped"] += index["skipped"]
            for member in index["samples"]:
                for column in shards.SAMPLE_COLUMNS:
                    columns[column].append(number if column == "shard" else member[column])
        entry["samples"] = len(columns["id"])
        publish(out / shards.samples_file(split), json.dumps(columns, separators=(",", ":")))
        splits[split] = entry
    manifest = {"format": shards.FORMAT, "version": shards.VERSION, **settings, "splits": splits}
    publish(out / shards.MANIFEST, json.dumps(manifest, indent=1))  # last: the shards are ready
    return manifest


# -------------------------------------------------------------------------------------------------- run


def write_shards(
    datamodule: Any,
    out: str | Path,
    splits: Sequence[str] = ("train", "val", "test"),
    media: str = "video",
    short_side: int | None = None,
    samples_per_shard: int = 256,
    gop: int = 16,
    crf: int = 23,
    jpeg_quality: int = 90,
    workers: int = 1,
    part: int = 0,
    parts: int = 1,
    shuffle_seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Write (or finish writing) the shards of `datamodule`'s release (see the module doc). Returns a summary:
    shards written, already done and left to other parts, samples, skipped videos, and the manifest when done."""
    if media not in shards.MEDIA:
        raise ValueError(f"shards.media must be one of {shards.MEDIA}, got {media!r}")
    if not 0 <= part < parts:
        raise ValueError(f"shards.part must be in [0, shards.parts={parts}), got {part}")
    if samples_per_shard < 1:
        raise ValueError(f"shards.samples_per_shard must be >= 1, got {samples_per_shard}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(f".*{PARTIAL}*"):  # left by a killed run
        stale.unlink(missing_ok=True)
    short_side = int(short_side or datamodule.min_resize)
    datamodule.prepare_data()  # the synthetic set is generated here; a release is checked
    plans = {split: plan_split(datamodule.records(split), split, samples_per_shard, shuffle_seed) for split in splits}
    jobs = [
        ShardJob(out, split, number, tuple(records), media, short_side, gop, crf, jpeg_quality)
        for split, plan in plans.items()
        for number, records in enumerate(plan)
        if number % parts == part
    ]
    todo = [job for job in jobs if not is_done(out, job.name)]
    skipped: list[dict] = []
    samples = 0
    with _progress(sum(len(job.records) for job in todo), progress) as advance:
        for index in _run(todo, workers):
            samples += len(index["samples"])
            skipped += index["skipped"]
            advance(len(index["samples"]) + len(index["skipped"]))
    summary: dict[str, Any] = {
        "out": str(out),
        "shards": sum(len(plan) for plan in plans.values()),
        "written": len(todo),
        "already_done": len(jobs) - len(todo),
        "other_parts": sum(len(plan) for plan in plans.values()) - len(jobs),
        "samples_written": samples,
        "skipped": skipped,
        "manifest": None,
    }
    all_done = all(is_done(out, shards.shard_name(s, n)) for s, plan in plans.items() for n in range(len(plan)))
    if all_done:
        settings = {
            "media": media,
            "short_side": short_side,
            "fps": datamodule.fps,
            "gop": gop if media == "video" else None,
            "classes": datamodule.index.classes,
            "combined_heads": datamodule.combined_heads,
            "source": {"index": type(datamodule.index).__name__, "root": str(datamodule.root)},
        }
        summary["manifest"] = str(out / shards.MANIFEST)
        manifest = write_manifest(out, plans, settings)
        summary["skipped"] = [s for entry in manifest["splits"].values() for s in entry["skipped"]]
    return summary


def _run(jobs: list[ShardJob], workers: int) -> Iterator[dict[str, Any]]:
    if workers > 1 and len(jobs) > 1:
        pool = multiprocessing.get_context().Pool(min(workers, len(jobs)), initializer=_default_signals)
        try:
            yield from pool.imap_unordered(write_shard, jobs)
            pool.close()  # the workers exit on their own: no SIGTERM, which a SLURM job's handler would swallow
        finally:
            pool.terminate()  # an error or Ctrl+C: stop the other shards (their partial files are removed next run)
            pool.join()
    else:
        for job in jobs:
            yield write_shard(job)


def _default_signals() -> None:
    """Pool workers die on SIGTERM, whatever handler the parent had (submitit's, under SLURM, ignores it)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class _progress:
    """A rich progress bar over the samples (or nothing), with an `advance(n)` callback."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.bar = total, enabled and total > 0, None

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        self.bar = Progress("writing shards", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        self.bar.start()
        task = self.bar.add_task("samples", total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

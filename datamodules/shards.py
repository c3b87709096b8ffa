"""Shards: a release as a few hundred large files, read as streams from a disk or an object store.

The format is WebDataset's (POSIX tar files whose members are `<key>.<ext>`; any WebDataset reader opens them),
plus a manifest that makes them random-access and checkable (written by `vivit.datamodules.shard_writer`):

    <root>/manifest.json                  format, media, short side, frame rate, classes, per split: shards with
                                          their sample count, size and sha256, and the videos skipped at writing
    <root>/<split>.samples.json           per sample (columns): id, label, source span, shard, byte offset and
                                          size of its media member, frame count, blake2b checksum of the media
    <root>/<split>-000000.tar ...         members `<key>.mp4` (media=video: H.264, a keyframe every `gop` frames)
                                          or `<key>.jpgs` (media=frames: JPEG frames), and `<key>.json` (labels,
                                          id, source path and span)

A sample holds one record's clip already resampled and resized: stored frame i is the frame the loose-file reader
returns at clip index i (`reader.read_frames(record, [i], short_side)`), so sampling, transforms and the test
views are the same as from the videos. Nothing read back runs code: JSON, tar, H.264 and JPEG only.

`root` is a folder or any fsspec URL (`s3://bucket/prefix` with s3fs: credentials and endpoint as boto3 finds
them, e.g. AWS_PROFILE, AWS_ENDPOINT_URL, or `data.storage_options`).

Reading (`ShardStream`, an IterableDataset): every epoch is planned from (seed, epoch, ranks, workers) alone.
Training: the shards in an order drawn from the epoch's seed, dealt to the (rank, worker) slots so that no two
slots share a shard (samples, when there are fewer shards than slots), every slot yielding the same number of
whole batches (a slot short of samples goes round its shards again), read sequentially through a shuffle buffer.
Evaluation: the split in manifest order, cut into contiguous per-rank ranges (every video once over the ranks,
ranks differing by one video at most, as with Lightning's `UnrepeatedDistributedSampler`), batches dealt to the
workers in turn so the loader's batches come out in order. A member that cannot be decoded, or whose checksum
differs, raises `VideoReadError` and is then handled like an unreadable video file (replaced in training,
valid=False in evaluation).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import av
import fsspec
import numpy as np
import torch
from av.video.reformatter import VideoReformatter
from torch.utils.data import IterableDataset, get_worker_info
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms.v2 import functional as F

from . import reader
from .reader import VideoReadError
from .records import VideoRecord

log = logging.getLogger(__name__)

FORMAT, VERSION = "vivit-shards", 1
MANIFEST = "manifest.json"
MEDIA = ("video", "frames")  # H.264 clip with dense keyframes, or its frames as JPEG
MEDIA_SUFFIX = {"video": "mp4", "frames": "jpgs"}
SAMPLE_COLUMNS = (
    *("id", "label", "path", "start", "end", "fps"),  # the record
    *("shard", "offset", "size", "checksum"),  # its media member
    *("num_frames", "height", "width"),  # its clip
)


def checksum(data: bytes) -> str:
    """The checksum of a media member (blake2b, 64 bits: fast, and a flipped bit never passes)."""
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def samples_file(split: str) -> str:
    return f"{split}.samples.json"


def shard_name(split: str, number: int) -> str:
    return f"{split}-{number:06d}.tar"


# ------------------------------------------------------------------------------------------------ media


def pack_jpegs(images: Sequence[bytes]) -> bytes:
    """media=frames: a little-endian uint32 count, the sizes, then the JPEG files, so one frame is found without
    decoding the others."""
    return struct.pack(f"<I{len(images)}I", len(images), *(len(b) for b in images)) + b"".join(images)


def unpack_jpeg(data: bytes, i: int) -> bytes:
    (count,) = struct.unpack_from("<I", data)
    if not 0 <= i < count:
        raise VideoReadError(f"frame {i} is outside the {count} frames of the member")
    sizes = struct.unpack_from(f"<{count}I", data, 4)
    start = 4 + 4 * count + sum(sizes[:i])
    if start + sizes[i] > len(data):
        raise VideoReadError("member is shorter than its frame table says (damaged)")
    return data[start : start + sizes[i]]


def decode_member(data: bytes, media: str, indices: Sequence[int], decoder: str = "pyav") -> np.ndarray:
    """uint8 (N, H, W, 3) frames at `indices` of a media member (stored frame i = clip index i)."""
    try:
        if media == "frames":
            wanted = sorted(set(indices))
            images = {
                i: decode_jpeg(torch.frombuffer(bytearray(unpack_jpeg(data, i)), dtype=torch.uint8), ImageReadMode.RGB)
                for i in wanted
            }
            return torch.stack([images[i] for i in indices]).permute(0, 2, 3, 1).numpy()
        if decoder == "torchcodec":
            return reader.torchcodec_frames_at(data, indices)
        return _decode_h264(data, indices)
    except (struct.error, RuntimeError, av.FFmpegError) as e:
        raise VideoReadError(f"cannot decode the member ({type(e).__name__}: {e})") from e


def _decode_h264(data: bytes, indices: Sequence[int]) -> np.ndarray:
    """Stored frames are numbered by their pts (0, 1, 2, ... in the stream's time base units of one frame): seek to
    the keyframe before the first wanted one, decode to the last."""
    indices = [int(i) for i in indices]
    wanted = sorted(set(indices))
    chosen = {}
    scaler = VideoReformatter()  # one scaler context for the clip, as the file reader
    with av.open(io.BytesIO(data), metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        stream.thread_type = reader.thread_type(stream)
        step = max(1, round(1 / (stream.average_rate * stream.time_base))) if stream.average_rate else 1
        if wanted[0] > 0:
            container.seek(wanted[0] * step, backward=True, any_frame=False, stream=stream)
        for frame in container.decode(stream):
            number = round(frame.pts / step)
            if number in wanted:
                chosen[number] = scaler.reformat(frame, frame.width, frame.height, "rgb24").to_ndarray()
            if number >= wanted[-1]:
                break
    missing = [i for i in wanted if i not in chosen]
    if missing:
        raise VideoReadError(f"frames {missing[:3]} are not in the member (truncated?)")
    return np.stack([chosen[i] for i in indices])


# ---------------------------------------------------------------------------------------------- storage


class Storage:
    """Files under a root folder or URL, opened through fsspec; one filesystem object per process (forked
    DataLoader workers make their own: an S3 client is not shared across a fork)."""

    def __init__(self, root: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.root = str(root).rstrip("/")
        self.options = dict(storage_options or {})
        self._fs, self._pid = None, None

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        if self._fs is None or self._pid != os.getpid():
            self._fs, _ = fsspec.core.url_to_fs(self.root, **self.options)
            self._pid = os.getpid()
        return self._fs

    def _path(self, name: str) -> str:
        return f"{self.fs._strip_protocol(self.root).rstrip('/')}/{name}"

    def read(self, name: str) -> bytes:
        return self.fs.cat_file(self._path(name))

    def read_range(self, name: str, start: int, size: int) -> bytes:
        return self.fs.cat_file(self._path(name), start=start, end=start + size)

    def open(self, name: str):
        """A sequential reader with read-ahead (one request per block on object stores)."""
        return self.fs.open(self._path(name), "rb", block_size=8 * 2**20, cache_type="readahead")


def read_json(storage: Storage, name: str, what: str) -> Any:
    try:
        return json.loads(storage.read(name))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{what} not found: {storage.root}/{name} (write shards with `python -m vivit.tasks.shard`; docs/data.md)"
        ) from None
    except ValueError as e:
        raise ValueError(f"{storage.root}/{name} is not valid JSON ({e}); write the shards again") from None


# ------------------------------------------------------------------------------------------------ index


@dataclass
class SplitSamples:
    """The samples of one split, in manifest order (columns, so that 240k samples load in a fraction of a second)."""

    records: list[VideoRecord]
    shard: np.ndarray
    offset: np.ndarray
    size: np.ndarray
    num_frames: np.ndarray
    height: np.ndarray
    width: np.ndarray
    checksums: list[str]
    shards: list[str] = field(default_factory=list)  # shard file names, by number


class ShardIndex:
    """The `VideoIndex` of a folder (or URL) of shards: classes and records from the manifest. `base` is the
    release's own index (the data config's `index`), asked for what only it knows: EPIC-KITCHENS' breakdown and
    challenge submission; its folder is never read for videos."""

    def __init__(self, root: str, base: Any = None, storage_options: Mapping[str, Any] | None = None) -> None:
        self.storage = Storage(root, storage_options)
        self.base = base
        self._manifest: dict | None = None
        self._splits: dict[str, SplitSamples] = {}

    def __getattr__(self, name: str) -> Any:  # evaluation hooks of the release (EPIC: evaluation_subsets, ...)
        base = self.__dict__.get("base")
        if base is None or name.startswith("_"):
            raise AttributeError(name)
        return getattr(base, name)

    @property
    def manifest(self) -> dict:
        if self._manifest is None:
            manifest = read_json(self.storage, MANIFEST, "shard manifest")
            if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
                raise ValueError(
                    f"{self.storage.root}/{MANIFEST}: not a {FORMAT} v{VERSION} manifest "
                    f"(format {manifest.get('format')!r}, version {manifest.get('version')!r}); write the shards again"
                )
            self._manifest = manifest
        return self._manifest

    def prepare(self) -> None:
        """Fail early, in one line, when the shards are not where data.root says."""
        _ = self.manifest

    @property
    def classes(self) -> list[str] | dict[str, list[str]]:
        return self.manifest["classes"]

    @property
    def combined_heads(self) -> dict[str, tuple[str, str]]:
        return {k: tuple(v) for k, v in (self.manifest.get("combined_heads") or {}).items()}

    @property
    def media(self) -> str:
        return self.manifest["media"]

    def records(self, split: str) -> list[VideoRecord]:
        return self.samples(split).records

    def samples(self, split: str) -> SplitSamples:
        if split not in self._splits:
            entry = self.manifest["splits"].get(split)
            if entry is None:
                raise ValueError(
                    f"the shards at {self.storage.root} have no {split} split (they hold "
                    f"{', '.join(self.manifest['splits'])}); write it with shards.splits=[{split}]"
                )
            columns = read_json(self.storage, samples_file(split), f"{split} samples of the shards")
            records = [
                VideoRecord(f"{entry['shards'][s]['name']}#{i}", label, id, start, end, fps)
                for i, (id, label, start, end, fps, s) in enumerate(
                    zip(*(columns[c] for c in ("id", "label", "start", "end", "fps", "shard")))
                )
            ]
            if len(records) != entry["samples"]:
                raise ValueError(
                    f"{self.storage.root}/{samples_file(split)}: {len(records)} samples, the manifest says "
                    f"{entry['samples']}; write the shards again"
                )
            self._splits[split] = SplitSamples(
                records,
                np.asarray(columns["shard"], np.int64),
                np.asarray(columns["offset"], np.int64),
                np.asarray(columns["size"], np.int64),
                np.asarray(columns["num_frames"], np.int64),
                np.asarray(columns["height"], np.int64),
                np.asarray(columns["width"], np.int64),
                list(columns["checksum"]),
                [s["name"] for s in entry["shards"]],
            )
        return self._splits[split]


class ShardSource:
    """What `VideoDataset` reads frames from in shards mode: `length(i)` from the manifest, `frames(i, indices)`
    from sample i's member (handed over by the stream when it read it in passing, else one ranged read)."""

    def __init__(self, index: ShardIndex, split: str, short_side: int, decoder: str = "pyav") -> None:
        self.index, self.split, self.short_side, self.decoder = index, split, short_side, decoder
        self.samples = index.samples(split)
        self.media = index.media
        self.prefetched: dict[int, bytes] = {}

    def length(self, i: int) -> int:
        return int(self.samples.num_frames[i])

    def member(self, i: int) -> bytes:
        data = self.prefetched.pop(i, None)
        if data is None:
            s = self.samples
            data = self.index.storage.read_range(s.shards[s.shard[i]], int(s.offset[i]), int(s.size[i]))
        if checksum(data) != self.samples.checksums[i]:
            raise VideoReadError(f"checksum mismatch: {self.samples.records[i].path} is damaged")
        return data

    def frames(self, i: int, indices: Sequence[int]) -> np.ndarray:
        frames = decode_member(self.member(i), self.media, [int(j) for j in indices], self.decoder)
        frames = frames[:, : self.samples.height[i], : self.samples.width[i]]  # H.264's even-size padding
        height, width = reader.short_side_size(frames.shape[1], frames.shape[2], self.short_side)
        if (height, width) != frames.shape[1:3]:
            video = torch.from_numpy(frames).permute(0, 3, 1, 2)
            frames = F.resize(video, [height, width], antialias=True).permute(0, 2, 3, 1).numpy()
        return frames


# ------------------------------------------------------------------------------------------------ plans


def even_ranges(total: int, parts: int) -> list[range]:
    """`total` consecutive items cut into `parts` ranges whose sizes differ by at most one."""
    return [range(p * total // parts, (p + 1) * total // parts) for p in range(parts)]


def eval_plan(total: int, rank: int, world: int, worker: int, workers: int, batch_size: int) -> list[int]:
    """Sample indices of one evaluation worker: the rank's contiguous range (every sample once over the ranks),
    cut into batches dealt to the workers in turn (the DataLoader then yields them in order)."""
    ranks = even_ranges(total, world)[rank]
    batches = [ranks[b : b + batch_size] for b in range(0, len(ranks), batch_size)]
    return [i for batch in batches[worker::workers] for i in batch]


def train_pieces(shard_sizes: Sequence[int], slots: int) -> list[range]:
    """Contiguous sample ranges to deal to the slots: the shards, or, with fewer shards than slots, each shard cut
    into pieces (so every slot gets samples of its own)."""
    starts = np.concatenate([[0], np.cumsum(shard_sizes)]).astype(int)
    cuts = max(1, -(-slots // max(1, len(shard_sizes))))
    pieces = []
    for s, size in enumerate(shard_sizes):
        for part in even_ranges(int(size), cuts):
            if len(part):
                pieces.append(range(starts[s] + part.start, starts[s] + part.stop))
    return pieces


def train_plan(
    shard_sizes: Sequence[int], epoch_seed: int, rank: int, world: int, worker: int, workers: int, batch_size: int
) -> list[int]:
    """Sample indices of one training worker for one epoch (order before the shuffle buffer)."""
    slots, slot = world * workers, rank * workers + worker
    pieces = train_pieces(shard_sizes, slots)
    order = np.random.default_rng(epoch_seed).permutation(len(pieces))
    mine = [pieces[p] for p in order[slot::slots]]
    quota = (sum(shard_sizes) // slots) // batch_size * batch_size
    stream = [i for piece in mine for i in piece]
    if not stream or quota == 0:
        return []
    return [stream[k % len(stream)] for k in range(quota)]  # a slot short of samples goes round its pieces again


# ------------------------------------------------------------------------------------------------ stream


class ShardStream(IterableDataset):
    """A split of shards as an IterableDataset (see the module doc). Items are made by `dataset` (a `VideoDataset`
    over `source`): the same sampling, transforms, per-item seeds and unreadable-video handling as loose files.
    `configure` (the data module, when it makes the loader) says the ranks, workers and batch size."""

    def __init__(self, dataset: Any, source: ShardSource, shuffle_buffer: int = 256) -> None:
        self.dataset, self.source, self.shuffle_buffer = dataset, source, int(shuffle_buffer)
        self.rank, self.world, self.workers, self.batch_size = 0, 1, 1, 1
        self.epoch = 0  # planning seed when no EpochSeeds sets the items' seed (outside a training run)

    def __getattr__(self, name: str) -> Any:  # records, frames, length, item_seed, ... of the VideoDataset
        dataset = self.__dict__.get("dataset")
        if dataset is None or name.startswith("_"):
            raise AttributeError(name)
        return getattr(dataset, name)

    def configure(self, rank: int, world: int, workers: int, batch_size: int) -> None:
        self.rank, self.world, self.workers, self.batch_size = rank, world, max(1, workers), batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def training(self) -> bool:
        return self.dataset.mode == "train"

    def plan(self, worker: int) -> list[int]:
        samples = self.source.samples
        if self.training:
            sizes = np.bincount(samples.shard, minlength=len(samples.shards))
            return train_plan(sizes, self.epoch_seed(), self.rank, self.world, worker, self.workers, self.batch_size)
        return eval_plan(len(samples.records), self.rank, self.world, worker, self.workers, self.batch_size)

    def epoch_seed(self) -> int:
        seed = self.dataset.item_seed.value  # (seed, epoch) of the run, set by EpochSeeds before each epoch
        return seed if seed >= 0 else self.epoch

    def __len__(self) -> int:
        return sum(len(self.plan(w)) for w in range(self.workers))

    def __iter__(self):
        info = get_worker_info()
        worker = info.id if info is not None else 0
        if info is not None and info.num_workers != self.workers:
            raise RuntimeError(f"the stream was planned for {self.workers} workers, the loader has {info.num_workers}")
        plan = self.plan(worker)
        members = self._read_in_order(plan)
        if not self.training:
            for i in members:
                yield self.dataset[i]
            return
        rng = np.random.default_rng([self.epoch_seed(), self.rank, worker])
        buffer: list[int] = []
        for i in members:
            buffer.append(i)
            if len(buffer) >= self.shuffle_buffer:
                yield self._take(buffer, rng)
        while buffer:
            yield self._take(buffer, rng)

    def _take(self, buffer: list[int], rng: np.random.Generator):
        k = int(rng.integers(len(buffer)))
        buffer[k], buffer[-1] = buffer[-1], buffer[k]
        return self.dataset[buffer.pop()]

    def _read_in_order(self, plan: list[int]):
        """Yields the plan's sample indices after reading each one's member sequentially (one open file per run of
        the same shard, read ahead in large blocks); a member that cannot be read is left to `ShardSource` (which
        reads it again and raises, so the item is handled as an unreadable video)."""
        samples, storage, run_file, run_shard = self.source.samples, self.source.index.storage, None, None
        try:
            for i in plan:
                shard = int(samples.shard[i])
                if shard != run_shard:
                    if run_file is not None:
                        run_file.close()
                    run_file, run_shard = storage.open(samples.shards[shard]), shard
                try:
                    run_file.seek(int(samples.offset[i]))
                    self.source.prefetched[i] = run_file.read(int(samples.size[i]))
                except OSError as e:
                    log.warning(
                        "cannot read sample %d of %s in sequence (%s); reading it alone", i, samples.shards[shard], e
                    )
                    run_file, run_shard = None, None
                yield i
        finally:
            if run_file is not None:
                run_file.close()

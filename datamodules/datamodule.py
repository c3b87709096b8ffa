"""`VideoDataModule`: index -> records -> frame indices -> decoded frames -> transformed clips -> batches.

Batches (the project contract):
    train: {"video": float (B, C, T, H, W), "label": long (B,) or {head: long (B,)}, "index": long (B,),
            "unreadable": long (B,) (unreadable videos replaced to make each item)}
    val:   the same plus "valid": bool (B,)
    test:  "video": float (B, V, C, T, H, W) with V = temporal clips x spatial crops (clip-major), + "valid"
Unlabelled records get label -1. A video that cannot be read (`reader.READ_ERRORS`) is logged and counted; in
training it is replaced by another random video, in evaluation it yields zeros and valid=False (so the
module counts it as wrong instead of dropping it). `on_error="raise"` makes it fatal instead. The module
counts them per split and pass from the batches (`unreadable`, `valid`), summed over DDP ranks.

Distributed: training uses Lightning's DistributedSampler (keep the Trainer's default
`use_distributed_sampler=True`); validation and test use Lightning's `UnrepeatedDistributedSampler`, so
every video is evaluated exactly once across ranks (ranks may then see different numbers of batches).

`format="shards"` reads the same items from shards (`vivit.datamodules.shards`, written by
`python -m vivit.tasks.shard`) under `root`, a folder or an object-store URL: each split is a `ShardStream` that
plans its ranks and workers itself (no sampler), with the same items, seeds and unreadable-video handling.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import lightning as L
import numpy as np
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset

from vivit.common.checks import check_choice

from . import reader, sampling
from .records import VideoRecord
from .shards import ShardIndex, ShardSource, ShardStream
from .transforms import EvalTransform, to_video, train_transform

log = logging.getLogger(__name__)
MODES = ("train", "val", "test")
ON_ERROR = ("warn", "raise")  # an unreadable video: log, count and replace it (or mark it invalid), or fail
FORMATS = ("files", "shards")  # the release's own files (videos, frame folders), or shards of them


class VideoIndex(Protocol):
    """What the datamodule needs from a dataset index (FolderVideos, SyntheticVideos, the real-dataset
    readers): class names (a list, or one list per head) and the records of each split. An optional
    `prepare()` (download/generate) runs once per node before `records` is called."""

    classes: list[str] | Mapping[str, list[str]]

    def records(self, split: str) -> list[VideoRecord]: ...


def index_num_classes(index: VideoIndex) -> int | dict[str, int]:
    classes = index.classes
    if isinstance(classes, Mapping):
        return {head: len(names) for head, names in classes.items()}
    return len(classes)


class VideoDataset(Dataset):
    """One split. `mode` picks sampling and transforms: train (random clip, augmentation), val (centre
    clip, centre crop), test (`views` = (temporal clips, spatial crops), all views in one item)."""

    def __init__(
        self,
        records: Sequence[VideoRecord],
        mode: str,
        num_frames: int,
        stride: int,
        short_side: int,
        transform: Callable,
        views: tuple[int, int] = (1, 1),
        heads: Sequence[str] | None = None,
        on_error: str = "warn",
        cache: list[np.ndarray | None] | None = None,
        source: Any = None,
        decoder: str = "pyav",
        decoder_device: str = "cpu",
    ) -> None:
        check_choice("mode", mode, MODES)
        check_choice("data.on_error", on_error, ON_ERROR)
        check_choice("data.decoder", decoder, reader.DECODERS)
        self.records, self.mode, self.num_frames, self.stride = list(records), mode, num_frames, stride
        self.short_side, self.transform, self.views = short_side, transform, views
        self.heads, self.on_error, self.cache = heads, on_error, cache
        self.source = source  # frames from elsewhere than the records' files: `length(i)`, `frames(i, indices)`
        self.decoder, self.decoder_device = decoder, decoder_device
        self.crop_size = getattr(transform, "crop_size", None)
        # >= 0: each item's random draws come from torch seeded with (item_seed, index), so a resumed run repeats
        # them whichever worker loads the item (set every epoch by vivit.training.seeding.EpochSeeds); -1: the worker's
        # own generator
        self.item_seed = multiprocessing.Value("q", -1)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        seed = self.item_seed.value
        if seed < 0:
            return self._item(i)
        with torch.random.fork_rng(devices=[]):  # leaves the process's generator (num_workers=0) as it was
            # the CPU generator only: the augmentation draws from it, and torch.manual_seed would also queue a lazy
            # CUDA/XPU/MTIA seeding call with a formatted stack trace per item (1/3 of the default run's time)
            torch.random.default_generator.manual_seed(_item_seed(seed, i))
            return self._item(i)

    def _item(self, i: int) -> dict[str, Any]:
        for attempt in range(10):
            try:
                video = self.load(i)
                return {
                    "video": video,
                    "label": self.label(self.records[i]),
                    "index": i,
                    **self._valid(True),
                    **({"unreadable": attempt} if self.mode == "train" else {}),
                }
            except reader.READ_ERRORS as e:
                if self.on_error == "raise":
                    raise
                log.warning("unreadable video %s (%s: %s)", self.records[i].path, type(e).__name__, e)
                if self.mode != "train":
                    return {
                        "video": self._blank(),
                        "label": self.label(self.records[i]),
                        "index": i,
                        **self._valid(False),
                    }
                i = int(torch.randint(len(self.records), ()))  # training: replace it by another video
        raise RuntimeError(
            f"10 videos in a row could not be read (last: {self.records[i].path}); "
            f"check the dataset (see the warnings above)"
        )

    def _valid(self, valid: bool) -> dict[str, bool]:
        return {} if self.mode == "train" else {"valid": valid}

    def label(self, record: VideoRecord) -> int | dict[str, int]:
        if self.heads is None:
            return -1 if record.label is None else int(record.label)
        return {head: -1 if record.label is None else int(record.label[head]) for head in self.heads}

    def frames(self, i: int, indices: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) frames at clip-relative `indices`, from the cache, the source (shards) or decoded."""
        if self.source is not None:
            return self.source.frames(i, indices)
        if self.cache is not None:
            clip = self.cache[i]
            if clip is None:
                raise reader.VideoReadError(f"{self.records[i].path} could not be decoded when caching")
            return clip[indices]
        return reader.read_frames(self.records[i], indices, self.short_side, self.decoder, self.decoder_device)

    def length(self, i: int) -> int:
        if self.source is not None:
            return self.source.length(i)
        if self.cache is not None and self.cache[i] is not None:
            return len(self.cache[i])
        return reader.probe(self.records[i]).num_frames

    def load(self, i: int) -> torch.Tensor:
        length = self.length(i)
        if self.mode == "train":
            return self.transform(
                to_video(self.frames(i, sampling.train_indices(length, self.num_frames, self.stride)))
            )
        if self.mode == "val":
            return self.transform(
                to_video(self.frames(i, sampling.centre_indices(length, self.num_frames, self.stride)))
            )[0]
        clips = sampling.linspaced_indices(length, self.num_frames, self.stride, self.views[0])
        frames = self.frames(i, np.concatenate(clips))  # one decoding pass for all temporal views
        views = [self.transform(to_video(part)) for part in np.split(frames, len(clips))]
        return torch.cat(views)  # (clips x crops, C, T, H, W), clip-major

    def _blank(self) -> torch.Tensor:
        shape = (3, self.num_frames, self.crop_size, self.crop_size)
        if self.mode == "test":
            shape = (self.views[0] * self.views[1],) + shape
        return torch.zeros(shape)


def _item_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def decode_all(records: Sequence[VideoRecord], short_side: int, on_error: str, name: str) -> list[np.ndarray | None]:
    """Every frame of every record, uint8, for `cache_decoded` (small datasets: epochs then cost no
    decoding). A video that fails is stored as None and reported when its item is loaded."""
    began, clips, tty = time.perf_counter(), [], sys.stderr.isatty()
    for n, record in enumerate(records):
        try:
            clips.append(reader.read_frames(record, range(reader.probe(record).num_frames), short_side))
        except reader.READ_ERRORS as e:
            if on_error == "raise":
                raise
            log.warning("unreadable video %s (%s: %s)", record.path, type(e).__name__, e)
            clips.append(None)
        if tty and (n % 64 == 0 or n + 1 == len(records)):
            print(f"\rdecoding {name} into memory: {n + 1}/{len(records)}", end="", file=sys.stderr, flush=True)
    megabytes = sum(c.nbytes for c in clips if c is not None) / 2**20
    print(
        f"{' ' if tty else ''}decoded {len(records)} {name} videos into memory ({megabytes:.0f} MB) in "
        f"{time.perf_counter() - began:.1f} s",
        file=sys.stderr,
    )
    return clips


class VideoDataModule(L.LightningDataModule):
    """Video classification data for any index (see `VideoIndex`).

    Args:
        index: dataset index object (e.g. `vivit.datamodules.synthetic.SyntheticVideos`,
            `vivit.datamodules.folder.FolderVideos`).
        num_classes: classes the model predicts (int, or head -> int); checked against the index; None = the
            index's count (a custom folder, MiT's moments_categories.txt).
        num_frames, stride: frames per clip and the step between them, in frames at `fps`, else in decoded frames.
        fps: resampling rate of video files (the paper samples Kinetics at 25 fps: 250 frames a 10 s clip);
            None counts each file's decoded frames (SSv2, as scenic: 32 frames at stride 1 of the video).
        crop_size: spatial size of the model input.
        min_resize: short side after decoding (scenic's `min_resize`); default `crop_size`, or
            `round(crop_size * resize_ratio)` when `resize_ratio` is given.
        resize_ratio: short side / crop size when `min_resize` is None, so a config can keep scenic's
            256/224 (Kinetics) or 288/256 (SSv2) for any model size.
        batch_size: clips per training/validation batch (per device under DDP).
        test_batch_size: videos per test batch (each holds all views); default batch_size // views, >= 1.
        test_views: "TxS" temporal clips x spatial crops (1 or 3), e.g. "4x3".
        scale_jitter: (low, high) factors for H and W, or None. hflip: random horizontal flip (turn off
            for datasets whose labels say left/right, e.g. SSv2). randaugment: {num_layers, magnitude} or
            None. colour_augment: DMVR colour jitter, then grayscale with probability `colour_drop` (scenic 0.1;
            the paper recipes 0: Table 7 lists none). randaugment_scenic_compat: scenic's Contrast and Cutout
            (`VideoRandAugment`).
        mean, std: normalisation of [0, 1] pixels; 0.5/0.5 gives [-1, 1] (scenic's zero_centering).
        on_error: "warn" (log, count, replace in training / valid=False in evaluation) or "raise".
        cache_decoded: decode every video once into memory (uint8) at setup; for small datasets.
        num_workers, pin_memory, persistent_workers: DataLoader settings.
        root: the dataset folder, recorded only (`self.root`): the release configs take `data.root=` on the
            command line and hand it to their index as `index.root: ${data.root}`. With `format="shards"`: the
            folder or URL (s3://bucket/prefix) of the shards.
        format: "files" (the release's videos or frame folders) or "shards" (`vivit.datamodules.shards`).
        decoder: "pyav" or "torchcodec" (video files and shard members); decoder_device: "cpu" or "cuda"
            (torchcodec's NVDEC; decodes in the main process, so num_workers=0).
        shuffle_buffer: shards: samples each training worker shuffles among (memory: this many members).
        storage_options: shards: fsspec options of the storage (e.g. {endpoint_url: ..., anon: true} for s3).
    """

    def __init__(
        self,
        index: VideoIndex,
        num_classes: int | Mapping[str, int] | None,
        num_frames: int,
        crop_size: int,
        stride: int = 1,
        min_resize: int | None = None,
        batch_size: int = 32,
        test_batch_size: int | None = None,
        test_views: str = "1x1",
        scale_jitter: Sequence[float] | None = (0.9, 1.33),
        hflip: bool = True,
        randaugment: Mapping[str, float] | None = None,
        colour_augment: bool = False,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
        on_error: str = "warn",
        cache_decoded: bool = False,
        num_workers: int = 0,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        resize_ratio: float | None = None,
        root: str | None = None,
        fps: float | None = None,
        colour_drop: float = 0.1,
        randaugment_scenic_compat: bool = False,
        format: str = "files",
        decoder: str = "pyav",
        decoder_device: str = "cpu",
        shuffle_buffer: int = 128,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        check_choice("data.format", format, FORMATS)
        check_choice("data.decoder", decoder, reader.DECODERS)
        check_choice("data.decoder_device", decoder_device, ("cpu", "cuda"))
        if decoder_device == "cuda" and (decoder != "torchcodec" or int(num_workers) > 0):
            raise ValueError(
                "data.decoder_device=cuda decodes with torchcodec in the main process (CUDA does not work in forked "
                "DataLoader workers): set data.decoder=torchcodec data.num_workers=0"
            )
        if format == "shards" and cache_decoded:
            raise ValueError("data.cache_decoded=true reads loose files; with data.format=shards set it to false")
        self.format, self.decoder, self.decoder_device = format, decoder, decoder_device
        self.shuffle_buffer = int(shuffle_buffer)
        self.fps = float(fps) if fps else None
        self.root = root
        # shards: the records, classes and frames come from the shards; the release's index answers the rest
        self.index = ShardIndex(str(root), index, storage_options) if format == "shards" else index
        self.num_classes = (
            None if num_classes is None else dict(num_classes) if isinstance(num_classes, Mapping) else int(num_classes)
        )
        self.num_frames, self.stride, self.crop_size = int(num_frames), int(stride), int(crop_size)
        self.min_resize = int(min_resize or round(self.crop_size * float(resize_ratio or 1.0)))
        if self.min_resize < self.crop_size:
            raise ValueError(f"data.min_resize ({self.min_resize}) must be >= data.crop_size ({self.crop_size})")
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.views = sampling.parse_views(test_views)
        self.test_batch_size = int(test_batch_size or max(1, self.batch_size // (self.views[0] * self.views[1])))
        check_choice("data.on_error", on_error, ON_ERROR)
        self.on_error, self.cache_decoded = on_error, cache_decoded
        self.pin_memory, self.persistent_workers = pin_memory, persistent_workers
        self.train_transform = train_transform(
            self.crop_size,
            tuple(scale_jitter) if scale_jitter else None,
            hflip,
            dict(randaugment) if randaugment else None,
            colour_augment,
            tuple(mean),
            tuple(std),
            float(colour_drop),
            bool(randaugment_scenic_compat),
        )
        self.val_transform = EvalTransform(self.crop_size, 1, tuple(mean), tuple(std))
        self.test_transform = EvalTransform(self.crop_size, self.views[1], tuple(mean), tuple(std))
        self.datasets: dict[str, VideoDataset] = {}

    # -- Lightning hooks ------------------------------------------------------------------------------

    def prepare_data(self) -> None:
        if hasattr(self.index, "prepare"):
            self.index.prepare()  # generate/verify once per node

    def setup(self, stage: str | None = None) -> None:
        self.check_num_classes()
        modes = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for mode in modes.get(stage, MODES):
            if mode not in self.datasets:
                self.datasets[mode] = self.build_dataset(mode)

    @property
    def combined_heads(self) -> dict[str, tuple[str, str]]:
        """Pairs of heads the dataset scores jointly (EPIC-KITCHENS: action = noun x verb), from its index."""
        return dict(getattr(self.index, "combined_heads", {}))

    def resolve_num_classes(self) -> int | dict[str, int]:
        """`num_classes`, taken from the index when it was not given (None)."""
        if self.num_classes is None:
            self.num_classes = index_num_classes(self.index)
        return self.num_classes

    def check_num_classes(self) -> None:
        found = index_num_classes(self.index)
        if self.resolve_num_classes() != found:
            describe = getattr(self.index, "describe_classes", lambda count: None)  # e.g. MiT's releases
            said, has = (f" ({describe(n)})" if describe(n) else "" for n in (self.num_classes, found))
            raise ValueError(
                f"data.num_classes is {self.num_classes}{said} but the dataset index ({type(self.index).__name__}) "
                f"has {found} classes{has}; set data.num_classes={found}"
            )

    def records(self, mode: str) -> list[VideoRecord]:
        """The records of a split as they are read: with the resampling rate `fps` on every video file."""
        records = self.index.records(mode)
        if self.fps:  # a resampling rate: every video file is sampled on a grid of `fps` frames per second
            records = [r if r.is_frame_folder else dataclasses.replace(r, fps=self.fps) for r in records]
        return records

    def build_dataset(self, mode: str) -> VideoDataset | ShardStream:
        if self.format == "shards":
            return self.build_stream(mode)
        records = self.records(mode)
        cache = decode_all(records, self.min_resize, self.on_error, mode) if self.cache_decoded else None
        return self._dataset(mode, records, cache=cache)

    def build_stream(self, mode: str) -> ShardStream:
        """A split of the shards: the manifest's records, frames from the shards' members."""
        manifest = self.index.manifest
        stored_fps = manifest.get("fps")
        if (stored_fps or None) != self.fps:
            raise ValueError(
                f"data.fps is {self.fps} but the shards at {self.root} were written at fps {stored_fps}: "
                f"set data.fps={stored_fps}, or write shards at this rate"
            )
        if manifest["short_side"] < self.min_resize:
            raise ValueError(
                f"data.min_resize ({self.min_resize}) is larger than the short side of the shards at {self.root} "
                f"({manifest['short_side']}): write shards with shards.short_side={self.min_resize} or more"
            )
        source = ShardSource(self.index, mode, self.min_resize, self.decoder)
        return ShardStream(self._dataset(mode, source.samples.records, source=source), source, self.shuffle_buffer)

    def _dataset(self, mode: str, records: Sequence[VideoRecord], **kwargs: Any) -> VideoDataset:
        transform = {"train": self.train_transform, "val": self.val_transform, "test": self.test_transform}[mode]
        heads = list(self.num_classes) if isinstance(self.num_classes, dict) else None
        return VideoDataset(
            records,
            mode,
            self.num_frames,
            self.stride,
            self.min_resize,
            transform,
            self.views,
            heads,
            self.on_error,
            decoder=self.decoder,
            decoder_device=self.decoder_device,
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        # Lightning swaps the sampler for a DistributedSampler under DDP (use_distributed_sampler=True).
        return self._loader("train", self.batch_size, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.test_batch_size)

    # -- helpers --------------------------------------------------------------------------------------

    def _loader(self, mode: str, batch_size: int, shuffle: bool = False, drop_last: bool = False) -> DataLoader:
        if mode not in self.datasets:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[mode])
        dataset = self.datasets[mode]
        sampler = None
        world_size, rank = self._distributed()
        if isinstance(dataset, ShardStream):  # plans its ranks and workers itself, in whole batches
            dataset.configure(rank, world_size, self.num_workers, batch_size)
            shuffle = drop_last = False
            # Lightning warns that an IterableDataset's length may be wrong with workers: this one's is exact
            warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")
        elif mode != "train" and world_size > 1:
            # Each video exactly once across ranks: no padding duplicates in the metrics.
            sampler = UnrepeatedDistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=False)
        if mode == "train" and len(dataset) < batch_size:
            drop_last = False  # a tiny dataset still yields one batch
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            sampler=sampler,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.persistent_workers and self.num_workers > 0,
        )

    def _distributed(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return trainer.world_size, trainer.global_rank

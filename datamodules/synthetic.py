"""The embedded dataset: short H.264 clips whose class can only be read from the order of their frames.

Four coloured discs flash one after another (each for a quarter of the clip) at random positions over a
random textured background. The class is which colour comes first (4) x the direction of the colour cycle
(2) = 8 classes. Every clip shows every colour for the same number of frames, so an unordered set of
frames carries no information about the class: a model has to use time.

Generated on first use under `root` as real .mp4 files plus `train.csv`, `val.csv`, `test.csv` and
`classes.txt` in the layout `data=folder` reads, so the whole decoding path is exercised. A manifest of
the generator's parameters makes later runs reuse the files, and regenerate when a parameter changes.

Several runs may start at once on a fresh machine (a sweep, two terminals, DDP ranks on several nodes sharing a
folder): generation holds a file lock next to `root` (`.<root name>.lock`), so one process generates and the
others wait for it and then reuse its files. The dataset is written to a temporary folder with the manifest
last and renamed into place, so a folder without a manifest (an interrupted older generator) is never taken for
a finished one: it is rebuilt when it holds only what the generator writes, and left alone otherwise.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import shutil
import signal
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from filelock import FileLock, Timeout

from .folder import FolderVideos
from .records import VideoRecord

VERSION = 1  # bump when the generator's output changes
COLOURS = {  # RGB; far apart in chroma so they survive 4:2:0 subsampling
    "red": (230, 40, 40),
    "green": (40, 210, 60),
    "blue": (40, 80, 240),
    "yellow": (235, 225, 40),
}
DIRECTIONS = ("forward", "backward")
CLASSES = [f"{colour}_{direction}" for colour in COLOURS for direction in DIRECTIONS]
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
# everything the generator writes under `root`: a folder holding only these names may be replaced
GENERATED = {*SPLIT_IDS, *(f"{split}.csv" for split in SPLIT_IDS), "classes.txt", "manifest.json"}


def colour_order(label: int) -> list[int]:
    """Colour indices in the order they flash for class `label` (= first colour * 2 + direction)."""
    first, backward = divmod(label, 2)
    step = -1 if backward else 1
    return [(first + step * k) % len(COLOURS) for k in range(len(COLOURS))]


def render_clip(label: int, rng: np.random.Generator, num_frames: int, size: int) -> np.ndarray:
    """uint8 (T, H, W, 3): a textured background with one disc per quarter of the clip."""
    # Background: smooth low-saturation texture (coarse noise upsampled) plus fine grain.
    coarse = rng.uniform(70, 170, size=(5, 5, 1)) + rng.uniform(-20, 20, size=(5, 5, 3))
    grid = np.linspace(0, 4, size)
    i0 = np.minimum(grid.astype(int), 3)
    frac = (grid - i0)[:, None]
    rows = coarse[i0] * (1 - frac[..., None]) + coarse[i0 + 1] * frac[..., None]  # (size, 5, 3)
    background = rows[:, i0] * (1 - frac.T[..., None]) + rows[:, i0 + 1] * frac.T[..., None]
    background = background + rng.normal(0, 8, size=(size, size, 3))

    frames = np.empty((num_frames, size, size, 3), dtype=np.float64)
    per_colour = num_frames // len(COLOURS)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    colours = np.array(list(COLOURS.values()), dtype=np.float64)
    for k, colour in enumerate(colour_order(label)):
        radius = rng.uniform(0.09, 0.14) * size  # >= 2.9 px at 32 px: chroma subsampling smears edges
        cy, cx = rng.uniform(radius + 1, size - radius - 1, size=2)
        alpha = np.clip(radius + 0.5 - np.hypot(yy - cy, xx - cx), 0, 1)[..., None]  # anti-aliased edge
        disc = background * (1 - alpha) + colours[colour] * alpha
        frames[k * per_colour : (k + 1) * per_colour] = disc
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def to_yuv420p(image: np.ndarray) -> av.VideoFrame:
    """uint8 (H, W, 3) RGB -> yuv420p frame (BT.601, limited range, the default for untagged video),
    converted here in exact float arithmetic, independent of the scaler's SIMD paths."""
    h, w = image.shape[:2]
    r, g, b = np.moveaxis(image.astype(np.float64), -1, 0)
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    r, g, b = (c.reshape(h // 2, 2, w // 2, 2).mean((1, 3)) for c in (r, g, b))  # 4:2:0: mean of 2x2 blocks
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    planes = [np.clip(np.rint(p), 0, 255).astype(np.uint8).reshape(-1) for p in (y, u, v)]
    return av.VideoFrame.from_ndarray(np.concatenate(planes).reshape(h * 3 // 2, w), format="yuv420p")


def write_mp4(path: Path, frames: np.ndarray, fps: int = 8, crf: int = 14) -> None:
    """H.264 (libx264, yuv420p) .mp4 of uint8 (T, H, W, 3) frames; H and W must be even."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # Note: this libx264 occasionally emits a different, equally good bitstream for the same input (seen
        # single-threaded, in one process; 0.1-5% of these tiny clips), so only the rendered frames and the
        # CSVs are bit-exact per seed; decoded frames then differ by about one grey level.
        stream.options = {"crf": str(crf), "preset": "medium", "threads": "1"}
        for i, image in enumerate(frames):
            frame = to_yuv420p(image)
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))  # flush, or the last frames are lost


def _generate_chunk(args: tuple) -> list[tuple[str, int]]:
    out_dir, split, start, stop, labels, seed, num_frames, size, fps, crf = args
    rows = []
    for i in range(start, stop):
        rng = np.random.default_rng([seed, SPLIT_IDS[split], i])
        name = f"{split}/{i:06d}.mp4"
        write_mp4(Path(out_dir) / name, render_clip(labels[i], rng, num_frames, size), fps, crf)
        rows.append((name, labels[i]))
    return rows


class SyntheticVideos(FolderVideos):
    """Index of the embedded dataset; generates it under `root` on first use (see module docstring)."""

    def __init__(
        self,
        root: str | Path,
        seed: int = 0,
        num_frames: int = 8,
        size: int = 32,
        num_train: int = 1024,
        num_val: int = 256,
        num_test: int = 256,
        fps: int = 8,
        crf: int = 14,
        workers: int = 2,
    ) -> None:
        super().__init__(root)
        if num_frames % len(COLOURS) or num_frames < len(COLOURS):
            raise ValueError(f"synthetic num_frames must be a multiple of {len(COLOURS)}, got {num_frames}")
        if size % 2 or size < 16:
            raise ValueError(f"synthetic size must be even and >= 16 (yuv420p), got {size}")
        self.params = {
            "version": VERSION,
            "seed": seed,
            "num_frames": num_frames,
            "size": size,
            "fps": fps,
            "crf": crf,
            "splits": {"train": num_train, "val": num_val, "test": num_test},
        }
        self.workers = workers

    @property
    def classes(self) -> list[str]:
        return list(CLASSES)

    @property
    def lock_path(self) -> Path:
        return self.root.with_name(f".{self.root.name}.lock")

    def prepare(self) -> None:
        """Generate the dataset unless `root` already holds one made with the same parameters; under a lock,
        so that of several processes starting at once one generates and the others wait and reuse it."""
        if self.is_current():
            return
        self.root.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.lock_path)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            print(
                f"waiting for another process to finish generating {self.root} (lock {self.lock_path})", file=sys.stderr
            )
            lock.acquire()
        try:
            if not self.is_current():  # the process we waited for may have made it
                self.generate()
        finally:
            lock.release()

    def is_current(self) -> bool:
        """`root` holds a finished dataset with these parameters: its manifest, every split's CSV and videos."""
        manifest = self.root / "manifest.json"
        try:
            if json.loads(manifest.read_text()) != self.params:
                return False
            return all(
                (self.root / f"{split}.csv").is_file() and len(os.listdir(self.root / split)) == count
                for split, count in self.params["splits"].items()
            )
        except (OSError, ValueError):
            return False

    def records(self, split: str) -> list[VideoRecord]:
        self.prepare()
        return super().records(split)

    def generate(self) -> None:
        """Write every split into a temporary folder next to `root`, then move it into place, so an
        interrupted generation is never mistaken for a finished one."""
        foreign = sorted(p.name for p in self.root.iterdir() if p.name not in GENERATED) if self.root.is_dir() else []
        if foreign and not (self.root / "manifest.json").is_file():
            raise FileExistsError(
                f"{self.root} exists and is not a synthetic dataset (no manifest.json, and it holds "
                f"{', '.join(foreign[:3])}); point data.root at an empty or new folder"
            )
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale_partials()
        tmp = self.root.with_name(f".{self.root.name}.partial-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        p = self.params
        chunks = []
        for split, count in p["splits"].items():
            (tmp / split).mkdir(parents=True)
            # Exactly balanced labels, in a seeded random order.
            labels = (
                np.random.default_rng([p["seed"], SPLIT_IDS[split], 1 << 20])
                .permutation(np.arange(count) % len(CLASSES))
                .tolist()
            )
            for start in range(0, count, 32):
                chunks.append(
                    (
                        str(tmp),
                        split,
                        start,
                        min(start + 32, count),
                        labels,
                        p["seed"],
                        p["num_frames"],
                        p["size"],
                        p["fps"],
                        p["crf"],
                    )
                )
        total, done, began = sum(p["splits"].values()), 0, time.perf_counter()
        tty = sys.stderr.isatty()
        print(f"generating {total} synthetic videos in {self.root}", end="" if tty else "\n", file=sys.stderr)
        rows: dict[str, list] = {split: [] for split in p["splits"]}
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        # the pool ends its workers with SIGTERM: they must not inherit a handler that ignores it (submitit's, in a
        # SLURM job, does), or leaving the block waits for them forever
        reset_sigterm = {"initializer": signal.signal, "initargs": (signal.SIGTERM, signal.SIG_DFL)}
        with ctx.Pool(max(1, self.workers), **reset_sigterm) as pool:
            for chunk, result in zip(chunks, pool.imap(_generate_chunk, chunks)):
                rows[chunk[1]].extend(result)
                done += len(result)
                if tty:
                    print(f"\rgenerating synthetic videos: {done}/{total}", end="", file=sys.stderr, flush=True)
        print(f"{' ' if tty else ''}done: {done} videos in {time.perf_counter() - began:.1f} s", file=sys.stderr)
        for split, split_rows in rows.items():
            with (tmp / f"{split}.csv").open("w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["path", "label"])
                writer.writerows((name, CLASSES[label]) for name, label in split_rows)
        (tmp / "classes.txt").write_text("\n".join(CLASSES) + "\n")
        (tmp / "manifest.json").write_text(json.dumps(self.params, indent=1))  # last: marks completion
        old = self.root.with_name(f".{self.root.name}.old-{os.getpid()}")
        if self.root.exists():  # renamed away first: `root` is the old dataset or the new one, never a mix
            os.replace(self.root, old)
        os.replace(tmp, self.root)
        shutil.rmtree(old, ignore_errors=True)

    def _remove_stale_partials(self) -> None:
        """Delete temporary folders left by generations whose process died."""
        for partial in [
            *self.root.parent.glob(f".{self.root.name}.partial-*"),
            *self.root.parent.glob(f".{self.root.name}.old-*"),
        ]:
            try:
                os.kill(int(partial.name.rsplit("-", 1)[1]), 0)  # still running: leave it alone
            except ProcessLookupError:
                shutil.rmtree(partial, ignore_errors=True)
            except (ValueError, PermissionError):
                pass

"""Data-loading throughput: this project's reader vs the naive way vs the ideal, on Kinetics-like videos.

    python benchmarks/bench_data.py                 # ~3 minutes on 2 cores; writes benchmarks/results/data_cpu.json
    python benchmarks/bench_data.py --index-rows 240000   # also time indexing a full-size Kinetics release

Videos (generated once, cached under --cache): 10 s, 25 fps, 340x256 H.264 with natural-ish content (a textured
scene panning and zooming slowly, moving blobs and sensor grain, so the encoder works as on real footage), in
two variants: libx264's default GOP (keyint 250 plus scene cuts, like YouTube downloads: ~1 keyframe per clip)
and dense keyframes (a keyframe every 16 frames, what `python -m vivit.datamodules.prepare` writes).

Clips: 32 frames at stride 2 from a random offset (train mode, scenic's sampling), short side 256.

Readers, each returning the same uint8 frames:
    ours    vivit.datamodules.reader.read_frames: seek to the keyframe before the first wanted frame, decode up to
            the last, convert only the wanted frames; index i is the i-th decoded frame, found from the
            packets' timestamps (a demuxing pass: what counts variable-frame-rate files frame by frame)
    ours fps=25  the same with a resampling rate (`data.fps`, 25 for Kinetics): index i is the frame on
            screen at i / 25 s, from the stream's rate and start time, no demuxing pass (on these 25 fps
            files both pick the same frames)
    naive   decode the whole video into RGB arrays, then pick the frames (HF ViViT's docstring reader)
    ideal   decode exactly from the preceding keyframe to the last wanted frame, converting only the wanted
            frames, with every frame's timestamp and the keyframe positions known in advance (untimed)

Measured (the readers take turns per clip, so load changes hit all alike):
    reader  clips/s (1 / median time per clip) of the reader alone in this process, readers taking turns
            clip by clip; "per CPU-s": clips per CPU-second of this process (all its threads), which other
            processes on a shared machine disturb less than wall time
    w=0     clips/s of a DataLoader over a train-mode VideoDataset (probe + read + scale jitter, crop, flip,
            normalise) in the main process; median of --rounds rounds in which the readers take turns
    w=N     the same with num_workers=N
Goal: ours >= 3x naive and within 1.5x of ideal. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from vivit.datamodules import VideoDataset, VideoRecord, reader  # noqa: E402
from vivit.datamodules.transforms import train_transform  # noqa: E402

SECONDS, FPS, WIDTH, HEIGHT = 10, 25, 340, 256
NUM_FRAMES, STRIDE, SHORT_SIDE, CROP = 32, 2, 256, 224


# ------------------------------------------------------------------------------------------------ videos


def render(rng: np.random.Generator, num_frames: int) -> np.ndarray:
    """uint8 (T, H, W, 3): a smooth textured scene seen by a slowly panning/zooming camera, three moving
    blobs, and per-frame grain."""
    big = 2 * max(WIDTH, HEIGHT)
    coarse = rng.uniform(0, 255, size=(big // 16, big // 16, 3))
    scene = np.kron(coarse, np.ones((16, 16, 1)))  # blocky, then smoothed by a box blur
    for axis in (0, 1):
        scene = (scene + np.roll(scene, 8, axis) + np.roll(scene, -8, axis) + np.roll(scene, 4, axis)) / 4
    scene += rng.normal(0, 12, size=scene.shape)  # texture
    frames = np.empty((num_frames, HEIGHT, WIDTH, 3), np.uint8)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    blobs = rng.uniform(0, 1, size=(3, 4))
    for t in range(num_frames):
        zoom = 1 + 0.2 * t / num_frames
        y0 = int(40 + 60 * t / num_frames)
        x0 = int(30 + 150 * t / num_frames)
        ys = (y0 + (yy / zoom)).astype(int) % big
        xs = (x0 + (xx / zoom)).astype(int) % big
        frame = scene[ys, xs]
        for by, bx, radius, colour in blobs:
            cy = HEIGHT * (0.5 + 0.4 * np.sin(2 * np.pi * (by + t / 90)))
            cx = WIDTH * (0.5 + 0.4 * np.cos(2 * np.pi * (bx + t / 70)))
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < (20 + 30 * radius) ** 2
            frame[mask] = 255 * colour
        frame += rng.normal(0, 4, size=frame.shape)  # grain
        frames[t] = np.clip(frame, 0, 255)
    return frames


def write_h264(path: Path, frames: np.ndarray, gop: int | None) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        options = {"crf": "23", "preset": "fast"}  # default keyint 250 + scene cuts when gop is None
        if gop:
            options.update(
                {
                    "g": str(gop),
                    "keyint_min": str(gop),
                    "sc_threshold": "0",
                    "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0",
                }
            )
        stream.options = options
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def make_videos(cache: Path, count: int) -> dict[str, list[Path]]:
    """`count` videos per GOP variant, generated once (same content for both variants)."""
    variants = {"default GOP": None, "dense (gop 16)": 16}
    paths = {
        name: [cache / f"{'sparse' if gop is None else f'gop{gop}'}_{i}.mp4" for i in range(count)]
        for name, gop in variants.items()
    }
    cache.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        if all(paths[name][i].is_file() for name in variants):
            continue
        frames = render(np.random.default_rng(i), SECONDS * FPS)
        for name, gop in variants.items():
            write_h264(paths[name][i], frames, gop)
    return paths


# ----------------------------------------------------------------------------------------------- readers


READ_FRAMES = reader.read_frames  # the loader rows patch reader.read_frames: keep the project's own


def read_resampled(record: VideoRecord, indices, short_side: int | None = None) -> np.ndarray:
    """ours with a resampling rate (data.fps): the frames on screen at i / FPS."""
    return READ_FRAMES(dataclasses.replace(record, fps=FPS), indices, short_side)


def read_naive(record: VideoRecord, indices, short_side: int | None = None) -> np.ndarray:
    """Decode every frame to RGB, then pick (frame threading on, as for ours)."""
    with av.open(str(record.path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    return np.stack([frames[min(i, len(frames) - 1)] for i in indices])


class IdealReader:
    """Decodes exactly [keyframe before the first wanted frame, last wanted frame], converting only the wanted
    frames, using each video's frame timestamps and keyframes measured beforehand (not timed)."""

    def __init__(self, paths) -> None:
        self.layout = {}
        for path in paths:
            with av.open(str(path)) as container:
                packets = [(p.pts, p.is_keyframe) for p in container.demux(video=0) if p.size]
            pts = sorted(p for p, _ in packets)
            self.layout[str(path)] = (pts, sorted(p for p, key in packets if key))

    def __call__(self, record: VideoRecord, indices, short_side: int | None = None) -> np.ndarray:
        pts, keyframes = self.layout[str(record.path)]
        wanted = {pts[min(i, len(pts) - 1)] for i in indices}
        first, last = min(wanted), max(wanted)
        keyframe = max(k for k in keyframes if k <= first)
        images, scaler = {}, VideoReformatter()  # the cheapest conversion: one scaler context per clip
        with av.open(str(record.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if keyframe > pts[0]:
                container.seek(keyframe, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts in wanted:
                    images[frame.pts] = scaler.reformat(frame, frame.width, frame.height, "rgb24").to_ndarray()
                if frame.pts >= last:
                    break
        return np.stack([images[pts[min(i, len(pts) - 1)]] for i in indices])


# ------------------------------------------------------------------------------------------- measurement


def clip_indices(count: int, seed: int) -> list[np.ndarray]:
    generator = torch.Generator().manual_seed(seed)
    from vivit.datamodules.sampling import train_indices

    return [train_indices(SECONDS * FPS, NUM_FRAMES, STRIDE, generator) for _ in range(count)]


def time_readers(readers: dict, paths: list[Path], clips: int) -> dict[str, float]:
    """clips/s (1 / median time per clip) of each reader alone, taking turns clip by clip so that load changes
    hit all alike; checks that they return the same frames."""
    times = {name: [] for name in readers}
    cpu = dict.fromkeys(readers, 0.0)
    for n, indices in enumerate(clip_indices(clips, 0)):
        record = VideoRecord(paths[n % len(paths)], 0, "bench")
        results = {}
        for name, read in readers.items():
            began, began_cpu = time.perf_counter(), time.process_time()
            results[name] = read(record, indices, SHORT_SIDE)
            times[name].append(time.perf_counter() - began)
            cpu[name] += time.process_time() - began_cpu  # all threads of this process
        reference = results["ideal"]
        for name, frames in results.items():
            if frames.shape != reference.shape or np.abs(frames.astype(int) - reference).max() > 1:
                raise AssertionError(f"{name} returned other frames than ideal for {record.path.name}")
    rates = {name: 1 / float(np.median(t)) for name, t in times.items()}
    return rates, {name: clips / seconds for name, seconds in cpu.items()}


def loader_rate(read, paths: list[Path], clips: int, workers: int, seed: int, batch_size: int = 4) -> float:
    """clips/s of a DataLoader over a train-mode VideoDataset whose reader is `read` (first batch untimed)."""
    records = [VideoRecord(paths[i % len(paths)], 0, f"v{i}") for i in range(clips + batch_size * max(workers, 1))]
    dataset = VideoDataset(records, "train", NUM_FRAMES, STRIDE, SHORT_SIDE, train_transform(CROP), on_error="raise")
    original = reader.read_frames
    reader.read_frames = read  # the dataset calls reader.read_frames; workers fork with the patch
    try:
        torch.manual_seed(seed)
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=False)
        iterator = iter(loader)
        next(iterator)  # worker start-up and the first batch
        began, count = time.perf_counter(), 0
        for batch in iterator:
            count += len(batch["video"])
        return count / (time.perf_counter() - began)
    finally:
        reader.read_frames = original


def time_loaders(readers: dict, paths: list[Path], clips: int, workers: int, rounds: int) -> dict[str, float]:
    """Median clips/s over `rounds` rounds in which every reader's loader takes a turn."""
    rates = {name: [] for name in readers}
    for r in range(rounds):
        for name, read in readers.items():
            rates[name].append(loader_rate(read, paths, clips, workers, seed=r))
    return {name: float(np.median(v)) for name, v in rates.items()}


def time_index(rows: int, workdir: Path) -> dict[str, float]:
    """Index a generated Kinetics-400-sized release (CSV rows + empty clip files): first build and cached load."""
    from vivit.datamodules.index import Kinetics

    root = workdir / "k400_index"
    (root / "annotations").mkdir(parents=True)
    (root / "train").mkdir()
    rng = np.random.default_rng(0)
    labels = [f"class {i:03d}" for i in range(400)]
    lines = ["label,youtube_id,time_start,time_end,split,is_cc"]
    for i in range(rows):
        youtube_id = f"{i:011d}"
        start = int(rng.integers(0, 300))
        lines.append(f'"{labels[i % 400]}",{youtube_id},{start},{start + 10},train,0')
        if i % 40:  # 2.5% of the rows have no video, as in the real K400 train split
            (root / "train" / f"{youtube_id}_{start:06d}_{start + 10:06d}.mp4").touch()
    (root / "annotations" / "train.csv").write_text("\n".join(lines) + "\n")
    cache = workdir / "index_cache"
    timings = {}
    for attempt in ("first", "cached"):
        began = time.perf_counter()
        index = Kinetics(root, cache_dir=cache)
        records = index.records("train")
        _ = index.classes
        timings[attempt] = time.perf_counter() - began
    timings["records"], timings["rows"] = len(records), rows
    timings["skipped"] = index.missing["train"]
    return timings


# ---------------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=6, help="videos per GOP variant")
    parser.add_argument("--clips", type=int, default=48, help="clips per reader for the reader-alone column")
    parser.add_argument("--loader-clips", type=int, default=16, help="timed clips per loader round")
    parser.add_argument("--rounds", type=int, default=3, help="loader rounds (median reported)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for the w=N column")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "vivit_bench_data")
    parser.add_argument("--index-rows", type=int, default=0, help="also time indexing this many Kinetics rows")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "data_cpu.json")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    videos = make_videos(args.cache, args.videos)
    print(f"videos ready in {time.perf_counter() - began:.1f} s ({args.cache})", flush=True)
    ideal = IdealReader([p for paths in videos.values() for p in paths])
    readers = {"ours": reader.read_frames, "ours fps=25": read_resampled, "naive": read_naive, "ideal": ideal}
    rows = []
    for variant, paths in videos.items():
        keyframes = len(ideal.layout[str(paths[0])][1])
        alone, per_cpu_second = time_readers(readers, paths, args.clips)
        measured = {
            "reader_clips_s": alone,
            "reader_clips_per_cpu_s": per_cpu_second,
            "loader_w0_clips_s": time_loaders(readers, paths, args.loader_clips, 0, args.rounds),
            f"loader_w{args.workers}_clips_s": time_loaders(
                readers, paths, args.loader_clips, args.workers, args.rounds
            ),
        }
        for name in readers:
            row = {
                "videos": variant,
                "keyframes_per_video": keyframes,
                "reader": name,
                **{column: rates[name] for column, rates in measured.items()},
            }
            rows.append(row)
            print(
                f"  {variant:15s} {name:12s} " + "  ".join(f"{c.split('_clips')[0]} {row[c]:6.2f}" for c in measured),
                flush=True,
            )

    columns = ["reader_clips_s", "reader_clips_per_cpu_s", "loader_w0_clips_s", f"loader_w{args.workers}_clips_s"]
    ratios = {}
    for variant in videos:
        by = {r["reader"]: r for r in rows if r["videos"] == variant}
        ratios[variant] = {
            c: {
                "ours_vs_naive": by["ours"][c] / by["naive"][c],
                "ideal_vs_ours": by["ideal"][c] / by["ours"][c],
                "ideal_vs_naive": by["ideal"][c] / by["naive"][c],
                "fps25_vs_counting": by["ours fps=25"][c] / by["ours"][c],
            }
            for c in columns
        }
    index_timing = None
    if args.index_rows:
        workdir = Path(tempfile.mkdtemp(prefix="vivit_bench_index_"))
        try:
            index_timing = time_index(args.index_rows, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    names = ["reader", "per CPU-s", "w=0", f"w={args.workers}"]
    print(f"\n{'videos':16s} {'keyframes':>9s} {'method':12s} " + " ".join(f"{n:>10s}" for n in names) + "   (clips/s)")
    for r in rows:
        print(
            f"{r['videos']:16s} {r['keyframes_per_video']:9d} {r['reader']:12s} "
            + " ".join(f"{r[c]:10.2f}" for c in columns)
        )
    for variant, ratio in ratios.items():
        for key in ("ours_vs_naive", "ideal_vs_ours", "ideal_vs_naive", "fps25_vs_counting"):
            print(f"{variant:16s} {key:15s} " + " ".join(f"{ratio[c][key]:9.2f}x" for c in columns))
    if index_timing:
        print(
            f"index of {index_timing['rows']} Kinetics rows ({index_timing['skipped']} without video): "
            f"first {index_timing['first']:.2f} s, cached {index_timing['cached']:.2f} s"
        )
    load_after = os.getloadavg()[0]
    print(
        f"load average {load_before:.2f} -> {load_after:.2f}; torch threads {torch.get_num_threads()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    )

    result = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_before": load_before,
            "load_after": load_after,
            "torch_threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "pyav": av.__version__,
            "decoder_threads": "FFmpeg frame threading (thread_type AUTO) for all three readers",
        },
        "setup": {
            "seconds": SECONDS,
            "fps": FPS,
            "size": [WIDTH, HEIGHT],
            "num_frames": NUM_FRAMES,
            "stride": STRIDE,
            "short_side": SHORT_SIDE,
            "crop": CROP,
            "videos_per_variant": args.videos,
            "clips": args.clips,
            "loader_clips": args.loader_clips,
            "rounds": args.rounds,
            "workers": args.workers,
        },
        "rows": rows,
        "ratios": ratios,
        "index": index_timing,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

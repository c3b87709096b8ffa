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

    python benchmarks/bench_data.py --pipeline      # loose files vs shards, PyAV vs torchcodec, and node sizing

The pipeline part (data_pipeline.json) loads train-mode clips of the dense-keyframe videos through the project's
data module: from the files (`data.format=files`) and from shards written by the shard writer (H.264 members,
`media=video`, and JPEG members, `media=frames`), decoded by PyAV and by torchcodec, with 0 and N workers. Per row:
clips/s, bytes read per clip (this process's read syscalls, w=0), and the peak private memory (RssAnon) of a worker.
From these and each model's training FLOPs (3 x forward, paper convention x 2 FLOPs per multiply-add) at a stated
GPU speed and utilisation (`--gpu`), it derives the cores per GPU needed to feed ViViT-B and ViViT-L.
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


# ----------------------------------------------------------------------------------------------- pipeline

GPUS = {  # dense bf16 tensor-core peak, TFLOP/s (vendor figures); training runs at `--mfu` of it
    "A100": 312.0,
    "H100": 989.0,
}


def pipeline_release(videos: list[Path], workdir: Path, clips: int) -> Path:
    """A `data=folder` release (train CSV) of `clips` records cycling over `videos`."""
    root = workdir / "release"
    root.mkdir(parents=True)
    lines = ["path,label"] + [f"{videos[i % len(videos)]},{i % 4}" for i in range(clips)]
    for split in ("train", "val", "test"):
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return root


def pipeline_datamodule(root: str, fmt: str, decoder: str, workers: int):
    from vivit.datamodules import FolderVideos, VideoDataModule

    return VideoDataModule(
        FolderVideos(root),
        None,
        NUM_FRAMES,
        CROP,
        stride=STRIDE,
        min_resize=SHORT_SIDE,
        fps=FPS,
        batch_size=4,
        num_workers=workers,
        persistent_workers=False,
        root=root,
        format=fmt,
        decoder=decoder,
        shuffle_buffer=16,
    )


def read_bytes() -> int:
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar")).split()[1])


def private_memory_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("RssAnon")) / 1024
    except (OSError, StopIteration):  # the worker has exited
        return 0.0


def pipeline_rate(datamodule, workers: int) -> dict[str, float]:
    """clips/s of one epoch of the training loader, worker start-up included; bytes read per clip (w=0: this
    process's reads); the workers' peak private memory (RssAnon, sampled every batch)."""
    datamodule.datasets["train"] = datamodule.build_dataset("train")
    loader = datamodule.train_dataloader()
    began_bytes, began, count = read_bytes(), time.perf_counter(), 0
    iterator = iter(loader)
    pids = [w.pid for w in getattr(iterator, "_workers", [])]
    peak = dict.fromkeys(pids, 0.0)
    for batch in iterator:
        count += len(batch["video"])
        for pid in pids:
            peak[pid] = max(peak[pid], private_memory_mb(pid))
    seconds = time.perf_counter() - began
    return {
        "clips_s": count / seconds,
        "bytes_per_clip": (read_bytes() - began_bytes) / count if workers == 0 else None,
        "worker_peak_mb": max(peak.values()) if peak else None,
        "main_rss_mb": private_memory_mb(os.getpid()),
    }


def run_pipeline(args, videos: list[Path]) -> dict:
    from vivit.datamodules.shard_writer import write_shards
    from vivit.models.flops import build_meta_model, model_stats
    from vivit.models.registry import model_config

    workdir = Path(tempfile.mkdtemp(prefix="vivit_bench_pipeline_"))
    try:
        release = pipeline_release(videos, workdir, args.pipeline_clips)
        sources = {"files": str(release)}
        for media in ("video", "frames"):
            began = time.perf_counter()
            out = workdir / f"shards-{media}"
            write_shards(
                pipeline_datamodule(str(release), "files", "pyav", 0),
                out,
                splits=["train"],
                media=media,
                samples_per_shard=max(1, args.pipeline_clips // 8),
                workers=args.workers,
                progress=False,
            )
            size = sum(p.stat().st_size for p in out.glob("*.tar"))
            print(f"shards ({media}) written in {time.perf_counter() - began:.1f} s: {size / 2**20:.1f} MB", flush=True)
            sources[f"shards ({media})"] = str(out)
        decoders = ["pyav"] + (["torchcodec"] if args.torchcodec else [])
        rows = []
        for name, root in sources.items():
            for decoder in decoders if name != "shards (frames)" else ["pyav"]:  # JPEG members: torchvision
                for workers in (0, args.workers):
                    fmt = "files" if name == "files" else "shards"
                    measured = pipeline_rate(pipeline_datamodule(root, fmt, decoder, workers), workers)
                    row = {"source": name, "decoder": decoder, "workers": workers, **measured}
                    rows.append(row)
                    print(
                        f"  {name:16s} {decoder:10s} w={workers}  {row['clips_s']:6.2f} clips/s  "
                        f"peak/worker {row['worker_peak_mb'] or 0:6.0f} MB",
                        flush=True,
                    )
        stored = {
            name: sum(p.stat().st_size for p in Path(root).glob("*.tar")) / args.pipeline_clips
            for name, root in sources.items()
            if name != "files"
        }
        stored["files"] = float(np.mean([p.stat().st_size for p in videos]))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    models = {}
    for name in ("vivit_b_fe", "vivit_l_fe"):
        config = {**model_config(name), "num_classes": 400}
        macs = model_stats(build_meta_model(config))["gflops"] * 1e9  # per 32x224 clip
        models[name] = {"gmacs_per_clip": macs / 1e9}
        for gpu, peak in GPUS.items():
            models[name][f"{gpu}_clips_s"] = peak * 1e12 * args.mfu / (3 * 2 * macs)
    return {"rows": rows, "bytes_stored_per_clip": stored, "models": models, "mfu": args.mfu}


def print_pipeline(result: dict, workers: int) -> None:
    header = f"{'source':18s} {'decoder':10s} {'w':>2s} {'clips/s':>8s} {'/core':>6s} {'KB read/clip':>13s}"
    print(f"\n{header} {'MB/worker':>10s}")
    for r in result["rows"]:
        per_core = r["clips_s"] / max(1, r["workers"])
        kb = f"{r['bytes_per_clip'] / 1024:13.0f}" if r["bytes_per_clip"] is not None else f"{'':13s}"
        mb = f"{r['worker_peak_mb']:10.0f}" if r["worker_peak_mb"] else f"{'':10s}"
        print(f"{r['source']:18s} {r['decoder']:10s} {r['workers']:2d} {r['clips_s']:8.2f} {per_core:6.2f} {kb} {mb}")
    print(
        "bytes stored per clip: "
        + ", ".join(f"{k} {v / 1024:.0f} KB" for k, v in result["bytes_stored_per_clip"].items())
    )
    mfu = f"{100 * result['mfu']:.0f}%"
    print(f"\ncores per GPU to feed training (model clips/s at {mfu} of bf16 peak / clips/s per core):")
    best = {}
    for r in result["rows"]:
        if r["workers"] == workers:
            best[(r["source"], r["decoder"])] = r["clips_s"] / workers
    for model, m in result["models"].items():
        for gpu in GPUS:
            need = m[f"{gpu}_clips_s"]
            cells = ", ".join(f"{s} {d}: {need / rate:.0f}" for (s, d), rate in best.items())
            print(f"  {model} ({m['gmacs_per_clip']:.0f} GMACs) on {gpu}: {need:.1f} clips/s -> cores: {cells}")


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
    parser.add_argument("--pipeline", action="store_true", help="loose files vs shards, decoders, node sizing")
    parser.add_argument("--pipeline-clips", type=int, default=32, help="clips per pipeline row")
    parser.add_argument("--mfu", type=float, default=0.4, help="training utilisation of the GPU's bf16 peak")
    parser.add_argument("--torchcodec", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()

    if args.pipeline:
        load_before = os.getloadavg()[0]
        videos = make_videos(args.cache, args.videos)["dense (gop 16)"]
        result = run_pipeline(args, videos)
        result["machine"] = {
            "cpus": os.cpu_count(),
            "load_before": load_before,
            "load_after": os.getloadavg()[0],
            "pyav": av.__version__,
            "torch_threads": torch.get_num_threads(),
        }
        print_pipeline(result, args.workers)
        print(f"load average {load_before:.2f} -> {result['machine']['load_after']:.2f}")
        out = args.out.with_name("data_pipeline.json") if args.out.name == "data_cpu.json" else args.out
        out.write_text(json.dumps(result, indent=1))
        print(f"wrote {out}")
        return

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

"""The three shard formats on the same clips: WebDataset tar (what `vivit.datamodules.shards` writes), Lightning's
litdata and MosaicML streaming (MDS). Run once per format, each in an environment that has its package:

    python benchmarks/bench_shard_formats.py --format wds        # webdataset (pip install .[shards])
    python benchmarks/bench_shard_formats.py --format litdata    # pip install litdata
    python benchmarks/bench_shard_formats.py --format mds        # pip install mosaicml-streaming
    python benchmarks/bench_shard_formats.py --table             # the table of every format measured so far

Clips: `--videos` distinct 10 s 340x256 videos of bench_data.py (dense keyframes, H.264), each stored `--copies` times
under its own key, with a JSON member of labels; every format stores the same bytes, uncompressed, in shards of
~64 MB. Measured on one process, the page cache warm (a second pass; a cold network store is slower for all):

    write s        writing every sample
    MB             bytes on disk, all files (shards + indexes), and the overhead over the payload
    read clips/s   iterating every sample in order (bytes only): the format's own cost
    decode clips/s the same, plus decoding a 32-frame clip at stride 2 of each (PyAV): what a loader sees
    random ms      one sample by its number, 64 random numbers (evaluation, replacing a damaged sample)
    resume         whether iteration stopped after 3 of 12 batches continues at batch 4 from a saved state

Writes benchmarks/results/shard_formats.json (one entry per format, merged).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_data import make_videos  # noqa: E402

from vivit.datamodules.shards import _decode_h264  # noqa: E402

SHARD_BYTES = 64 * 2**20
CLIP = np.arange(32) * 2 + 100  # frames 100, 102, ..., 162 of a 250-frame video


def samples(videos: list[Path], copies: int) -> list[dict]:
    payloads = [p.read_bytes() for p in videos]
    return [
        {
            "key": f"{c:04d}{v:04d}",
            "mp4": payloads[v],
            "path": str(videos[v]),
            "json": {"id": f"{v}-{c}", "label": v % 8},
        }
        for c in range(copies)
        for v in range(len(videos))
    ]


# --------------------------------------------------------------------------------------------- formats


class WebDatasetTar:
    name = "WebDataset tar (ours)"

    def write(self, items, out: Path) -> None:
        import webdataset

        from vivit.datamodules.shard_writer import member_offsets

        out.mkdir(parents=True)
        self.index, shard, size, tar, stream = [], -1, SHARD_BYTES, None, None
        for item in items:
            if size >= SHARD_BYTES:
                if tar is not None:
                    tar.close()
                    stream.close()
                shard, size = shard + 1, 0
                stream = (out / f"{shard:06d}.tar").open("wb")
                tar = webdataset.TarWriter(stream)
            tar.write({"__key__": item["key"], "mp4": item["mp4"], "json": item["json"]})
            size += len(item["mp4"])
            self.index.append((shard, item["key"]))
        tar.close()
        stream.close()
        offsets = {s: member_offsets(out / f"{s:06d}.tar", "mp4") for s in {s for s, _ in self.index}}
        self.index = [(f"{s:06d}.tar", *offsets[s][key]) for s, key in self.index]
        (out / "samples.json").write_text(json.dumps(self.index))  # what the manifest holds

    def iterate(self, out: Path):
        from vivit.datamodules.shards import Storage

        storage, current, handle = Storage(str(out)), None, None
        for name, offset, size in self.index:
            if name != current:
                if handle is not None:
                    handle.close()
                handle, current = storage.open(name), name
            handle.seek(offset)
            yield handle.read(size)
        handle.close()

    def get(self, out: Path, i: int) -> bytes:
        from vivit.datamodules.shards import Storage

        name, offset, size = self.index[i]
        return Storage(str(out)).read_range(name, offset, size)

    def resume(self, out: Path):
        return "by (seed, epoch) at epoch starts; no mid-epoch state"


class StreamingFormat:
    """What litdata and MosaicML streaming share: a dataset of {"mp4", "json"} items and a data loader with a
    state_dict; each subclass writes its format and names its `dataset` and `loader`."""

    def dataset(self, out: Path):
        raise NotImplementedError

    def loader(self, out: Path):
        raise NotImplementedError

    def iterate(self, out: Path):
        for item in self.dataset(out):
            yield item["mp4"]

    def get(self, out: Path, i: int) -> bytes:
        if not hasattr(self, "_ds"):
            self._ds = self.dataset(out)
        return self._ds[i]["mp4"]

    def resume(self, out: Path) -> str:
        """Does a loader restored from the state after 3 batches give the 4th batch of an uninterrupted one?"""

        def batches(loader, n):
            it = iter(loader)
            return [next(it) for _ in range(n)]

        full = batches(self.loader(out), 4)
        first = self.loader(out)
        batches(first, 3)
        state = first.state_dict()
        second = self.loader(out)
        second.load_state_dict(state)
        return "yes (StreamingDataLoader.state_dict)" if batches(second, 1)[0] == full[3] else "no"


class LitData(StreamingFormat):
    name = "litdata"

    def write(self, items, out: Path) -> None:
        import litdata

        self.items = items
        litdata.optimize(
            fn=_litdata_item,
            inputs=[(item["path"], item["json"]) for item in items],
            output_dir=str(out),
            chunk_bytes=SHARD_BYTES,
            num_workers=1,
            verbose=False,
            reorder_files=False,
        )

    def dataset(self, out: Path):
        import litdata

        return litdata.StreamingDataset(str(out), cache_dir=str(out) + "_cache")

    def loader(self, out: Path):
        import litdata

        return litdata.StreamingDataLoader(self.dataset(out), batch_size=4, collate_fn=_ids)


def _ids(batch: list[dict]) -> list[str]:
    return [item["json"]["id"] for item in batch]


def _litdata_item(item: tuple[str, dict]) -> dict:
    path, meta = item  # litdata calls this in a worker process: the bytes are read there
    return {"mp4": Path(path).read_bytes(), "json": meta}


class MosaicStreaming(StreamingFormat):
    name = "MosaicML streaming (MDS)"

    def write(self, items, out: Path) -> None:
        from streaming import MDSWriter

        with MDSWriter(out=str(out), columns={"mp4": "bytes", "json": "json"}, size_limit=SHARD_BYTES) as writer:
            for item in items:
                writer.write({"mp4": item["mp4"], "json": item["json"]})

    def dataset(self, out: Path):
        from streaming import StreamingDataset

        return StreamingDataset(local=str(out), batch_size=4)

    def loader(self, out: Path):
        from streaming import StreamingDataLoader

        return StreamingDataLoader(self.dataset(out), batch_size=4, collate_fn=_ids)


FORMATS = {"wds": WebDatasetTar, "litdata": LitData, "mds": MosaicStreaming}


# ------------------------------------------------------------------------------------------- measurement


def measure(fmt, items: list[dict], workdir: Path) -> dict:
    out = workdir / "shards"
    began = time.perf_counter()
    fmt.write(items, out)
    write_s = time.perf_counter() - began
    files = [p for p in workdir.rglob("*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    payload = sum(len(item["mp4"]) for item in items)
    for _ in fmt.iterate(out):  # warm the page cache (and litdata's/MDS's local cache)
        pass
    began = time.perf_counter()
    count = sum(1 for _ in fmt.iterate(out))
    read_rate = count / (time.perf_counter() - began)
    began = time.perf_counter()
    decoded = 0
    for data in fmt.iterate(out):
        decoded += len(_decode_h264(data, CLIP))
    decode_rate = count / (time.perf_counter() - began)
    rng = np.random.default_rng(0)
    picks = rng.integers(len(items), size=64)
    fmt.get(out, 0)
    began = time.perf_counter()
    for i in picks:
        assert fmt.get(out, int(i)) == items[int(i)]["mp4"], "random access returned another sample"
    random_ms = 1000 * (time.perf_counter() - began) / len(picks)
    return {
        "format": fmt.name,
        "samples": count,
        "write_s": write_s,
        "files": len(files),
        "megabytes": total / 2**20,
        "overhead_pct": 100 * (total - payload) / payload,
        "read_clips_s": read_rate,
        "decode_clips_s": decode_rate,
        "random_ms": random_ms,
        "resume": fmt.resume(out),
        "load": os.getloadavg()[0],
    }


def table(results: dict) -> None:
    print(
        f"{'format':26s} {'write s':>8s} {'files':>6s} {'MB':>7s} {'overhead':>9s} {'read/s':>8s} "
        f"{'decode/s':>9s} {'random ms':>10s}  resume"
    )
    for r in results.values():
        print(
            f"{r['format']:26s} {r['write_s']:8.2f} {r['files']:6d} {r['megabytes']:7.1f} {r['overhead_pct']:8.2f}% "
            f"{r['read_clips_s']:8.0f} {r['decode_clips_s']:9.1f} {r['random_ms']:10.2f}  {r['resume']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", choices=list(FORMATS))
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--copies", type=int, default=16)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "vivit_bench_data")
    parser.add_argument("--table", action="store_true", help="print the table of the results file")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "shard_formats.json")
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if args.format:
        videos = make_videos(args.cache, args.videos)["dense (gop 16)"]
        items = samples(videos, args.copies)
        workdir = Path(tempfile.mkdtemp(prefix=f"vivit_formats_{args.format}_"))
        try:
            results[args.format] = measure(FORMATS[args.format](), items, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            shutil.rmtree(str(workdir / "shards") + "_cache", ignore_errors=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    table(results)


if __name__ == "__main__":
    main()

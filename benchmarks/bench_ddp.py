"""DDP scaling on the CPU: the tiny ViViT (conf/model/vivit_tiny.yaml) trained by 1 and by 2 gloo processes.

    python benchmarks/bench_ddp.py                  # ~1 minute on 2 cores; writes benchmarks/results/bench_ddp.json
    python benchmarks/bench_ddp.py --batch 16 --steps 30 --threads 1

Each process trains its own copy under torch's DistributedDataParallel (gloo, what `trainer=ddp
trainer.accelerator=cpu` runs) on random clips of the model's shape, `--batch` clips per process and step
(forward, cross-entropy, backward with the gradient all-reduce, SGD step), after `--warmup` untimed steps.
Reported per process count N:
    clips/s       N x batch x steps / wall time of the timed steps (the slowest rank)
    step ms       median time per step
    no-sync ms    median time per step inside `no_sync()` (no gradient all-reduce): the compute alone
    comm %        (step - no-sync) / step: the share of the step spent on DDP's gradient all-reduce
    scaling       clips/s(N) / (N x clips/s(1)): 100% is perfect scaling
GPU figures (NCCL) are not measured by this script's CPU run; the same code runs with --backend nccl on GPUs.
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere


def tiny_model_config() -> dict:
    """conf/model/vivit_tiny.yaml, composed as train.py does, with the 8 classes the data gives it."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose(config_name="train", overrides=["model=vivit_tiny"])
    return {**OmegaConf.to_container(cfg.model, resolve=True), "num_classes": 8}


def _rank(rank: int, world: int, args: argparse.Namespace, model_cfg: dict, folder: str, queue) -> None:
    torch.set_num_threads(args.threads)
    from vivit.models import build_model

    torch.distributed.init_process_group("gloo", init_method=f"file://{folder}/pg", rank=rank, world_size=world)
    torch.manual_seed(0)
    net = build_model(model_cfg)
    ddp = torch.nn.parallel.DistributedDataParallel(net)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
    shape = (args.batch, 3, model_cfg["num_frames"], model_cfg["img_size"], model_cfg["img_size"])
    generator = torch.Generator().manual_seed(rank)
    clips = torch.rand(shape, generator=generator) * 2 - 1
    labels = torch.randint(0, model_cfg["num_classes"], (args.batch,), generator=generator)

    def step(sync: bool) -> float:
        start = time.perf_counter()
        if sync:
            loss = torch.nn.functional.cross_entropy(ddp(clips), labels)
            loss.backward()
        else:
            with ddp.no_sync():
                loss = torch.nn.functional.cross_entropy(ddp(clips), labels)
                loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    for _ in range(args.warmup):
        step(True)
    torch.distributed.barrier()
    # synced and no-sync steps take turns, so load from other processes hits both alike
    synced, unsynced = [], []
    began = time.perf_counter()
    for _ in range(args.steps):
        synced.append(step(True))
    torch.distributed.barrier()
    wall = time.perf_counter() - began
    for _ in range(args.steps):
        unsynced.append(step(False))
    torch.distributed.barrier()
    queue.put(
        {"rank": rank, "wall_s": wall, "step_s": statistics.median(synced), "nosync_s": statistics.median(unsynced)}
    )
    torch.distributed.destroy_process_group()


def measure(world: int, args: argparse.Namespace, model_cfg: dict) -> dict:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory() as folder:
        procs = [ctx.Process(target=_rank, args=(r, world, args, model_cfg, folder, queue)) for r in range(world)]
        for p in procs:
            p.start()
        ranks = [queue.get(timeout=600) for _ in procs]
        for p in procs:
            p.join()
    wall = max(r["wall_s"] for r in ranks)
    step = max(r["step_s"] for r in ranks)
    nosync = max(r["nosync_s"] for r in ranks)
    return {
        "processes": world,
        "clips_per_s": world * args.batch * args.steps / wall,
        "step_ms": 1000 * step,
        "nosync_step_ms": 1000 * nosync,
        "comm_share": max(0.0, (step - nosync) / step),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16, help="clips per process and step")
    parser.add_argument("--steps", type=int, default=30, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_ddp.json"))
    args = parser.parse_args()

    model_cfg = tiny_model_config()
    rows = [measure(world, args, model_cfg) for world in (1, 2)]
    for row in rows:
        row["scaling"] = row["clips_per_s"] / (row["processes"] * rows[0]["clips_per_s"])

    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"DDP on the CPU (gloo): vivit_tiny, {args.batch} clips/process/step, {args.threads} thread(s)/process"
    )
    for name in ("processes", "clips/s", "step ms", "no-sync ms", "comm %", "scaling"):
        table.add_column(name, justify="right")
    for r in rows:
        table.add_row(
            str(r["processes"]),
            f"{r['clips_per_s']:.1f}",
            f"{r['step_ms']:.0f}",
            f"{r['nosync_step_ms']:.0f}",
            f"{100 * r['comm_share']:.0f}%",
            f"{100 * r['scaling']:.0f}%",
        )
    Console().print(table)
    result = {
        "benchmark": "bench_ddp",
        "model": "vivit_tiny",
        "model_config": model_cfg,
        "batch_per_process": args.batch,
        "steps": args.steps,
        "warmup": args.warmup,
        "threads_per_process": args.threads,
        "backend": "gloo",
        "device": "cpu",
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "rows": rows,
        "note": "shared 2-core machine; other processes ran at the same time (load_average at the end)",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

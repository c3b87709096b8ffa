"""Training-step and inference throughput of the ViViT variants and of Hugging Face's ViViT, in one run.

    python benchmarks/bench_models.py                        # CPU: a reduced size that runs in minutes
    python benchmarks/bench_models.py --device cuda          # GPU: ViViT-B, 32 frames at 224, bf16 autocast, MFU

Models, all on the identical configuration (hidden size, depth, heads, tubelet, frames, image size, classes):
    st, fe, fsa, fdp   vivit.models Models 1-4 (fe with Lt = --temporal-depth)
    hf                 transformers.VivitForVideoClassification (Model 1 only), attn_implementation="sdpa" (its
                       fastest on CPU and on GPU; "eager" materialises the attention matrix)

A training step is forward + cross-entropy + backward + SGD(momentum 0.9) step; inference is a forward pass
under `torch.inference_mode()` in eval mode. After `--warmup` untimed steps per model, the models take turns
for `--iters` rounds (one timed step each per round, so a change of machine load hits every model alike) and
the median step time is reported as clips/s and as a ratio to hf (> 1: faster than hf).

GFLOPs are multiply-adds per clip (forward) from `vivit.models.flops` (the paper's convention); achieved TFLOP/s and
MFU count 2 FLOPs per multiply-add and a training step as 3 forward passes (backward = 2 forwards), without
recomputation. MFU = achieved / --peak-tflops (default on GPU: the dense bf16 peak of the detected H100/H200).
Prints a table and writes JSON (--out, default benchmarks/results/models_<device>.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from vivit.models import VARIANTS  # noqa: E402
from vivit.models.flops import count_macs  # noqa: E402
from vivit.tasks.predict import native_bf16  # noqa: E402

ALL_MODELS = [*VARIANTS, "hf"]  # the zoo's variants (st, fe, fsa, fdp) and Hugging Face's ViViT

# Presets: width, depth, heads, geometry and batch. The CPU one runs in a few minutes on 2 cores; 4 heads (not
# ViT-Ti's 3) because Model 4 splits the heads in two halves.
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": dict(
        embed_dim=192,
        depth=6,
        num_heads=4,
        temporal_depth=4,
        num_frames=16,
        img_size=96,
        tubelet=(2, 16, 16),
        num_classes=400,
        batch_size=4,
        warmup=3,
        iters=20,
    ),
    "gpu": dict(
        embed_dim=768,
        depth=12,
        num_heads=12,
        temporal_depth=4,
        num_frames=32,
        img_size=224,
        tubelet=(2, 16, 16),
        num_classes=400,
        batch_size=8,
        warmup=5,
        iters=20,
    ),  # ViViT-B/16x2
    "tiny": dict(
        embed_dim=32,
        depth=1,
        num_heads=2,
        temporal_depth=1,
        num_frames=4,
        img_size=32,
        tubelet=(2, 16, 16),
        num_classes=10,
        batch_size=1,
        warmup=0,
        iters=1,
    ),  # smoke test
}

# Dense bf16 tensor-core peaks (TFLOP/s) from NVIDIA's datasheets; matched against torch.cuda.get_device_name.
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.4, "H200": 989.4}  # first match wins


def default_peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def model_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """Constructor kwargs shared by our four variants (dropout and stochastic depth off)."""
    return dict(
        num_classes=cfg["num_classes"],
        img_size=cfg["img_size"],
        num_frames=cfg["num_frames"],
        tubelet_size=tuple(cfg["tubelet"]),
        embed_dim=cfg["embed_dim"],
        depth=cfg["depth"],
        num_heads=cfg["num_heads"],
        mlp_ratio=4.0,
        qkv_bias=True,
    )


def build_ours(name: str, cfg: dict[str, Any]) -> nn.Module:
    kwargs = model_kwargs(cfg)
    if name == "fe":
        kwargs["temporal_depth"] = cfg["temporal_depth"]
    return VARIANTS[name].model_class(**kwargs)


def build_hf(cfg: dict[str, Any]) -> nn.Module:
    """transformers' ViViT (Model 1, CLS token) with the same configuration; tanh GELU and eps 1e-6 as ours."""
    from transformers import VivitConfig, VivitForVideoClassification

    config = VivitConfig(
        image_size=cfg["img_size"],
        num_frames=cfg["num_frames"],
        tubelet_size=list(cfg["tubelet"]),
        hidden_size=cfg["embed_dim"],
        num_hidden_layers=cfg["depth"],
        num_attention_heads=cfg["num_heads"],
        intermediate_size=4 * cfg["embed_dim"],
        hidden_act="gelu_fast",
        layer_norm_eps=1e-6,
        qkv_bias=True,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=cfg["num_classes"],
    )
    return VivitForVideoClassification._from_config(config, attn_implementation="sdpa")


class Candidate:
    """One model under test: how to build its input and run it, its optimiser and its timings."""

    def __init__(self, name: str, cfg: dict[str, Any], device: torch.device) -> None:
        self.name = name
        self.model = (build_hf(cfg) if name == "hf" else build_ours(name, cfg)).to(device)
        self.params = sum(p.numel() for p in self.model.parameters())
        # Same arithmetic as our Model 1 for hf (separate q/k/v Linears do the same multiply-adds as one qkv).
        with torch.device("meta"):
            meta = build_ours("st" if name == "hf" else name, cfg)
        self.macs = sum(count_macs(meta.eval()).values())
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9)
        self.times: dict[str, list[float]] = {"train": [], "infer": [], "infer_bf16": []}

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if self.name == "hf":
            return self.model(pixel_values=video.transpose(1, 2)).logits  # HF takes (B, T, C, H, W)
        return self.model(video)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall time of fn() in seconds, with the GPU's queue drained before and after."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def train_step(c: Candidate, video: torch.Tensor, labels: torch.Tensor, autocast: Callable) -> None:
    c.model.train()
    c.optimizer.zero_grad(set_to_none=True)
    with autocast():
        logits = c.forward(video)
    F.cross_entropy(logits.float(), labels).backward()
    c.optimizer.step()


def infer_step(c: Candidate, video: torch.Tensor, autocast: Callable) -> None:
    c.model.eval()
    with torch.inference_mode(), autocast():
        c.forward(video)


def run(cfg: dict[str, Any], names: list[str], device: torch.device) -> list[Candidate]:
    torch.manual_seed(0)
    B = cfg["batch_size"]
    video = torch.rand(B, 3, cfg["num_frames"], cfg["img_size"], cfg["img_size"], device=device) * 2 - 1
    labels = torch.randint(0, cfg["num_classes"], (B,), device=device)
    if device.type == "cuda":
        autocast = lambda: torch.autocast("cuda", dtype=torch.bfloat16)  # noqa: E731
    else:
        autocast = nullcontext
    candidates = [Candidate(name, cfg, device) for name in names]
    steps = {
        "train": lambda c: train_step(c, video, labels, autocast),
        "infer": lambda c: infer_step(c, video, autocast),
    }
    if device.type == "cpu":  # what predict.py's precision=auto picks on a CPU with native bf16 (AVX512-BF16/AMX)
        steps["infer_bf16"] = lambda c: infer_step(c, video, lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    for mode, step in steps.items():
        for c in candidates:
            for _ in range(cfg["warmup"]):
                step(c)
        for _ in range(cfg["iters"]):  # round robin: load changes hit every model alike
            for c in candidates:
                c.times[mode].append(timed(lambda c=c, step=step: step(c), device))
    return candidates


def summarise(candidates: list[Candidate], cfg: dict[str, Any], peak_tflops: float | None) -> list[dict[str, Any]]:
    B = cfg["batch_size"]
    rows = []
    for c in candidates:
        row: dict[str, Any] = {"model": c.name, "params": c.params, "gflops_per_clip": c.macs / 1e9}
        for mode, passes in (("train", 3), ("infer", 1), ("infer_bf16", 1)):
            if not c.times[mode]:
                continue
            median = statistics.median(c.times[mode])
            clips = B / median
            achieved = 2 * c.macs * passes * clips / 1e12  # TFLOP/s, 2 FLOPs per multiply-add
            row |= {
                f"{mode}_step_s_median": median,
                f"{mode}_step_s_all": c.times[mode],
                f"{mode}_clips_per_s": clips,
                f"{mode}_tflops": achieved,
                f"{mode}_mfu": achieved / peak_tflops if peak_tflops else None,
            }
        if c.times["infer_bf16"]:
            row["infer_bf16_vs_fp32"] = row["infer_bf16_clips_per_s"] / row["infer_clips_per_s"]
        rows.append(row)
    hf = next((r for r in rows if r["model"] == "hf"), None)
    for row in rows:
        for mode in ("train", "infer"):
            row[f"{mode}_vs_hf"] = row[f"{mode}_clips_per_s"] / hf[f"{mode}_clips_per_s"] if hf else None
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    def ratio(x: float | None) -> str:
        return f"{x:.2f}x" if x is not None else "-"

    def mfu(x: float | None) -> str:
        return f"{100 * x:.1f}%" if x is not None else "-"

    header = (
        f"{'model':<6} {'params M':>8} {'GFLOPs':>8} | {'train clips/s':>13} {'vs hf':>6} {'TFLOP/s':>8} "
        f"{'MFU':>6} | {'infer clips/s':>13} {'vs hf':>6} {'TFLOP/s':>8} {'MFU':>6}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['model']:<6} {r['params'] / 1e6:>8.2f} {r['gflops_per_clip']:>8.3g} | "
            f"{r['train_clips_per_s']:>13.2f} {ratio(r['train_vs_hf']):>6} {r['train_tflops']:>8.3g} "
            f"{mfu(r['train_mfu']):>6} | {r['infer_clips_per_s']:>13.2f} {ratio(r['infer_vs_hf']):>6} "
            f"{r['infer_tflops']:>8.3g} {mfu(r['infer_mfu']):>6}"
        )
    bf16 = [
        f"{r['model']} {r['infer_bf16_clips_per_s']:.2f} clips/s ({r['infer_bf16_vs_fp32']:.2f}x fp32)"
        for r in rows
        if "infer_bf16_vs_fp32" in r
    ]
    if bf16:
        lines.append("infer, bf16 autocast: " + ", ".join(bf16))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--preset", choices=sorted(PRESETS), help="size preset (default: cpu, or gpu on cuda)")
    p.add_argument("--models", nargs="+", choices=ALL_MODELS, default=ALL_MODELS, help="models to run")
    for key in (
        "embed_dim",
        "depth",
        "num_heads",
        "temporal_depth",
        "num_frames",
        "img_size",
        "num_classes",
        "batch_size",
        "warmup",
        "iters",
    ):
        p.add_argument(f"--{key.replace('_', '-')}", type=int, help="override the preset's value")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU (default 1)")
    p.add_argument(
        "--peak-tflops",
        type=float,
        help=f"peak FLOP/s for MFU, in TFLOP/s (default on GPU: dense bf16 of the detected card, {PEAK_BF16_TFLOPS})",
    )
    p.add_argument("--out", type=Path, help="JSON file (default benchmarks/results/models_<device>.json)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to torch; run without --device for the CPU.")
    cfg = dict(PRESETS[args.preset or ("gpu" if device.type == "cuda" else "cpu")])
    cfg |= {k: v for k in cfg if (v := getattr(args, k, None)) is not None}
    torch.set_num_threads(args.threads)
    peak = args.peak_tflops or default_peak_tflops(device)
    load_before = os.getloadavg()

    candidates = run(cfg, args.models, device)
    rows = summarise(candidates, cfg, peak)

    meta = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "precision": "bf16 autocast" if device.type == "cuda" else "fp32 (+ infer_bf16: bf16 autocast)",
        "native_bf16": native_bf16() if device.type == "cpu" else None,
        "hf_attn_implementation": "sdpa",
        "peak_tflops": peak,
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "python": platform.python_version(),
    }
    result = {"meta": meta, "config": cfg, "results": rows}
    out = args.out or ROOT / "benchmarks" / "results" / f"models_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    geometry = (
        f"{cfg['num_frames']} frames x {cfg['img_size']}px, tubelet {'x'.join(map(str, cfg['tubelet']))}, "
        f"hidden {cfg['embed_dim']}, depth {cfg['depth']} (fe: + {cfg['temporal_depth']} temporal), "
        f"{cfg['num_heads']} heads, {cfg['num_classes']} classes, batch {cfg['batch_size']}"
    )
    print(
        f"{meta['device']} | {meta['precision']} | threads {meta['threads']} | load avg "
        f"{load_before[0]:.2f} -> {meta['load_avg_after'][0]:.2f} | {geometry} | median of {cfg['iters']} "
        f"after {cfg['warmup']} warmup | hf = transformers {meta['transformers']} VivitForVideoClassification, "
        "attn_implementation=sdpa"
    )
    print(format_table(rows))
    print(f"wrote {out}")
    return result


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()

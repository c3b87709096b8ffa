"""GPU-hours of every paper preset (conf/experiment/paper/), from the FLOPs counter and a training throughput.

    python benchmarks/paper_cost.py                                  # at an assumed sustained 125 TFLOP/s
    python benchmarks/paper_cost.py --bench benchmarks/results/models_cuda.json   # at bench_models.py's clips/s
    python benchmarks/paper_cost.py --sustained-tflops 400           # e.g. an H100 at 40% of its bf16 peak

Every job of every preset is composed as train.py composes it (its sweep expanded by Hydra's BasicSweeper); its
model is counted on the meta device (`vivit.models.flops`, multiply-adds per view, the paper's convention), and

    training   = 3 x forward (backward = 2 forwards) x train clips x epochs
    validation = 1 view x validation clips x epochs (the centre clip each epoch)
    test       = views x test clips (the preset's multi-view protocol)

at 2 FLOPs per multiply-add. Clip counts are the releases' (the scenic configs' train/validation/test sizes; MiT
v1's from its paper). GPU-hours = FLOPs / sustained FLOP/s, where the sustained rate is either `--bench`: the
achieved training TFLOP/s per variant measured by `benchmarks/bench_models.py --device cuda` (its train clips/s x
its FLOPs per clip x 3), or `--sustained-tflops` (default 125: an A100's dense bf16 peak of 312 at 40% MFU, an
assumption). Data loading, checkpointing and the 4x3 test's extra crops' decoding are not counted.
Prints a table and writes JSON (--out, default benchmarks/results/paper_cost.json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.core.override_parser.overrides_parser import OverridesParser  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from vivit.models import variant_of  # noqa: E402
from vivit.models.flops import build_meta_model, model_stats  # noqa: E402
from vivit.runtime.config import CONF_DIR  # noqa: E402

# (train, validation, test) clips of each release; the test split of K600, MiT, EPIC and SSv2 is the validation set
CLIPS = {
    "k400": (214_834, 17_637, 34_579),
    "k600": (363_213, 27_676, 27_676),
    "mit": (802_264, 33_900, 33_900),
    "epic100": (67_217, 9_668, 9_668),
    "ssv2": (168_913, 24_777, 24_777),
}
# what a user adds to run each preset (folders and a Kinetics checkpoint are placeholders: nothing is read)
ARGUMENTS = [
    "data.root=/data",
    "++k400_checkpoint=/checkpoints/k400.pt",
    *(f"++roots.{name}=/data/{name}" for name in CLIPS),
]


def compose_job(preset: str, job: list[str]) -> Any:
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose("train", [f"experiment=paper/{preset}", *job, *ARGUMENTS], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def sweep(preset: str) -> list[list[str]]:
    """The jobs of a preset's sweep, in launch order (Hydra's BasicSweeper)."""
    params = compose_job(preset, []).hydra.sweeper.params
    overrides = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in params.items()])
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def job_cost(cfg: Any) -> dict[str, Any]:
    """Multiply-adds per view and the FLOPs of training, validation and test of one composed job."""
    model = {**OmegaConf.to_container(cfg.model, resolve=True), "num_classes": 400}
    macs = model_stats(build_meta_model(model))["gflops"] * 1e9
    dataset = cfg.hydra.runtime.choices.data
    train, val, test = CLIPS[dataset]
    epochs = int(cfg.trainer.max_epochs)
    temporal, spatial = (int(n) for n in str(cfg.data.test_views).split("x"))
    flops = {
        "train": 2 * 3 * macs * train * epochs,
        "val": 2 * macs * val * epochs,
        "test": 2 * macs * test * temporal * spatial,
    }
    variant = variant_of(model["_target_"]).name
    return {"dataset": dataset, "variant": variant, "gflops_per_view": macs / 1e9, "epochs": epochs, **flops}


def measured_rates(bench: Path) -> dict[str, float]:
    """Achieved training FLOP/s per variant from a bench_models.py JSON (clips/s x FLOPs per clip x 3)."""
    results = json.loads(bench.read_text())["results"]
    return {
        r["model"]: r["train_clips_per_s"] * 3 * 2 * r["gflops_per_clip"] * 1e9 for r in results if r["model"] != "hf"
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sustained-tflops", type=float, default=125.0, help="sustained training TFLOP/s per GPU")
    parser.add_argument("--bench", type=Path, help="a bench_models.py --device cuda JSON: measured rates per variant")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "paper_cost.json")
    parser.add_argument("presets", nargs="*", help="presets to count (default: all of conf/experiment/paper/)")
    args = parser.parse_args(argv)
    rates = measured_rates(args.bench) if args.bench else {}
    presets = args.presets or sorted(p.stem for p in (CONF_DIR / "experiment" / "paper").glob("*.yaml"))
    rows = []
    for preset in presets:
        jobs = [job_cost(compose_job(preset, job)) for job in sweep(preset)]
        gpu_hours = 0.0
        for job in jobs:
            rate = rates.get(job["variant"], args.sustained_tflops * 1e12)
            job["gpu_hours"] = (job["train"] + job["val"] + job["test"]) / rate / 3600
            gpu_hours += job["gpu_hours"]
        views = [job["gflops_per_view"] for job in jobs]
        rows.append(
            {
                "preset": preset,
                "jobs": len(jobs),
                "datasets": sorted({job["dataset"] for job in jobs}),
                "gflops_per_view": [min(views), max(views)],
                "pflops": sum(job["train"] + job["val"] + job["test"] for job in jobs) / 1e15,
                "gpu_hours": gpu_hours,
                "per_job": jobs,
            }
        )
    rate = "measured per variant (" + str(args.bench) + ")" if args.bench else f"{args.sustained_tflops:g} TFLOP/s"
    print(f"| preset | jobs | data | GFLOPs / view | PFLOPs | GPU-hours at {rate} |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        low, high = row["gflops_per_view"]
        span = f"{low:.0f}" if round(low) == round(high) else f"{low:.0f}-{high:.0f}"
        print(
            f"| `{row['preset']}` | {row['jobs']} | {', '.join(row['datasets'])} | {span} | "
            f"{row['pflops']:,.0f} | {row['gpu_hours']:,.0f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"sustained_tflops": None if args.bench else args.sustained_tflops, "bench": str(args.bench or "")}
    args.out.write_text(json.dumps({"meta": {**meta, "clips": CLIPS}, "presets": rows}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

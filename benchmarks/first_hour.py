"""What a new user waits for: the install, and `python train.py` cold (the embedded dataset generated first) and
warm (the dataset already there), on this machine.

    python benchmarks/first_hour.py                       # cold + 1 warm run; writes benchmarks/results/first_hour.json
    python benchmarks/first_hour.py --warm 2 --args experiment=demo_avgpool_control
    python benchmarks/first_hour.py --install gpu cpu     # also fresh venvs: install time and size (minutes, GBs)

Each run is the README's command, `python train.py`, in its own process, with data/ and outputs/ in a fresh
temporary folder (VIVIT_ROOT), W&B offline (as a user without credentials gets it). Reported per run: wall clock,
CPU seconds of the process and its children (user + system: the work, less sensitive to other load than the wall
clock), peak memory, the validation and test top-1 of metrics.json, and the load average before and after.

`--install`: `gpu` is a fresh venv with `pip install -r requirements.txt` (on Linux x86 PyPI's torch is the CUDA
build); `cpu` first installs torch and torchvision from the CPU wheel index (`--cpu-index`), as the README's quick
start does. Reported: pip's wall clock (it depends on the network and pip's cache: say which) and the venv's size.
An index that cannot be reached is recorded as such, not guessed.

The machine (CPU model, cores this process may use, memory, torch) is printed and written with the figures.
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TORCH_PINS = ("torch==", "torchvision==")


def machine() -> dict:
    """What the figures were measured on."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        model = next(
            (line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line), ""
        )
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 if hasattr(os, "sysconf") else None
    return {
        "cpu": model or platform.processor(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": round(memory, 1) if memory else None,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


def load() -> float:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else float("nan")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def train_run(name: str, root: Path, args: list[str]) -> dict:
    """One `python train.py` in its own process, data/ and outputs/ under `root`."""
    env = {**os.environ, "VIVIT_ROOT": str(root), "WANDB_MODE": "offline"}  # a user without W&B credentials
    before_cpu, before_load = children_cpu_seconds(), load()
    began = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args], cwd=root, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - began
    row = {
        "run": name,
        "command": " ".join(["python train.py", *args]),
        "returncode": result.returncode,
        "wall_s": round(wall, 1),
        "cpu_s": round(children_cpu_seconds() - before_cpu, 1),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 2),
        "load_before": before_load,
        "load_after": load(),
    }
    if result.returncode != 0:
        row["error"] = result.stderr[-2000:]
        return row
    metrics = sorted((root / "outputs").glob("*/runs/*/metrics.json"), key=lambda p: p.stat().st_mtime)[-1]
    summary = json.loads(metrics.read_text())
    row["val_top1"] = summary["val"].get("val/top1")
    row["test_top1"] = (summary.get("test") or {}).get("test/top1")
    return row


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def install(kind: str, cpu_index: str, folder: Path) -> dict:
    """A fresh venv with the README's install lines for `kind` (cpu | gpu): pip's wall clock and the venv's size."""
    venv = folder / f"venv-{kind}"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    pins = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    pins = [p for p in pins if p.startswith(TORCH_PINS)]
    steps = [[*pip, *pins, "--index-url", cpu_index, "--retries", "1"]] if kind == "cpu" else []
    steps.append([*pip, "-r", str(ROOT / "requirements.txt")])
    row = {"install": kind, "commands": [" ".join(s[3:]) for s in steps]}
    began = time.perf_counter()
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True)
        if result.returncode != 0:
            row.update(returncode=result.returncode, error=result.stderr.strip().splitlines()[-1:])
            break
    else:
        row["returncode"] = 0
    row["wall_s"] = round(time.perf_counter() - began, 1)
    row["venv_gib"] = round(folder_size(venv) / 2**30, 2)
    shutil.rmtree(venv, ignore_errors=True)
    return row


def print_table(info: dict, runs: list[dict], installs: list[dict]) -> None:
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, GPU {info['gpu']}, "
        f"torch {info['torch']}, Python {info['python']}"
    )
    if installs:
        print(f"\n{'install':<8} {'wall s':>8} {'venv GiB':>9}  result")
        for row in installs:
            result = "ok" if row["returncode"] == 0 else f"failed: {' '.join(row.get('error', []))}"
            print(f"{row['install']:<8} {row['wall_s']:>8} {row['venv_gib']:>9}  {result}")
    print(f"\n{'run':<6} {'wall s':>7} {'CPU s':>7} {'peak GiB':>9} {'val top-1':>10} {'test top-1':>11} {'load':>11}")
    for row in runs:
        accuracy = [f"{100 * row[k]:.2f}%" if row.get(k) is not None else "-" for k in ("val_top1", "test_top1")]
        print(
            f"{row['run']:<6} {row['wall_s']:>7} {row['cpu_s']:>7} {row['peak_rss_gib']:>9} {accuracy[0]:>10} "
            f"{accuracy[1]:>11} {row['load_before']:>5}->{row['load_after']:<5}"
            + ("" if row["returncode"] == 0 else f"  exit {row['returncode']}")
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warm", type=int, default=1, help="warm runs after the cold one (default 1)")
    parser.add_argument("--args", nargs="*", default=[], help="overrides for every run, e.g. seed=1")
    parser.add_argument("--install", nargs="*", choices=["cpu", "gpu"], default=[], help="also time fresh installs")
    parser.add_argument("--cpu-index", default="https://download.pytorch.org/whl/cpu", help="torch's CPU wheels")
    parser.add_argument("--no-train", action="store_true", help="only the installs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "first_hour.json")
    args = parser.parse_args(argv)

    info = machine()
    runs: list[dict] = []
    installs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="vivit-first-hour-") as tmp:
        folder = Path(tmp)
        for kind in args.install:
            installs.append(install(kind, args.cpu_index, folder))
        if not args.no_train:
            for n in range(1 + args.warm):
                runs.append(train_run("cold" if n == 0 else f"warm{n}", folder, args.args))
                print(f"{runs[-1]['run']}: {runs[-1]['wall_s']} s", file=sys.stderr, flush=True)
    print_table(info, runs, installs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {"machine": info, "measured": time.strftime("%Y-%m-%d %H:%M"), "installs": installs, "runs": runs}
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0 if all(r["returncode"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

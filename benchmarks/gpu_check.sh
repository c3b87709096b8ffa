#!/usr/bin/env bash
# The GPU check: one script, under 8 minutes on one GPU, that answers "does this framework use this GPU well?".
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        # default OUT_DIR: benchmarks/results/gpu_check
#   bash benchmarks/gpu_check.sh --cpu /tmp/gpu_check   # the same steps on the CPU at toy sizes (checks the script)
#
# 1. Model throughput: ViViT-B/16x2 at 32x224, bf16 autocast, Models 1-4 and Hugging Face's ViViT on the same
#    configuration (benchmarks/bench_models.py --device cuda): clips/s for a training step and for inference, MFU
#    against the GPU's dense bf16 peak, and the ratio to Hugging Face.
# 2. A 2-epoch DDP smoke on every GPU of the machine (train.py trainer=ddp, bf16, the embedded synthetic data):
#    exit code, wall time and the run's metrics.json.
# 3. The data loader at the GPU's consumption rate (benchmarks/bench_data.py with the cores each GPU gets, less one
#    for its training process): the clips/s the loader delivers for ViViT-B's training clips against the clips/s
#    one GPU trains ViViT-B FE at (from 1.).
# Writes OUT_DIR/gpu_check.json (the summary) beside each part's own JSON and log. Each part has its own time limit,
# so a part that fails or hangs is reported and the others still run.
set -uo pipefail
cd "$(dirname "$0")/.."

CPU_SMOKE=""
if [ "${1:-}" = "--cpu" ]; then CPU_SMOKE=1; shift; fi
OUT_DIR="${1:-benchmarks/results/gpu_check}"
PYTHON="${PYTHON:-python}"
mkdir -p "$OUT_DIR"
export WANDB_MODE="${WANDB_MODE:-disabled}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1

gpus="$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')"
if [ -n "$CPU_SMOKE" ]; then  # check the script itself without a GPU: toy sizes, the CPU
    models_args=(--device cpu --preset tiny)
    ddp_args=(trainer.accelerator=cpu trainer.devices=1 trainer.precision=32-true debug=fdr)
    data_args=(--videos 1 --clips 2 --loader-clips 4 --rounds 1 --workers 1)
    gpus=0
elif [ "${gpus:-0}" -lt 1 ]; then
    echo "gpu_check: no CUDA GPU visible to $PYTHON (torch.cuda.device_count() == 0); run it on a GPU machine." >&2
    exit 2
else
    models_args=(--device cuda)
    ddp_args=(trainer.accelerator=gpu "trainer.devices=$gpus" trainer.precision=bf16-mixed)
    workers=$(( $(nproc) / gpus - 1 )); workers=$(( workers > 1 ? workers : 1 ))  # a core for each training process
    data_args=(--workers "$workers" --videos 3 --clips 12 --loader-clips 96 --rounds 1)
fi
cores="$(nproc)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT_DIR/gpus.txt" 2>&1 || true

timed() {  # timed NAME LIMIT_S COMMAND...: run, log, and record exit code and wall seconds
    local name="$1" limit="$2" start end
    shift 2
    echo "== $name (limit ${limit}s): $*"
    start="$(date +%s%N)"
    timeout "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1
    echo "$?" > "$OUT_DIR/$name.rc"
    end="$(date +%s%N)"
    echo "$(( (end - start) / 1000000 ))" > "$OUT_DIR/$name.ms"
    tail -n 25 "$OUT_DIR/$name.log"
}

timed models 200 "$PYTHON" benchmarks/bench_models.py "${models_args[@]}" --out "$OUT_DIR/models_cuda.json"
rm -rf "$OUT_DIR/ddp_run"
timed ddp_smoke 200 "$PYTHON" train.py trainer=ddp "${ddp_args[@]}" trainer.max_epochs=2 logger=none \
    "hydra.run.dir=$OUT_DIR/ddp_run"
timed data 270 "$PYTHON" benchmarks/bench_data.py "${data_args[@]}" --out "$OUT_DIR/data_cuda.json"

"$PYTHON" - "$OUT_DIR" "$gpus" "$cores" <<'EOF'
"""Put the three parts into one JSON and one table."""
import json
import sys
from pathlib import Path

out, gpus, cores = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])


def part(name):
    return {
        "exit_code": int((out / f"{name}.rc").read_text()),
        "seconds": round(int((out / f"{name}.ms").read_text()) / 1000, 1),
    }


def read(path):
    return json.loads(path.read_text()) if path.is_file() else None


summary = {"gpus": (out / "gpus.txt").read_text().strip(), "gpu_count": gpus, "cpu_cores": cores}
models = read(out / "models_cuda.json")
summary["models"] = part("models")
if models:
    summary["models"]["config"] = models["config"]
    summary["models"]["peak_tflops"] = models["meta"].get("peak_tflops")
    summary["models"]["rows"] = {
        r["model"]: {
            "train_clips_per_s": r["train_clips_per_s"],
            "infer_clips_per_s": r.get("infer_clips_per_s"),
            "train_mfu": r.get("train_mfu"),
            "train_vs_hf": r.get("train_vs_hf"),
            "infer_vs_hf": r.get("infer_vs_hf"),
        }
        for r in models["results"]
    }
summary["ddp_smoke"] = part("ddp_smoke")
metrics = read(out / "ddp_run" / "metrics.json")
if metrics:
    summary["ddp_smoke"]["metrics"] = {k: metrics.get(k) for k in ("val", "test", "tested", "checkpoint")}
data = read(out / "data_cuda.json")
summary["data"] = part("data")
if data:
    best = max(data["rows"], key=lambda r: r.get(f"loader_w{data['setup']['workers']}_clips_s") or 0)
    loader = best.get(f"loader_w{data['setup']['workers']}_clips_s")
    summary["data"].update(workers=data["setup"]["workers"], loader_clips_per_s=loader, row=best)
    fe = (summary.get("models", {}).get("rows") or {}).get("fe")
    if fe and loader:
        summary["data"]["gpu_train_clips_per_s_fe"] = fe["train_clips_per_s"]
        summary["data"]["loader_over_gpu"] = loader / fe["train_clips_per_s"]

(out / "gpu_check.json").write_text(json.dumps(summary, indent=2))
print(f"\n{'part':<10} {'exit':>4} {'s':>7}  result")
rows = summary.get("models", {}).get("rows", {})
line = ", ".join(f"{m} {r['train_clips_per_s']:.1f} clips/s (MFU {r['train_mfu'] or 0:.0%})" for m, r in rows.items())
print(f"{'models':<10} {summary['models']['exit_code']:>4} {summary['models']['seconds']:>7}  train: {line}")
test = ((summary["ddp_smoke"].get("metrics") or {}).get("test") or {}).get("test/top1")
print(f"{'ddp_smoke':<10} {summary['ddp_smoke']['exit_code']:>4} {summary['ddp_smoke']['seconds']:>7}  test/top1 {test}")
ratio = summary["data"].get("loader_over_gpu")
print(
    f"{'data':<10} {summary['data']['exit_code']:>4} {summary['data']['seconds']:>7}  loader "
    f"{summary['data'].get('loader_clips_per_s') or 0:.1f} clips/s with {summary['data'].get('workers')} workers"
    + (f" = {ratio:.2f}x one GPU's ViViT-B FE training rate" if ratio else "")
)
print(f"wrote {out / 'gpu_check.json'}")
EOF

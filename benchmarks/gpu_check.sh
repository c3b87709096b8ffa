#!/usr/bin/env bash
# One GPU check, under 8 minutes on one GPU, one JSON (issue 18):
#   1. models: training and inference clips/s and MFU of ViViT-B 32x224 (Models 1 and 2) in bf16 against Hugging
#      Face's ViViT (benchmarks/bench_models.py, its gpu preset);
#   2. ddp: a 2-epoch DDP run of train.py on every visible GPU (synthetic data, vivit_tiny; exit code, seconds, the
#      run's metrics.json);
#   3. data: the project's video loader with as many workers as the machine gives each GPU (benchmarks/bench_data.py),
#      against the rate ViViT-B (Model 2) trains at on this GPU: can the loader feed it?
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]          # on a GPU machine; OUT_DIR default benchmarks/results/gpu_check
#   bash benchmarks/gpu_check.sh --cpu [OUT_DIR]    # the same steps, reduced, on the CPU (checks the script itself)
#
# Writes OUT_DIR/gpu_check.json (each step's exit code, seconds and results) and each step's own JSON and log.
# A step that fails or runs past its time limit is recorded as such; the others still run.
set -u
cd "$(dirname "$0")/.."
CPU=0
if [ "${1:-}" = "--cpu" ]; then CPU=1; shift; fi
OUT="${1:-benchmarks/results/gpu_check}"
mkdir -p "$OUT"
PY="${PYTHON:-python}"
export WANDB_MODE=disabled HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1

if [ "$CPU" = 1 ]; then
  GPUS=0
  MODELS=(--device cpu --preset tiny --models fe hf)
  DDP=(trainer.accelerator=cpu trainer.devices=2 threads=1)
  DATA=(--videos 1 --clips 2 --loader-clips 2 --rounds 1 --workers 1)
  LIMITS=(300 300 300)
else
  GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
  if [ "$GPUS" -lt 1 ]; then echo "no CUDA GPU visible to torch: run with --cpu to check the script" >&2; exit 2; fi
  MODELS=(--device cuda --models st fe hf --iters 10)
  DDP=(trainer.accelerator=gpu "trainer.devices=$GPUS" trainer.precision=bf16-mixed)
  WORKERS=$(( $(nproc) / GPUS )); WORKERS=$(( WORKERS > 1 ? WORKERS - 1 : 1 ))   # one core for the training process
  DATA=(--videos 4 --clips 16 --loader-clips 64 --rounds 1 --workers "$WORKERS")
  LIMITS=(240 150 150)   # seconds: models, ddp, data (8 minutes with room for start-up)
fi

step() {  # step NAME LIMIT COMMAND...: run it under a time limit, record rc and seconds in OUT/NAME.step
  local name=$1 limit=$2; shift 2
  local start; start=$(date +%s%N)
  timeout --kill-after 10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$? ms=$(( ($(date +%s%N) - start) / 1000000 ))
  printf '{"rc": %d, "seconds": %d.%03d, "limit_s": %d}\n' "$rc" $((ms / 1000)) $((ms % 1000)) "$limit" > "$OUT/$name.step"
  echo "$name: exit $rc ($(tail -n 1 "$OUT/$name.log"))"
}

step models "${LIMITS[0]}" "$PY" benchmarks/bench_models.py "${MODELS[@]}" --out "$OUT/models.json"
rm -rf "$OUT/ddp_run"
step ddp "${LIMITS[1]}" "$PY" train.py trainer=ddp "${DDP[@]}" trainer.max_epochs=2 model=vivit_tiny data=synthetic \
  data.index.num_train=64 data.index.num_val=32 data.index.num_test=32 data.batch_size=8 logger=csv \
  "hydra.run.dir=$OUT/ddp_run"
step data "${LIMITS[2]}" "$PY" benchmarks/bench_data.py "${DATA[@]}" --out "$OUT/data.json"

"$PY" - "$OUT" "$GPUS" <<'PYTHON'
"""Gather the steps into gpu_check.json: the model rates, the DDP run, the loader against the training rate."""
import json
import sys
from pathlib import Path

out, gpus = Path(sys.argv[1]), int(sys.argv[2])


def read(name):
    path = out / name
    return json.loads(path.read_text()) if path.is_file() else None


models, data = read("models.json"), read("data.json")
report = {"gpus": gpus, "steps": {name: read(f"{name}.step") for name in ("models", "ddp", "data")}}
if models:
    report["models"] = {
        "device": models["meta"]["device"],
        "config": models["config"],
        "rows": [
            {key: row.get(key) for key in ("model", "train_clips_per_s", "train_mfu", "train_vs_hf",
                                           "infer_clips_per_s", "infer_mfu", "infer_vs_hf")}
            for row in models["results"]
        ],
    }
report["ddp"] = {"metrics": read("ddp_run/metrics.json")}
if data:
    ours = [row for row in data["rows"] if row["reader"] == "ours"] if "rows" in data else []
    loader = {row["videos"]: {k: v for k, v in row.items() if k.startswith("loader_")} for row in ours}
    report["data"] = {"loader_ours": loader}
    fe = next((r for r in (models or {}).get("results", []) if r["model"] == "fe"), None)
    if fe and ours:
        need = fe["train_clips_per_s"]  # what one GPU consumes training ViViT-B (Model 2)
        best = max(v for row in ours for k, v in row.items() if k.startswith("loader_w") and k != "loader_w0_clips_s")
        report["data"].update(gpu_consumes_clips_per_s=need, loader_clips_per_s=best, loader_feeds_gpu=best >= need)
(out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")
print(json.dumps({k: report[k] for k in ("gpus", "steps")}, indent=1))
if "data" in report and "loader_feeds_gpu" in report["data"]:
    d = report["data"]
    print(f"loader {d['loader_clips_per_s']:.1f} clips/s vs GPU {d['gpu_consumes_clips_per_s']:.1f}: feeds it: {d['loader_feeds_gpu']}")
print(f"wrote {out / 'gpu_check.json'}")
PYTHON

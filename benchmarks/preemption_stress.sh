#!/usr/bin/env bash
# The requeue of a 2-task SLURM job on gloo (tests/test_preemption.py), repeated: SIGUSR1 to both ranks at
# slightly different moments, each time checking the same exit code (143) on both, one checkpoint, one
# `scontrol requeue`, and no hang (90 s limit per attempt). Prints each attempt's line and pytest's summary.
#   benchmarks/preemption_stress.sh        # 20 attempts, ~20 s each on 2 CPU cores
#   benchmarks/preemption_stress.sh 50
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
VIVIT_REQUEUE_REPEATS="${1:-20}" WANDB_MODE=disabled HF_HUB_OFFLINE=1 \
    "$PYTHON" -m pytest -q -s -p no:cacheprovider tests/test_preemption.py -k requeue_signal 2>&1 |
    grep -oE "attempt [0-9]+: .*|[0-9]+ (passed|failed).*|Error.*"

"""Check the default run's outcome (the README's promise): validation top-1 >= 90% on the synthetic set."""

import json
import sys
from pathlib import Path

runs = sorted(Path("outputs/train/runs").glob("*/metrics.json"), key=lambda p: p.stat().st_mtime)
if not runs:
    sys.exit("no outputs/train/runs/*/metrics.json: the default run did not finish")
metrics = json.loads(runs[-1].read_text())
top1 = metrics["val"]["val/top1"]
print(f"{runs[-1]}: val top-1 {100 * top1:.2f}%, test top-1 {100 * metrics['test']['test/top1']:.2f}%")
if top1 < 0.90:
    sys.exit(f"validation top-1 {100 * top1:.2f}% is below the promised 90%")

"""Evaluate a checkpoint: `python eval.py ckpt_path=PATH [eval.views=4x3] [data=...]` (README.md, conf/eval.yaml).

The clone's entry point of the task every way in shares (vivit/tasks/evaluate.py; installed: `vivit-eval`).
"""

from pathlib import Path

from vivit.tasks.evaluate import main

if __name__ == "__main__":
    main(root=Path(__file__).parent)

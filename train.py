"""Train a ViViT: `python train.py [group=option ...] [key=value ...]` (README.md, conf/train.yaml).

The clone's entry point of the task every way in shares (vivit/tasks/train.py; installed: `vivit-train`); data/ and
outputs/ go beside this file.
"""

from pathlib import Path

from vivit.tasks.train import main

if __name__ == "__main__":
    main(root=Path(__file__).parent)

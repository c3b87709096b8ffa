"""Predict: `python predict.py ckpt_path=PATH inputs=VIDEO|FOLDER|LIST [topk=5] [views=4x3]`
(docs/predict_and_export.md, conf/predict.yaml).

The clone's entry point of the task every way in shares (vivit/tasks/predict.py; installed: `vivit-predict`).
"""

from pathlib import Path

from vivit.tasks.predict import main

if __name__ == "__main__":
    main(root=Path(__file__).parent)

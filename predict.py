"""Predict: `python predict.py ckpt_path=PATH inputs=VIDEO|FOLDER|LIST [topk=5] [views=4x3]` (docs/predict.md)."""

import sys

import hydra
from omegaconf import DictConfig

from vivit.tasks import ConfigError, predict, set_project_root

set_project_root(__file__)


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    try:
        predict(cfg)
    except ConfigError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()

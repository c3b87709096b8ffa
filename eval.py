"""Evaluate a checkpoint: `python eval.py ckpt_path=PATH [eval.views=4x3] [data=...]` (see README.md)."""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from vivit.distributed import one_job
from vivit.tasks import ConfigError, evaluate, set_project_root

set_project_root(__file__)


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    try:
        with one_job():
            evaluate(cfg, overrides=list(HydraConfig.get().overrides.task))
    except ConfigError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()

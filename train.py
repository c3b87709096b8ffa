"""Train a ViViT: `python train.py [group=option ...] [key=value ...]` (see README.md and conf/train.yaml)."""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from vivit.distributed import one_job
from vivit.runs import resume_arguments
from vivit.tasks import PREEMPTED_EXIT_CODE, ConfigError, Preempted, set_project_root, train

set_project_root(__file__)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        with one_job():  # DDP: this job's ranks end with it (vivit/distributed.py)
            summary = train(cfg)
    except ConfigError as error:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # let the sweep run its other jobs; Hydra reports the failure at the end
        sys.exit(f"error: {error}")
    except Preempted as error:  # non-zero, so a scheduler does not take the run for finished
        print(f"preempted: {error}", file=sys.stderr)
        sys.exit(PREEMPTED_EXIT_CODE)
    # the value a Hydra sweeper optimises, when an experiment names one
    metric = cfg.get("optimized_metric")
    return summary.get("val", {}).get(metric) if metric else None


if __name__ == "__main__":
    try:  # resume=<run folder>: the run's overrides, its last.ckpt and its folder (vivit/runs.py)
        sys.argv = resume_arguments(sys.argv)
    except ValueError as error:
        sys.exit(f"error: {error}")
    main()

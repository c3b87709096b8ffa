"""Console commands of an installed package: vivit-train, vivit-eval, vivit-predict, vivit-convert, vivit-flops.

They are the entry points of a clone (`python train.py` ...) with the configs shipped in the wheel
(`vivit/conf`, the repository's conf/ folder). `data/` and `outputs/` go under the current directory
(`paths.root_dir`, or the environment variable VIVIT_ROOT).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from vivit import tasks
from vivit.configs import CONF_DIR


def _command(config_name: str, task: Callable[..., Any], with_overrides: bool = False) -> Callable[[], Any]:
    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)
    def main(cfg: DictConfig) -> Any:
        try:
            result = task(cfg, overrides=list(HydraConfig.get().overrides.task)) if with_overrides else task(cfg)
        except tasks.ConfigError as error:
            if HydraConfig.get().mode == RunMode.MULTIRUN:
                raise  # the sweep runs its other jobs; Hydra reports the failure at the end
            sys.exit(f"error: {error}")
        except tasks.Preempted as error:  # as train.py: non-zero, so a scheduler does not take it for finished
            print(f"preempted: {error}", file=sys.stderr)
            sys.exit(tasks.PREEMPTED_EXIT_CODE)
        metric = cfg.get("optimized_metric")  # the value a Hydra sweeper optimises
        return result.get("val", {}).get(metric) if metric and isinstance(result, dict) else None

    def run() -> Any:
        os.environ.setdefault("VIVIT_ROOT", os.getcwd())
        if config_name == "train":  # resume=<run folder>, as train.py (vivit/runs.py)
            from vivit.runs import resume_arguments

            try:
                sys.argv = resume_arguments(sys.argv)
            except ValueError as error:
                sys.exit(f"error: {error}")
        return main()

    return run


train = _command("train", tasks.train)
evaluate = _command("eval", tasks.evaluate, with_overrides=True)
predict = _command("predict", tasks.predict)


def convert() -> None:
    from vivit.convert import main

    main()


def flops() -> None:
    from vivit.flops import main

    sys.exit(main())


def export() -> None:
    from vivit.export import main

    main()

"""What every logger gets beyond the metrics: the resolved config, and on W&B the model's size and cost.

CSV and TensorBoard get the config as hparams (csv/hparams.yaml, TensorBoard's HPARAMS tab); W&B as its run config
(the Overview's Config table, filterable across runs), plus `model/params` and `model/gflops_per_view` counted
as `python -m vivit.flops` counts them (the paper's convention).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from vivit.flops import build_meta_model, model_stats


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The run's config as plain containers, interpolations resolved (Hydra's own node left out)."""
    return {key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
            for key in cfg if key != "hydra"}


def model_summary(model_cfg: Any) -> dict[str, float]:
    stats = model_stats(build_meta_model(model_cfg))
    return {"model/params": stats["params"], "model/params_m": round(stats["params_m"], 4),
            "model/gflops_per_view": round(stats["gflops"], 5), "model/tokens": stats["tokens"]}


def log_run_config(loggers: Sequence[Logger], cfg: DictConfig) -> None:
    """Hand the resolved config to every logger, and the model's parameters and GFLOPs to W&B."""
    if not loggers or rank_zero_only.rank != 0:  # other DDP ranks hold placeholder experiments
        return
    config = resolved_config(cfg)
    for logger in loggers:
        logger.log_hyperparams(config)
        if isinstance(logger, WandbLogger):
            logger.experiment.config.update(model_summary(config["model"]), allow_val_change=True)

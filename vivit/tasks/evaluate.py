"""`python eval.py ckpt_path=PATH [split=val|test] [eval.views=4x3] [data=...]` (console: vivit-eval): evaluate a
checkpoint with the paper's multi-view protocol.

Model and data come from the checkpoint's saved config unless the command line chooses them: `data=k400` (a group
choice) takes the freshly composed data config, `data.batch_size=4` (a key) edits the saved one. The whole-split
metrics, reports, predictions and (on an unlabelled split) the dataset's challenge submission come from the run's
`SplitEvaluation` (vivit.evaluation.split).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from vivit.runtime import preflight
from vivit.runtime.errors import ConfigError
from vivit.runtime.trust import check_read_back
from vivit.tracking.wandb import finish_wandb
from vivit.weights.checkpoint import plain_classes

from .build import build
from .command import hydra_job, run_command
from .train import VALIDATION_VIEWS, results, write_summary

log = logging.getLogger(__name__)
SPLITS = {"val": "validate", "test": "test"}  # eval.py's split -> the trainer's stage


def evaluate(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """Evaluate `cfg.ckpt_path` on `cfg.split` with the test protocol `eval.views` (default: the data config's).
    `overrides`: the command line's (default: Hydra's), which say what the checkpoint's config gives way to."""
    weights, saved, cfg = checked_and_merged(cfg, overrides)
    split, stage = cfg.split, SPLITS[cfg.split]
    if split == "val" and cfg.eval.get("views"):
        log.warning(
            "eval.views=%s applies to the test split; split=val scores the centre clip (docs/protocol.md)",
            cfg.eval.views,
        )
    model = (saved.get("resolved") or {}).get("model")
    run = build(cfg, stage, preflight.Checkpoint(str(cfg.ckpt_path), weights, model, "evaluate"))
    run.module.net.load_state_dict(weights)
    check_class_names(saved.get("classes"), plain_classes(run.datamodule.index.classes), cfg.ckpt_path)
    output_dir = Path(cfg.paths.output_dir)
    evaluate_split = run.trainer.validate if split == "val" else run.trainer.test
    try:
        summary = {
            "output_dir": str(output_dir),
            "checkpoint": str(cfg.ckpt_path),
            "views": {split: run.test_views if split == "test" else VALIDATION_VIEWS},
            split: results(evaluate_split(run.module, datamodule=run.datamodule, verbose=False)),
        }
    finally:
        finish_wandb()
    if run.evaluation.files:
        summary["files"] = run.evaluation.files
    summary["unreadable"] = {split: run.unreadable.counts[split]}
    summary["tf32"] = run.tf32
    if split in run.evaluation.predictions:
        summary["predictions"] = run.evaluation.predictions[split]
    write_summary(summary, output_dir, run.trainer)
    return summary


def checked_and_merged(
    cfg: DictConfig, overrides: list[str] | None = None
) -> tuple[dict[str, Any], dict[str, Any], DictConfig]:
    """The checkpoint's weights and saved config, and the config to evaluate with (the saved model and data configs
    merged in, checked as data: vivit.runtime.trust), or a one-line ConfigError."""
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise ConfigError("ckpt_path: missing. Usage: python eval.py ckpt_path=PATH/TO/best.ckpt [eval.views=4x3]")
    if cfg.split not in SPLITS:
        raise ConfigError(f"split={cfg.split}: expected one of val, test; e.g. split=val.")
    trusted = preflight.trusted(cfg)
    weights, saved = preflight.read_checkpoint_argument(cfg.ckpt_path, trusted)
    if not cfg.eval.get("merged"):  # DDP's extra ranks start from rank 0's config, already merged
        if overrides is None:
            overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
        cfg = merge_saved_config(cfg, saved, overrides, source=None if trusted else f"ckpt_path: '{cfg.ckpt_path}'")
        with open_dict(cfg):
            cfg.eval.merged = True
    return weights, saved, cfg


def check(cfg: DictConfig, output_key: str = "paths.output_dir") -> None:
    """eval.py's checks before its run folder is made: the checkpoint, its saved config, then the merged config's."""
    _, _, merged = checked_and_merged(cfg)
    preflight.check_before_work(merged, SPLITS[merged.split], output_key)


job = hydra_job(evaluate)  # what Hydra runs for each job of `eval` (a SLURM sweep's launcher pickles it)


def main(root: str | Path | None = None) -> Any:
    """The command: `python eval.py`, `vivit-eval`, `python -m vivit.tasks.evaluate` (vivit.tasks.command)."""
    return run_command("eval", job, root, check=check)


# Checkpoints made before the data package moved under `vivit` name it by its old top-level name.
OLD_PACKAGES = {"datamodules.": "vivit.datamodules."}


def upgraded_targets(node: Any) -> Any:
    """A saved config with the `_target_`s of older checkpoints renamed to where those classes live now."""
    if isinstance(node, dict):
        return {
            k: (_renamed(v) if k == "_target_" and isinstance(v, str) else upgraded_targets(v)) for k, v in node.items()
        }
    if isinstance(node, list):
        return [upgraded_targets(v) for v in node]
    return node


def _renamed(target: str) -> str:
    for old, new in OLD_PACKAGES.items():
        if target.startswith(old):
            return new + target[len(old) :]
    return target


def merge_saved_config(
    cfg: DictConfig, saved: dict[str, Any], overrides: list[str], source: str | None = None
) -> DictConfig:
    """Take model and data from the checkpoint unless the command line chose them (see the module docstring).
    `source` (the checkpoint, for messages): the saved configs are data, checked before they are merged
    (vivit.runtime.trust); None: trusted, merged as they are."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    cfg = cfg.copy()
    for group in ("model", "data"):
        if any(o.key_or_group == group for o in parsed):
            continue
        if group not in saved["source"]:
            raise ConfigError(
                f"{group}: the checkpoint does not say which {group} it was made for; "
                f"choose one on the command line, e.g. `{group}=...` (see conf/{group}/)."
            )
        plain = upgraded_targets(saved["source"][group])
        if source is not None:
            check_read_back(plain, f"vivit_config.source.{group}", source, group=group)
        node = OmegaConf.create(plain)
        for o in parsed:
            if o.key_or_group.startswith(group + "."):
                OmegaConf.update(node, o.key_or_group[len(group) + 1 :], o.value(), force_add=True)
        cfg[group] = node
    return cfg


def check_class_names(saved: Any, data: Any, ckpt_path: str) -> None:
    """Warn when the checkpoint's classes are not the data's, in the same order: its metrics would be wrong."""
    if saved is None or saved == data:
        return
    heads = saved.items() if isinstance(saved, dict) else [("", saved)]
    for head, names in heads:
        other = data.get(head, []) if isinstance(data, dict) else data
        first = next((i for i, (a, b) in enumerate(zip(names, other)) if a != b), min(len(names), len(other)))
        log.warning(
            "ckpt_path: '%s' was trained on other classes than the data's%s: label %d is %r in the "
            "checkpoint, %r in the data (%d vs %d classes); metrics compare different names.",
            ckpt_path,
            f" ({head})" if head else "",
            first,
            names[first] if first < len(names) else None,
            other[first] if first < len(other) else None,
            len(names),
            len(other),
        )
        return


if __name__ == "__main__":
    main()

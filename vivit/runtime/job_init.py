"""Which weights a training run starts from: `model.init`, chosen per job in a sweep and checked before any work.

- `init_per_job: {key: K, inits: {value: init}}` picks each job's model.init by its value of K: a config group
  (its choice: `model` -> `vivit_b_fe`, `recipe` -> `epic100`) or a dotted config key (`model.temporal_depth`).
  Every value the sweep takes needs an entry; an entry may be `${model.init}` (the preset's own). The two-stage
  presets name their first stage's job folders by what they ran (`hydra.sweep.subdir`), so a second-stage entry
  is `${hydra:sweep.dir}/k400_${hydra:runtime.choices.model}`.
- A folder is a run of train.py (its final model, `checkpoints/last.ckpt`, the weights it tested) or a sweep (the
  job there that ran the same `model` config and has a final model).
- `none` starts from random weights on purpose; with `init_required` (set by the paper recipes, which all start
  from ImageNet-21k or Kinetics weights) an empty model.init is refused in one line.

`apply_model_init(cfg)` writes the chosen file into `cfg.model.init` before anything is built, as `global_batch`
derives the accumulation, so the run's config, checkpoints and loggers name the weights that were loaded; it then
clears `init_per_job` (consumed: DDP's extra ranks start from the derived config, vivit/runtime/ranks.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from .errors import ConfigError
from .resume import LAST

NO_INIT = "none"  # model.init=none: random weights, said on purpose
_ABSENT = object()


def apply_model_init(cfg: DictConfig) -> str | None:
    """Derive `cfg.model.init` for a run that starts training (see the module doc); returns a line saying where a
    derived init came from, or None. Raises ConfigError naming the key for an init it cannot find."""
    model = cfg.get("model")
    if model is None:
        return None
    init, origin = model.get("init"), None
    per_job = cfg.get("init_per_job")
    if per_job:
        key = per_job_key(per_job)
        value = job_value(cfg, key)
        inits = {str(k): v for k, v in (per_job.get("inits") or {}).items()}
        if value not in inits:
            raise ConfigError(
                f"init_per_job.inits: no entry for {key}={value} (entries: {', '.join(inits) or 'none'}); add "
                f"init_per_job.inits.{value}=<checkpoint, run or sweep folder, timm name, or none>"
            )
        init, origin = inits[value], f"init_per_job: {key}={value}"
    if init not in (None, "", NO_INIT) and Path(str(init)).is_dir():
        folder, init = str(init), str(final_checkpoint(Path(str(init)), cfg))
        origin = ", ".join(filter(None, [origin, f"the final model of {folder}"]))
    if cfg.get("init_required") and init in (None, ""):
        raise ConfigError(
            "model.init: this paper recipe starts from pretrained weights (ImageNet-21k or Kinetics, "
            "init_required) and none are named; set model.init=<timm ViT name, weights file, checkpoint, run or "
            "sweep folder>, or model.init=none to train from random weights"
        )
    with open_dict(cfg):
        cfg.model.init = init
        if per_job:
            cfg.init_per_job = None
    return f"model.init = {init} ({origin})" if origin else None


def per_job_key(per_job: DictConfig) -> str:
    key = per_job.get("key")
    if not key:
        raise ConfigError(
            "init_per_job.key: not set; name the config group or key that tells the sweep's jobs apart "
            "(e.g. init_per_job.key=model)"
        )
    return str(key)


def job_value(cfg: DictConfig, key: str) -> str:
    """This job's value of `key`: its choice of the config group `key`, else the config's value at `key`."""
    if HydraConfig.initialized():
        choices = HydraConfig.get().runtime.choices
        if key in choices:
            return str(choices[key])
    value = OmegaConf.select(cfg, key, default=_ABSENT)
    if value is _ABSENT:
        raise ConfigError(f"init_per_job.key={key}: neither a config group nor a config key of this run")
    return str(value)


def final_checkpoint(folder: Path, cfg: DictConfig) -> Path:
    """The final model of a run folder, or of the job of a sweep folder that ran this run's model config."""
    if (folder / LAST).is_file():
        return folder / LAST
    jobs = sweep_jobs(folder)
    if not jobs:
        raise ConfigError(
            f"model.init={folder}: neither a run folder with {LAST} nor a sweep folder with finished jobs"
        )
    model = job_value(cfg, "model") if HydraConfig.initialized() else None
    same = [job for job, choices in jobs.items() if choices.get("model") == model]
    if len(same) != 1:
        found = ", ".join(f"{job.name} (model={choices.get('model')})" for job, choices in jobs.items())
        what = "no job" if not same else f"{len(same)} jobs"
        raise ConfigError(
            f"model.init={folder}: {what} of that sweep ran model={model} (finished jobs: {found}); "
            "give the job's folder instead"
        )
    return same[0] / LAST


def sweep_jobs(folder: Path) -> dict[Path, dict[str, Any]]:
    """The jobs of a sweep folder that have a final model, with their config group choices (.hydra/hydra.yaml)."""
    jobs = {}
    for hydra_file in sorted(folder.glob("*/.hydra/hydra.yaml")):
        job = hydra_file.parents[1]
        if (job / LAST).is_file():
            choices = OmegaConf.select(OmegaConf.load(hydra_file), "hydra.runtime.choices", default=None) or {}
            jobs[job] = {str(k): v for k, v in choices.items()}
    return jobs

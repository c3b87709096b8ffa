"""Checks made before any work (the run folder, dataset generation, decoding, the first step): each mistake is one
line naming the config key or the file, instead of a traceback after an epoch.

`check_before_work(cfg, stage)` runs before Hydra makes the run folder (vivit.tasks.command) and again first in
`vivit.tasks.build.build`: the schema of every key, the `_target_`s' arguments and the hardware
(vivit.runtime.schema), output and checkpoint folders writable, the data root a folder, the model buildable, a
`model.init` file readable as data, a gradient clipping
scope the strategy and precision allow, and for `train.py ckpt_path=` a complete training checkpoint.
`check_fits(net, checkpoint, cfg)` runs once the model is built, before the data: the checkpoint to resume or
evaluate must fit the model config, and the message names the model keys that differ.
`read_checkpoint_argument` reads the checkpoint eval.py and predict.py are given, or says in one line why not.
Every file is read with `weights_only=True` (vivit.common.files) unless the command line says `trusted=true`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from vivit.common.files import NotPlainData, load_torch_file
from vivit.models import INIT_KEYS
from vivit.models.flops import build_meta_model
from vivit.weights.checkpoint import VIDEO_CHECKPOINT_SUFFIXES, backbone_weights, read_checkpoint

from .errors import ConfigError, reported_as
from .schema import check_run_config
from .trust import check_read_back

TORCH_FILE_SUFFIXES = (*VIDEO_CHECKPOINT_SUFFIXES, ".pth", ".bin")  # pickled by torch.save: read as data

RESUME_KEYS = ("state_dict", "optimizer_states", "loops")  # what Lightning needs to continue a run


@dataclass
class Checkpoint:
    """What the fit check needs of a checkpoint: its backbone's tensors (`net.` stripped) and saved model config."""

    path: str
    weights: dict[str, torch.Tensor]
    model: dict[str, Any] | None  # vivit_config.resolved.model, when the file has it
    purpose: str  # "resume" or "evaluate": the advice differs
    global_step: int | None = None  # where a resumed run's logs continue from (None: unknown)


def check_before_work(cfg: DictConfig, stage: str, output_key: str = "paths.output_dir") -> Checkpoint | None:
    """Raise a one-line ConfigError for a mistake that would otherwise surface after work; for `train.py
    ckpt_path=`, return the checkpoint (read without its tensors' data) for `check_fits`. `output_key`: the key
    to name for the run folder (before Hydra makes it: `paths.log_dir`, or `hydra.run.dir` when given)."""
    check_run_config(cfg)
    for key, folder in _output_folders(cfg, stage, output_key):
        check_writable(folder, key)
    check_data_root(cfg)
    fresh = stage == "fit" and not cfg.get("ckpt_path")
    check_model(cfg)
    if fresh:
        check_init_file(cfg)
    _check_grad_clip_scope(cfg)
    if stage == "fit" and cfg.get("ckpt_path"):  # `train=false ckpt_path=...` only tests it: weights suffice
        return read_resume_checkpoint(str(cfg.ckpt_path), resume=cfg.get("train", True), trusted=trusted(cfg))
    return None


def trusted(cfg: DictConfig) -> bool:
    """`trusted=true` on the command line: files may pickle any object (see vivit.runtime.trust)."""
    return bool(cfg.get("trusted", False))


def _output_folders(cfg: DictConfig, stage: str, output_key: str) -> list[tuple[str, str]]:
    """(config key, folder) of everything the run writes: its folder, the callbacks' and loggers' folders."""
    folders = [(output_key, cfg.paths.output_dir)]
    groups = ("callbacks", "logger") if stage == "fit" else ("logger",)
    for group in groups:
        for name, node in (cfg.get(group) or {}).items():
            if isinstance(node, DictConfig) and "_target_" in node:
                for field in ("dirpath", "output_dir", "save_dir"):
                    if node.get(field):
                        folders.append((f"{group}.{name}.{field}", node[field]))
    return [(key, str(folder)) for key, folder in folders]


def check_writable(folder: str | Path, key: str) -> None:
    """`folder` exists and takes a new file, or can be created: checked on its nearest existing parent, so
    nothing is created here."""
    path = Path(folder).expanduser().absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        reason = f"'{existing}' is a file, not a folder"
    else:
        try:
            with tempfile.TemporaryFile(dir=existing):
                return
        except OSError as error:
            reason = f"'{existing}' is not writable ({error.strerror or error})"
    raise ConfigError(f"{key}: cannot write to '{path}': {reason}; set {key}=... to a folder you can write to.")


def check_data_root(cfg: DictConfig) -> None:
    """`data.root`, when it exists, is a folder (a release, or where the synthetic set is generated)."""
    root = OmegaConf.select(cfg, "data.root", default=None)
    if isinstance(root, str) and Path(root).expanduser().is_file():
        raise ConfigError(
            f"data.root={root}: a file, not a folder; set data.root to the dataset's folder (for a list of videos "
            "see data=folder in docs/data.md)."
        )


def check_model(cfg: DictConfig) -> None:
    """The model config builds (on the meta device: no memory, no time): the registry's class, keys it takes, and
    the model's own checks (geometry, heads, rates), each a line naming its `model.` key."""
    if not isinstance(cfg.get("model"), DictConfig):
        return
    with reported_as("model"):
        config = OmegaConf.to_container(cfg.model, resolve=True)
        classes = OmegaConf.select(cfg, "data.num_classes", default=None)
        build_meta_model({**config, "num_classes": classes or 2})  # the data decides the classes: any count builds


def check_init_file(cfg: DictConfig) -> None:
    """`model.init`, when it is a local PyTorch file, is there and holds tensors and plain containers only (or
    `trusted=true`): read as data now, not after the dataset is generated."""
    init = OmegaConf.select(cfg, "model.init", default=None)
    if not isinstance(init, str) or Path(init).suffix not in TORCH_FILE_SUFFIXES:
        return  # a timm name, a .safetensors or .npz file: nothing to unpickle
    if not Path(init).expanduser().is_file():
        raise ConfigError(f"model.init={init}: no such file; give a weights file, a checkpoint or a timm model name.")
    try:
        load_torch_file(Path(init).expanduser(), mmap=True, trusted=trusted(cfg))
    except ValueError as error:  # NotPlainData (not trusted), not a torch file, truncated
        raise ConfigError(f"model.init: {error}") from error


def _check_grad_clip_scope(cfg: DictConfig) -> None:
    """Clipping each device batch's gradient needs whole, unscaled gradients on every device."""
    if (cfg.get("module") or {}).get("grad_clip_scope") != "device_batch":
        return
    trainer = cfg.get("trainer") or {}
    strategy, precision = str(trainer.get("strategy", "")), str(trainer.get("precision", ""))
    if "fsdp" in strategy.lower():
        raise ConfigError(
            "optim.grad_clip_scope=device_batch: FSDP shards the gradients, so no device holds a batch's whole "
            "gradient to clip; use optim.grad_clip_scope=global with trainer=fsdp."
        )
    if precision.startswith("16"):
        raise ConfigError(
            f"optim.grad_clip_scope=device_batch: trainer.precision={precision} scales the loss, and every "
            "micro-batch's gradient with it; use trainer.precision=bf16-mixed or 32-true."
        )


def read_resume_checkpoint(path: str, resume: bool = True, trusted: bool = False) -> Checkpoint:
    """The checkpoint `train.py ckpt_path=` resumes from, checked: present, a complete torch archive (an
    interrupted write leaves it without its zip directory), holding only tensors and plain containers (or
    `trusted`), with the state Lightning resumes (`resume`; else weights suffice). Tensors are memory-mapped."""
    if not Path(path).is_file():
        raise ConfigError(
            f"ckpt_path: no checkpoint file at '{path}'; pass the last.ckpt of a train.py run "
            "(outputs/train/runs/<time>/checkpoints/last.ckpt)."
        )
    try:
        checkpoint = load_torch_file(path, mmap=True, trusted=trusted)
    except NotPlainData as error:  # objects beyond tensors: Lightning would unpickle them (and run their code)
        raise ConfigError(f"ckpt_path: {error}.") from error
    except ValueError as error:  # not a torch file, truncated, damaged
        raise ConfigError(f"ckpt_path: {error}; resume from an earlier checkpoint of the run.") from error
    needed = RESUME_KEYS if resume else RESUME_KEYS[:1]
    missing = [key for key in needed if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing and resume:
        raise ConfigError(
            f"ckpt_path: '{path}' is not a training checkpoint (no {', '.join(missing)}), so a run "
            "cannot resume from it; to start a new run from its weights use model.init=PATH, to test "
            "it eval.py."
        )
    if missing:
        raise ConfigError(f"ckpt_path: '{path}' holds no weights (no state_dict); pass a checkpoint of a train.py run.")
    model = ((checkpoint.get("vivit_config") or {}).get("resolved") or {}).get("model")
    return Checkpoint(path, backbone_weights(checkpoint), model, "resume", int(checkpoint.get("global_step", 0)))


def check_fits(net: torch.nn.Module, checkpoint: Checkpoint, cfg: DictConfig) -> None:
    """The checkpoint's backbone weights have the model's names and shapes; else one line naming the model keys
    that differ from the checkpoint's saved config (or the first parameter that differs)."""
    if not checkpoint.weights:
        return
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in checkpoint.weights.items()}
    if expected == found:
        return
    differences = _config_differences(cfg, checkpoint.model, net.num_classes)
    if not differences:
        name = next((k for k in expected if k in found and expected[k] != found[k]), None)
        if name is not None:
            differences = [f"{name} is {expected[name]} here, {found[name]} in the checkpoint"]
        else:
            extra, lacking = sorted(found.keys() - expected.keys()), sorted(expected.keys() - found.keys())
            differences = [
                f"{len(lacking)} weights not in the checkpoint (e.g. {lacking[0]})"
                if lacking
                else f"{len(extra)} checkpoint weights not in the model (e.g. {extra[0]})"
            ]
    advice = (
        "resume with the model config the run was trained with (the same model=... and model.* overrides)"
        if checkpoint.purpose == "resume"
        else "leave the model keys off the command line: eval.py takes the model config from the checkpoint"
    )
    raise ConfigError(
        f"model: the model config does not fit the checkpoint '{checkpoint.path}': "
        f"{'; '.join(differences[:3])}; {advice}."
    )


def _config_differences(cfg: DictConfig, saved: dict[str, Any] | None, num_classes: Any) -> list[str]:
    """The model keys whose value here (the config, and the number of classes the data gave) is not the one the
    checkpoint was made with."""
    if not saved:
        return []
    current = {**OmegaConf.to_container(cfg.model, resolve=True), "num_classes": num_classes}
    keys = [k for k in sorted(set(current) | set(saved)) if k not in INIT_KEYS]
    return [
        f"model.{k}={current.get(k)!r} here, {saved.get(k)!r} in the checkpoint"
        for k in keys
        if current.get(k) != saved.get(k)
    ]


def read_checkpoint_argument(ckpt_path: str, trusted: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The backbone weights and the config of the checkpoint that eval.py or predict.py were given (a train.py
    checkpoint or a converted file), or a ConfigError. Its config is data: the model it names must be one of the
    registry (vivit.runtime.trust), unless `trusted`."""
    try:
        weights, config = read_checkpoint(ckpt_path, trusted)
    except FileNotFoundError as error:
        raise ConfigError(
            f"ckpt_path: no checkpoint file at '{ckpt_path}'. Pass the .ckpt of a train.py run "
            "(outputs/train/runs/<time>/checkpoints/) or a file made by `python -m vivit.convert`."
        ) from error
    except ValueError as error:  # not a torch file, damaged, not a dict, no net.* weights, objects beyond tensors
        raise ConfigError(f"ckpt_path: '{ckpt_path}' cannot be used: {error}") from error
    if not config:
        raise ConfigError(
            f"ckpt_path: '{ckpt_path}' holds no ViViT config (key 'vivit_config'); "
            "it was not written by train.py or vivit.convert."
        )
    if not trusted:
        for part in ("source", "resolved"):
            model = (config.get(part) or {}).get("model")
            check_read_back(model, f"vivit_config.{part}.model", f"ckpt_path: '{ckpt_path}'", group="model")
    return weights, config

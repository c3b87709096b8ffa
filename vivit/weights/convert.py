"""Convert official ViViT checkpoints to this project's self-describing checkpoint layout.

    python -m vivit.convert hf SRC OUT.pt [--model NAME] [key=value ...]
    python -m vivit.convert scenic SRC OUT.pt --model NAME [key=value ...]

`hf`: SRC is a Hugging Face ViViT directory (config.json + model.safetensors or pytorch_model.bin), a single
weights file, or a hub name (`google/vivit-b-16x2-kinetics400`: downloaded with huggingface_hub, or read from its
cache offline). The model config is `--model NAME` (a zoo name, default vivit_b_st) with the geometry of
config.json (hidden size, layers, heads, tubelet, image size, frames, labels), then the `key=value` overrides.

`scenic`: SRC is an official Scenic/Flax `checkpoint` file (flax msgpack), any of the four variants, read without
jax or flax. The model config is `--model NAME` (a zoo name, vivit.models.model_names()) plus `key=value`
overrides (e.g. `num_classes=400 temporal_depth=4`); `num_classes` defaults to the checkpoint's classifier size.

OUT holds `{"vivit_config": {"source": {"model": cfg}, "resolved": {"model": cfg}}, "state_dict": {"net.*": ...}}`,
the layout of a train.py checkpoint: `python eval.py ckpt_path=OUT.pt data=k400` evaluates it and
`vivit.load_checkpoint(OUT.pt)` returns the model. The converted models expect clips (B, C, T, H, W) in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from vivit.models import build_model, model_config

from .checkpoint import save_checkpoint
from .hf import Origins, hf_classes, hf_overrides, hub_snapshot, read_hf, rename_hf
from .scenic import read_msgpack, rename_scenic, scenic_params


def convert_hf(src: str | Path, out: str | Path, model: str | None = None, overrides: Sequence[str] = ()) -> nn.Module:
    """Convert a Hugging Face ViViT (Model 1) checkpoint (a folder, a weights file or a hub name such as
    google/vivit-b-16x2-kinetics400); returns the converted model (eval mode)."""
    src = hub_snapshot(src)
    state, config = read_hf(src)
    renamed, dropped, origins = rename_hf(state)
    if "head.weight" not in renamed:
        raise ValueError(
            f"'{src}' has no classifier (`classifier.weight`): convert a VivitForVideoClassification checkpoint."
        )
    derived = hf_overrides(config, f"{src}/config.json") if config else []
    if config is None and model is None:
        raise ValueError(
            f"'{src}' has no config.json next to it: pass --model NAME (e.g. vivit_b_st) and the "
            "geometry as key=value overrides."
        )
    classes = hf_classes(config, f"{src}/config.json") if config else None
    return build_converted(
        renamed, origins, model or "vivit_b_st", [*derived, *overrides], out, str(src), classes=classes
    )


def convert_scenic(
    src: str | Path, out: str | Path, model: str, overrides: Sequence[str] = (), classes: Sequence[str] | None = None
) -> nn.Module:
    """Convert an official Scenic ViViT checkpoint (any variant); returns the converted model (eval mode)."""
    params = scenic_params(read_msgpack(src), f"'{src}'")
    state, origins, unknown, heads = rename_scenic(params)
    if unknown:
        raise ValueError(
            f"'{src}': Scenic parameters with no place in the ViViT models: {', '.join(unknown)} "
            "(a pre_logits layer, representation_size, is not supported)."
        )
    return build_converted(state, origins, model, list(overrides), out, str(src), heads, classes)


def read_class_names(path: str | Path) -> list[str]:
    """A class-names file: one name per line, in label order (blank lines ignored)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--classes: no file at '{path}' (expected one class name per line, in label order).")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def config_with(name: str, overrides: Sequence[str]) -> dict[str, Any]:
    """The zoo config of model `name` with `key=value` overrides (values as in YAML; `model.` and a leading `+`
    are accepted, as on train.py's command line). A key the config does not have is an error, except `+key`."""
    config = model_config(name)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} is not of the form key=value (e.g. img_size=288).")
        adds = key.startswith("+")
        key = key.removeprefix("+").removeprefix("model.")
        if key not in config and key != "num_classes" and not adds:
            raise ValueError(
                f"{name} has no key {key!r} (to add one, write +{key}=...); its keys: "
                f"{', '.join(k for k in config if k != '_target_')}."
            )
        try:
            config[key] = OmegaConf.to_container(OmegaConf.from_dotlist([f"value={value}"]))["value"]
        except OmegaConfBaseException as error:
            raise ValueError(f"override {item!r}: {error}") from error
    return config


def build_converted(
    state: dict[str, torch.Tensor],
    origins: Origins,
    name: str,
    overrides: list[str],
    out: str | Path,
    where: str,
    heads: set[int] | None = None,
    classes: Sequence[str] | None = None,
) -> nn.Module:
    """Build the model of zoo config `name` + overrides, check the converted weights fit it, load them, save OUT."""
    config = config_with(name, overrides)
    if "num_classes" not in config and "head.weight" in state:
        config["num_classes"] = int(state["head.weight"].shape[0])  # the checkpoint's classifier
    if "num_classes" not in config:
        raise ValueError(f"{where}: no classifier to take the number of classes from; set num_classes=...")
    if heads and heads != {config["num_heads"]}:
        raise ValueError(
            f"{where}: the checkpoint's attention has {sorted(heads)} heads, the model config "
            f"num_heads={config['num_heads']}; set num_heads={min(heads)}."
        )
    if classes is not None and len(classes) != config["num_classes"]:
        raise ValueError(
            f"{where}: {len(classes)} class names for a classifier of {config['num_classes']} classes; "
            "give one name per class, in label order."
        )
    model = build_model(config)
    check_state(model, state, origins, where)
    model.load_state_dict(state)
    save_checkpoint(out, model.state_dict(), config, config, list(classes) if classes is not None else None)
    return model.eval()


def check_state(model: nn.Module, state: Mapping[str, torch.Tensor], origins: Origins, where: str) -> None:
    """Raise one error naming every missing, unexpected and mis-shaped parameter (ours and the source's names)."""
    target = model.state_dict()

    def origin(name: str) -> str:
        return ", ".join(f"{n} {s}" for n, s in origins.get(name, []))

    missing = [n for n in target if n not in state]
    unexpected = [f"{n} (from {origin(n)})" for n in state if n not in target]
    mismatched = [
        f"{n}: model {tuple(target[n].shape)}, converted {tuple(v.shape)} from {origin(n)}"
        for n, v in state.items()
        if n in target and v.shape != target[n].shape
    ]
    if missing or unexpected or mismatched:
        lines = [f"{where} does not fit {type(model).__name__}:"]
        lines += [f"  missing from the checkpoint: {', '.join(missing)}"] if missing else []
        lines += [f"  not in the model: {', '.join(unexpected)}"] if unexpected else []
        lines += [f"  shape mismatch: {m}" for m in mismatched]
        lines.append(
            "Pick the --model of the checkpoint's variant and size, and override what differs "
            "(e.g. num_classes=400 temporal_depth=4 num_frames=32)."
        )
        raise ValueError("\n".join(lines))

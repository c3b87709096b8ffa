"""Convert official ViViT checkpoints to this project's self-describing checkpoint layout.

    python -m vivit.convert hf SRC OUT.pt [--model NAME] [key=value ...]
    python -m vivit.convert scenic SRC OUT.pt --model NAME [key=value ...]

`hf`: SRC is a Hugging Face ViViT directory (config.json + model.safetensors or pytorch_model.bin), a single
weights file, or a hub name (`google/vivit-b-16x2-kinetics400`: downloaded with huggingface_hub, or read from its
cache offline), with the names of transformers < 5.9 (`encoder.layer.N.attention.attention.query`) or >= 5.9
(`layers.N.attention.q_proj`). The model config is `--model NAME` (default vivit_b_st) with the geometry of
config.json (hidden size, layers, heads, tubelet, image size, frames, labels), then the `key=value` overrides.

`scenic`: SRC is an official Scenic/Flax `checkpoint` file (flax msgpack), any of the four variants, read without
jax or flax. The model config is `--model NAME` (a conf/model name) plus `key=value` overrides (e.g.
`num_classes=400 temporal_depth=4`); `num_classes` defaults to the checkpoint's classifier size.

OUT holds `{"vivit_config": {"source": {"model": cfg}, "resolved": {"model": cfg}}, "state_dict": {"net.*": ...}}`,
the layout of a train.py checkpoint: `python eval.py ckpt_path=OUT.pt data=k400` evaluates it and
`vivit.load_checkpoint(OUT.pt)` returns the model. The converted models expect clips (B, C, T, H, W) in [-1, 1].
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import torch
from torch import nn

from vivit.checkpoint import build_model, read_state_dict, save_checkpoint
from vivit.configs import compose_model_config
Origins = dict[str, list[tuple[str, tuple[int, ...]]]]  # our parameter -> [(source name, source shape)]


# ----------------------------------------------------------------------------------------------- Hugging Face
_LAYER = r"^(?:encoder\.layer|layers)\.(\d+)\."
HF_RULES = [  # (old or new Hugging Face name, timm-style name); q/k/v are fused afterwards
    (r"^embeddings\.cls_token$", "cls_token"),
    (r"^embeddings\.position_embeddings$", "pos_embed"),
    (r"^embeddings\.patch_embeddings\.projection\.(weight|bias)$", r"patch_embed.proj.\1"),
    (_LAYER + r"layernorm_before\.(weight|bias)$", r"blocks.\1.norm1.\2"),
    (_LAYER + r"attention\.(?:attention\.query|q_proj)\.(weight|bias)$", r"blocks.\1.attn.q.\2"),
    (_LAYER + r"attention\.(?:attention\.key|k_proj)\.(weight|bias)$", r"blocks.\1.attn.k.\2"),
    (_LAYER + r"attention\.(?:attention\.value|v_proj)\.(weight|bias)$", r"blocks.\1.attn.v.\2"),
    (_LAYER + r"attention\.(?:output\.dense|o_proj)\.(weight|bias)$", r"blocks.\1.attn.proj.\2"),
    (_LAYER + r"layernorm_after\.(weight|bias)$", r"blocks.\1.norm2.\2"),
    (_LAYER + r"(?:intermediate\.dense|mlp\.fc1)\.(weight|bias)$", r"blocks.\1.mlp.fc1.\2"),
    (_LAYER + r"(?:output\.dense|mlp\.fc2)\.(weight|bias)$", r"blocks.\1.mlp.fc2.\2"),
    (r"^layernorm\.(weight|bias)$", r"norm.\1"),
    (r"^classifier\.(weight|bias)$", r"head.\1"),
]
HF_UNUSED = r"^pooler\."  # VivitModel's pooler: not part of the classification model
TANH_GELUS = ("gelu_fast", "gelu_new", "gelu_pytorch_tanh")  # all 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))


def rename_hf(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str], Origins]:
    """Hugging Face ViViT (or ViT) names -> ours: (renamed state, dropped names, origins).

    Names no rule knows are kept as they are, so the strict load that follows reports them.
    """
    renamed: dict[str, torch.Tensor] = {}
    origins: Origins = {}
    dropped = []
    for key, value in state.items():
        name = re.sub(r"^(vivit|vit)\.", "", key)
        if re.match(HF_UNUSED, name):
            dropped.append(key)
            continue
        for pattern, replacement in HF_RULES:
            if re.match(pattern, name):
                name = re.sub(pattern, replacement, name)
                break
        renamed[name] = value
        origins[name] = [(key, tuple(value.shape))]
    # HF keeps query, key and value as three Linear layers; ours is one `qkv` with rows [q; k; v].
    for name in [n for n in renamed if re.search(r"\.attn\.q\.(weight|bias)$", n)]:
        parts = [name.replace(".attn.q.", f".attn.{x}.") for x in "qkv"]
        if all(p in renamed for p in parts):
            fused = name.replace(".attn.q.", ".attn.qkv.")
            renamed[fused] = torch.cat([renamed.pop(p) for p in parts])
            origins[fused] = [o for p in parts for o in origins.pop(p)]
    return renamed, dropped, origins


def read_hf(src: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Weights and config.json (None if there is none) of a Hugging Face directory or weights file."""
    src = Path(src)
    if src.is_dir():
        candidates = ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                      "pytorch_model.bin.index.json"]
        files = [src / c for c in candidates if (src / c).is_file()]
        if not files:
            raise FileNotFoundError(f"'{src}' has none of {candidates}: not a Hugging Face model directory.")
        weights, config_file = files[0], src / "config.json"
    elif src.is_file():
        weights, config_file = src, src.parent / "config.json"
    else:
        raise FileNotFoundError(f"No Hugging Face model at '{src}' (expected a directory or a weights file).")
    if weights.name.endswith(".index.json"):  # sharded: load every shard
        shards = sorted(set(json.loads(weights.read_text())["weight_map"].values()))
        state = {k: v for shard in shards for k, v in read_state_dict(weights.parent / shard).items()}
    else:
        state = read_state_dict(weights)
    config = json.loads(config_file.read_text()) if config_file.is_file() else None
    return state, config


def hf_overrides(config: Mapping[str, Any], where: str) -> list[str]:
    """Model-config overrides (Hydra syntax) that give our Model 1 the geometry of a Hugging Face ViViT."""
    act = config.get("hidden_act", "gelu_fast")
    if act not in TANH_GELUS:
        raise ValueError(f"{where}: hidden_act={act!r}; the ViViT models use the tanh GELU of Flax "
                         f"({', '.join(TANH_GELUS)}), so the converted model would not give the same outputs.")
    eps = config.get("layer_norm_eps", 1e-6)
    if eps != 1e-6:
        raise ValueError(f"{where}: layer_norm_eps={eps}; the ViViT models use Flax's 1e-6, so the converted model "
                         "would not give the same outputs.")
    size = config.get("image_size", 224)
    if isinstance(size, Sequence):
        if len(set(size)) != 1:
            raise ValueError(f"{where}: image_size={list(size)} is not square; the ViViT models take square crops.")
        size = size[0]
    hidden = config.get("hidden_size", 768)
    overrides = {
        "img_size": size,
        "num_frames": config.get("num_frames", 32),
        "tubelet_size": list(config.get("tubelet_size", [2, 16, 16])),
        "in_chans": config.get("num_channels", 3),
        "embed_dim": hidden,
        "depth": config.get("num_hidden_layers", 12),
        "num_heads": config.get("num_attention_heads", 12),
        "mlp_ratio": config.get("intermediate_size", 3072) / hidden,
        "qkv_bias": config.get("qkv_bias", True),
        "classifier": "token",
        "dropout": config.get("hidden_dropout_prob", 0.0),
        "attn_dropout": config.get("attention_probs_dropout_prob", 0.0),
    }
    labels = config.get("id2label") or {}
    if labels or "num_labels" in config:
        overrides["num_classes"] = len(labels) or config["num_labels"]
    return [f"{k}={json.dumps(v)}" for k, v in overrides.items()]


HUB_NAME = re.compile(r"^[\w.-]+/[\w.-]+$")  # org/name, e.g. google/vivit-b-16x2-kinetics400
HUB_FILES = ["config.json", "*.safetensors", "*.safetensors.index.json", "pytorch_model.bin*"]


def hub_snapshot(src: str | Path) -> Path:
    """A local path as it is; a hub name (org/name, not an existing path) as its snapshot folder.

    huggingface_hub downloads the files when online and reads its cache (HF_HUB_CACHE) when offline
    (HF_HUB_OFFLINE=1), so a model downloaded once converts without network.
    """
    if Path(src).exists() or not HUB_NAME.match(str(src)):
        return Path(src)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(str(src), allow_patterns=HUB_FILES))
    except LocalEntryNotFoundError as error:
        raise FileNotFoundError(f"'{src}' is not a local folder and is not in the Hugging Face cache, and the hub "
                                "cannot be reached (offline, or HF_HUB_OFFLINE=1): download it once online, or "
                                "pass the model's folder.") from error
    except HfHubHTTPError as error:
        raise FileNotFoundError(f"'{src}': the Hugging Face hub answered {error}; check the model name "
                                "(e.g. google/vivit-b-16x2-kinetics400) or your token (`hf auth login`).") from error


def convert_hf(src: str | Path, out: str | Path, model: str | None = None, overrides: Sequence[str] = ()
               ) -> nn.Module:
    """Convert a Hugging Face ViViT (Model 1) checkpoint (a folder, a weights file or a hub name such as
    google/vivit-b-16x2-kinetics400); returns the converted model (eval mode)."""
    src = hub_snapshot(src)
    state, config = read_hf(src)
    renamed, dropped, origins = rename_hf(state)
    if "head.weight" not in renamed:
        raise ValueError(f"'{src}' has no classifier (`classifier.weight`): convert a VivitForVideoClassification "
                         "checkpoint.")
    derived = hf_overrides(config, f"{src}/config.json") if config else []
    if config is None and model is None:
        raise ValueError(f"'{src}' has no config.json next to it: pass --model NAME (e.g. vivit_b_st) and the "
                         "geometry as key=value overrides.")
    classes = hf_classes(config, f"{src}/config.json") if config else None
    return _finish(renamed, origins, model or "vivit_b_st", [*derived, *overrides], out, str(src), classes=classes)


def hf_classes(config: Mapping[str, Any], where: str) -> list[str] | None:
    """config.json's `id2label` as a list in label order (None when it has none)."""
    labels = config.get("id2label")
    if not labels:
        return None
    ids = sorted(int(i) for i in labels)
    if ids != list(range(len(ids))):
        raise ValueError(f"{where}: id2label keys must be 0..{len(ids) - 1} without gaps, got {ids[:5]}...")
    return [labels[str(i)] if str(i) in labels else labels[i] for i in ids]


def read_class_names(path: str | Path) -> list[str]:
    """A class-names file: one name per line, in label order (blank lines ignored)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--classes: no file at '{path}' (expected one class name per line, in label order).")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# ----------------------------------------------------------------------------------------------- Scenic / Flax
# flax.serialization's msgpack extension types.
_EXT_NDARRAY, _EXT_COMPLEX, _EXT_SCALAR = 1, 2, 3
_CHUNKED = "__msgpack_chunked_array__"


def _decode_array(data: bytes) -> torch.Tensor | np.ndarray:
    shape, dtype, buffer = msgpack.unpackb(data, raw=True)
    dtype = dtype.decode() if isinstance(dtype, bytes) else dtype
    if dtype == "bfloat16":  # numpy has no bfloat16; torch reads it and widens it to float32
        return torch.frombuffer(bytearray(buffer), dtype=torch.bfloat16).float().reshape(shape)
    return np.frombuffer(buffer, dtype=np.dtype(dtype)).reshape(shape).copy()


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _EXT_NDARRAY:
        return _decode_array(data)
    if code == _EXT_SCALAR:
        value = _decode_array(data)
        return value.item()
    if code == _EXT_COMPLEX:
        real, imag = msgpack.unpackb(data)
        return complex(real, imag)
    return msgpack.ExtType(code, data)


def _unchunk(tree: Any) -> Any:
    """flax splits arrays over 1 GiB into {_CHUNKED: True, "shape": {...}, "chunks": {"0": ..., ...}}."""
    if not isinstance(tree, dict):
        return tree
    if tree.get(_CHUNKED):
        shape = [tree["shape"][str(i)] for i in range(len(tree["shape"]))]
        chunks = [tree["chunks"][str(i)] for i in range(len(tree["chunks"]))]
        return np.concatenate([np.asarray(c) for c in chunks]).reshape(shape)
    return {k: _unchunk(v) for k, v in tree.items()}


def read_msgpack(path: str | Path) -> dict[str, Any]:
    """A flax msgpack checkpoint as nested dicts of numpy arrays (no jax or flax needed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No Scenic checkpoint file at '{path}'.")
    try:
        tree = msgpack.unpackb(path.read_bytes(), ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except (msgpack.UnpackException, ValueError) as error:
        raise ValueError(f"'{path}' is not a flax msgpack checkpoint ({error}).") from error
    if not isinstance(tree, dict):
        raise ValueError(f"'{path}' does not hold a flax state dict (got {type(tree).__name__}).")
    return _unchunk(tree)


def _encode(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        payload = msgpack.packb((value.shape, value.dtype.name, value.tobytes("C")), use_bin_type=True)
        return msgpack.ExtType(_EXT_NDARRAY, payload)
    if isinstance(value, np.generic):
        payload = msgpack.packb(((), value.dtype.name, np.asarray(value).tobytes("C")), use_bin_type=True)
        return msgpack.ExtType(_EXT_SCALAR, payload)
    raise TypeError(f"Cannot write {type(value).__name__} to a flax msgpack checkpoint.")


def write_msgpack(tree: Mapping[str, Any], path: str | Path) -> None:
    """Write nested dicts of arrays as flax.serialization.msgpack_serialize does (arrays below 1 GiB)."""
    Path(path).write_bytes(msgpack.packb(tree, default=_encode, strict_types=True))


def scenic_params(tree: Mapping[str, Any], where: str = "checkpoint") -> dict[str, Any]:
    """The model parameters of a Scenic train state: under optimizer/target, params, or at the top level."""
    for path in (("optimizer", "target"), ("opt", "target"), ("params",), ("target",), ()):
        node: Any = tree
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping) and isinstance(node.get("params"), Mapping) and "embedding" not in node:
            node = node["params"]  # a flax.linen variables dict
        if isinstance(node, Mapping) and "embedding" in node:
            return dict(node)
    raise ValueError(f"{where}: no ViViT parameters ('embedding', ...) under optimizer/target, params or the top "
                     f"level; top-level keys: {sorted(tree)}.")


_ENCODERS = {"Transformer": "", "SpatialTransformer": "", "TemporalTransformer": "temporal_"}
_TOKENS = {"cls": "cls_token", "cls_SpatialTransformer": "cls_token", "cls_TemporalTransformer": "temporal_cls_token"}
_BLOCK_MODULES = {  # Scenic module inside encoderblock_N -> ours inside blocks.N
    "LayerNorm_0": "norm1", "LayerNorm_space": "norm1", "LayerNorm_time": "temporal_norm1",
    "LayerNorm_1": "norm2", "LayerNorm_mlp": "norm2",
    "MultiHeadDotProductAttention_0": "attn", "MultiHeadDotProductAttention_space": "attn",
    "MultiHeadDotProductAttention_time": "temporal_attn",
    "MlpBlock_0": "mlp", "MlpBlock": "mlp",
}


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _scenic_leaf(parts: list[str], value: torch.Tensor) -> tuple[str, torch.Tensor] | None:
    """One Scenic parameter -> (our name, tensor), or None if it has no place in our models."""
    leaf = parts[-1]
    if parts == ["embedding", "kernel"]:
        # Conv kernels are [t, h, w, c_in, c_out] (tubelet) or [h, w, c_in, c_out] (uniform frame sampling).
        return "patch_embed.proj.weight", value.permute(4, 3, 0, 1, 2) if value.ndim == 5 else value.permute(3, 2, 0, 1)
    if parts == ["embedding", "bias"]:
        return "patch_embed.proj.bias", value
    if len(parts) == 1 and leaf in _TOKENS:
        return _TOKENS[leaf], value
    if parts[0] == "output_projection" and len(parts) == 2:
        return f"head.{'weight' if leaf == 'kernel' else leaf}", value.T if leaf == "kernel" else value
    if parts[0] not in _ENCODERS:
        return None
    prefix = _ENCODERS[parts[0]]
    if parts[1:] == ["posembed_input", "pos_embedding"]:
        return f"{prefix}pos_embed", value
    if parts[1] == "encoder_norm" and len(parts) == 3:
        return f"{prefix}norm.{_norm_leaf(leaf)}", value
    block = re.fullmatch(r"encoderblock_(\d+)", parts[1])
    if not block or len(parts) < 4 or parts[2] not in _BLOCK_MODULES:
        return None
    module = f"{prefix}blocks.{block[1]}.{_BLOCK_MODULES[parts[2]]}"
    if parts[2].startswith("LayerNorm") and len(parts) == 4:
        return f"{module}.{_norm_leaf(leaf)}", value
    if parts[2].startswith("MlpBlock") and len(parts) == 5 and parts[3] in ("Dense_0", "Dense_1"):
        fc = "fc1" if parts[3] == "Dense_0" else "fc2"
        return f"{module}.{fc}.{'weight' if leaf == 'kernel' else leaf}", value.T if leaf == "kernel" else value
    if parts[2].startswith("MultiHead") and len(parts) == 5:
        proj = parts[3]
        if proj in ("query", "key", "value"):  # kernel (D, heads, head_dim), bias (heads, head_dim)
            weight = value.reshape(value.shape[0], -1).T if leaf == "kernel" else value.reshape(-1)
            return f"{module}.{proj}.{'weight' if leaf == 'kernel' else leaf}", weight
        if proj == "out":  # kernel (heads, head_dim, D)
            weight = value.reshape(-1, value.shape[-1]).T if leaf == "kernel" else value
            return f"{module}.proj.{'weight' if leaf == 'kernel' else leaf}", weight
    return None


def _norm_leaf(leaf: str) -> str:
    return {"scale": "weight"}.get(leaf, leaf)


def rename_scenic(params: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], Origins, list[str], set[int]]:
    """Scenic parameters -> (our state dict, origins, Scenic names with no place in our models, head counts)."""
    state: dict[str, torch.Tensor] = {}
    origins: Origins = {}
    unknown: list[str] = []
    heads: set[int] = set()
    for path, value in _flatten(params).items():
        tensor = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value).float()
        mapped = _scenic_leaf(path.split("/"), tensor)
        if mapped is None:
            unknown.append(path)
            continue
        name, tensor = mapped
        if path.endswith(("query/kernel", "key/kernel", "value/kernel")):
            heads.add(int(np.shape(value)[1]))
        state[name] = tensor.contiguous()
        origins[name] = [(path, tuple(np.shape(value)))]
    # Flax keeps query, key and value as three Dense layers; ours is one `qkv` with rows [q; k; v].
    for name in [n for n in state if re.search(r"attn\.query\.(weight|bias)$", n)]:
        parts = [name.replace(".query.", f".{x}.") for x in ("query", "key", "value")]
        if all(p in state for p in parts):
            fused = name.replace(".query.", ".qkv.")
            state[fused] = torch.cat([state.pop(p) for p in parts])
            origins[fused] = [o for p in parts for o in origins.pop(p)]
    return state, origins, unknown, heads


def convert_scenic(src: str | Path, out: str | Path, model: str, overrides: Sequence[str] = (),
                   classes: Sequence[str] | None = None) -> nn.Module:
    """Convert an official Scenic ViViT checkpoint (any variant); returns the converted model (eval mode)."""
    params = scenic_params(read_msgpack(src), f"'{src}'")
    state, origins, unknown, heads = rename_scenic(params)
    if unknown:
        raise ValueError(f"'{src}': Scenic parameters with no place in the ViViT models: {', '.join(unknown)} "
                         "(a pre_logits layer, representation_size, is not supported).")
    return _finish(state, origins, model, list(overrides), out, str(src), heads, classes)


# ----------------------------------------------------------------------------------------------- shared
def _finish(state: dict[str, torch.Tensor], origins: Origins, name: str, overrides: list[str], out: str | Path,
            where: str, heads: set[int] | None = None, classes: Sequence[str] | None = None) -> nn.Module:
    """Build the model of config `name` + overrides, check the converted weights fit it, load them, save OUT."""
    from omegaconf import OmegaConf

    cfg = compose_model_config(name, overrides)
    source = OmegaConf.to_container(cfg, resolve=False)
    if OmegaConf.is_interpolation(cfg, "num_classes") and "head.weight" in state:
        cfg.num_classes = int(state["head.weight"].shape[0])  # the checkpoint's classifier
    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except Exception as error:  # noqa: BLE001 - an interpolation only train.py's config can resolve
        raise ValueError(f"model config {name}: {error}; set the key with key=value.") from error
    if heads and heads != {resolved["num_heads"]}:
        raise ValueError(f"{where}: the checkpoint's attention has {sorted(heads)} heads, the model config "
                         f"num_heads={resolved['num_heads']}; set num_heads={min(heads)}.")
    if classes is not None and len(classes) != resolved["num_classes"]:
        raise ValueError(f"{where}: {len(classes)} class names for a classifier of {resolved['num_classes']} classes; "
                         "give one name per class, in label order.")
    model = build_model(resolved)
    check_state(model, state, origins, where)
    model.load_state_dict(state)
    save_checkpoint(out, model.state_dict(), source, resolved, list(classes) if classes is not None else None)
    return model.eval()


def check_state(model: nn.Module, state: Mapping[str, torch.Tensor], origins: Origins, where: str) -> None:
    """Raise one error naming every missing, unexpected and mis-shaped parameter (ours and the source's names)."""
    target = model.state_dict()

    def origin(name: str) -> str:
        return ", ".join(f"{n} {s}" for n, s in origins.get(name, []))

    missing = [n for n in target if n not in state]
    unexpected = [f"{n} (from {origin(n)})" for n in state if n not in target]
    mismatched = [f"{n}: model {tuple(target[n].shape)}, converted {tuple(v.shape)} from {origin(n)}"
                  for n, v in state.items() if n in target and v.shape != target[n].shape]
    if missing or unexpected or mismatched:
        lines = [f"{where} does not fit {type(model).__name__}:"]
        lines += [f"  missing from the checkpoint: {', '.join(missing)}"] if missing else []
        lines += [f"  not in the model: {', '.join(unexpected)}"] if unexpected else []
        lines += [f"  shape mismatch: {m}" for m in mismatched]
        lines.append("Pick the --model of the checkpoint's variant and size, and override what differs "
                     "(e.g. num_classes=400 temporal_depth=4 num_frames=32).")
        raise ValueError("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vivit.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("format", choices=("hf", "scenic"), help="the checkpoint's origin")
    parser.add_argument("src", help="HF directory / weights file / hub name (org/name), or the Scenic `checkpoint` file")
    parser.add_argument("out", help="the converted checkpoint to write (.pt)")
    parser.add_argument("--model", help="a conf/model name (required for scenic; hf default: vivit_b_st)")
    parser.add_argument("--classes", help="scenic: a file of class names, one per line in label order "
                        "(hf: read from config.json's id2label)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="model config overrides")
    args = parser.parse_intermixed_args(argv)  # overrides may come after --model
    try:
        if args.format == "hf":
            model = convert_hf(args.src, args.out, args.model, args.overrides)
        else:
            if not args.model:
                parser.error("scenic needs --model NAME (e.g. vivit_b_st, vivit_l_fe; see conf/model/)")
            classes = read_class_names(args.classes) if args.classes else None
            model = convert_scenic(args.src, args.out, args.model, args.overrides, classes)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    count = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out}: {type(model).__name__}, {count:,} parameters, num_classes={model.num_classes}, "
          f"{model.num_frames} frames at {model.img_size}px. Inputs: (B, C, T, H, W) in [-1, 1].")


if __name__ == "__main__":
    main()

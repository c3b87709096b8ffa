"""Official Scenic (Flax) ViViT checkpoints, read without jax or flax: the msgpack file and the parameter names.

`read_msgpack` decodes flax.serialization's msgpack (arrays as extension types, arrays over 1 GiB in chunks);
`scenic_params` finds the model parameters in a train state; `rename_scenic` maps Scenic's names and layouts (Flax
kernels are [in, out], attention kernels (D, heads, head_dim)) to this project's, for all four variants.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import torch

from .hf import Origins

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
    raise ValueError(
        f"{where}: no ViViT parameters ('embedding', ...) under optimizer/target, params or the top "
        f"level; top-level keys: {sorted(tree)}."
    )


_ENCODERS = {"Transformer": "", "SpatialTransformer": "", "TemporalTransformer": "temporal_"}
_TOKENS = {"cls": "cls_token", "cls_SpatialTransformer": "cls_token", "cls_TemporalTransformer": "temporal_cls_token"}
_BLOCK_MODULES = {  # Scenic module inside encoderblock_N -> ours inside blocks.N
    "LayerNorm_0": "norm1",
    "LayerNorm_space": "norm1",
    "LayerNorm_time": "temporal_norm1",
    "LayerNorm_1": "norm2",
    "LayerNorm_mlp": "norm2",
    "MultiHeadDotProductAttention_0": "attn",
    "MultiHeadDotProductAttention_space": "attn",
    "MultiHeadDotProductAttention_time": "temporal_attn",
    "MlpBlock_0": "mlp",
    "MlpBlock": "mlp",
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

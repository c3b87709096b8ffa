"""Image ViTs to start a ViViT from (paper Sec. 3.4), loaded as a timm `VisionTransformer`: a timm name (downloaded
from the hub, or its weights from a local file), or a weights file whose geometry is read from the file itself: a
timm or Hugging Face state dict (.pth/.bin/.safetensors) or an original JAX ViT (.npz, vision_transformer or
big_vision names). vivit.weights.pretrained adapts the loaded ViT to a video model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from torch import nn

from .checkpoint import read_state_dict
from .hf import rename_hf

IMAGE_SUFFIXES = (".pth", ".bin", ".safetensors", ".npz")
# `init=imagenet21k`: the ImageNet-21k ViT of the model's width and patch size (timm's names), the paper's start
IMAGENET21K = "imagenet21k"
IMAGENET21K_VITS = {
    (192, 16): "vit_tiny_patch16_224.augreg_in21k",
    (384, 16): "vit_small_patch16_224.augreg_in21k",
    (768, 16): "vit_base_patch16_224.orig_in21k",
    (1024, 16): "vit_large_patch16_224.orig_in21k",
    (1280, 14): "vit_huge_patch14_224.orig_in21k",
}
# Any timm ViT name builds a generic VisionTransformer once its geometry is overridden from the weights file.
GENERIC_VIT = "vit_base_patch16_224"


def imagenet21k_vit(embed_dim: int, patch_size: int) -> str:
    """The timm name of the ImageNet-21k ViT of a width and patch size (what `init=imagenet21k` loads)."""
    name = IMAGENET21K_VITS.get((embed_dim, patch_size))
    if name is None:
        sizes = ", ".join(f"width {d} / patch {p}" for d, p in IMAGENET21K_VITS)
        raise ValueError(
            f"init=imagenet21k: no ImageNet-21k ViT of width {embed_dim} and patch {patch_size} (there are: "
            f"{sizes}); name a timm model or a weights file instead"
        )
    return name


def load_image_vit(
    source: str | Path | nn.Module,
    weights: str | Path | None = None,
    num_heads: int | None = None,
    trusted: bool = False,
) -> tuple[nn.Module, str]:
    """A timm VisionTransformer with pretrained weights, and a description of where they came from.

    `source` is a timm name (hub download, or `weights` = a local file of those weights) or a weights file whose
    geometry is read from the file (`num_heads` fills in what a PyTorch state dict cannot tell). A PyTorch file is
    read once, here, with `weights_only=True` (`trusted=True`: any pickle) and handed to timm as a state dict.
    """
    if isinstance(source, nn.Module):
        return source, type(source).__name__
    path = Path(source)
    if weights is None and (path.suffix in IMAGE_SUFFIXES or path.exists()):
        if not path.is_file():
            raise FileNotFoundError(f"No image-ViT weights file at '{path}'.")
        name, kwargs, overlay = GENERIC_VIT, *_file_vit_args(path, num_heads, trusted)
        where = f"'{path}'"
    else:
        name, where = str(source), f"timm model '{source}'"
        if not timm.is_model(name.split(".")[0]):
            raise ValueError(
                f"'{source}' is neither an existing file nor a timm model name; pass a ViT weights file "
                f"({', '.join(IMAGE_SUFFIXES)}), a video checkpoint (.ckpt / converted .pt) or a timm name such "
                "as vit_base_patch16_224.orig_in21k."
            )
        kwargs, overlay = {"num_classes": 0}, None
        if weights is not None:
            weights = Path(weights)
            if not weights.is_file():
                raise FileNotFoundError(f"No weights file at '{weights}' (for timm model '{source}').")
            file_kwargs, overlay = _file_vit_args(weights, num_heads, trusted)
            kwargs = {"num_classes": file_kwargs["num_classes"]}
            where += f" with weights '{weights}'"
    try:
        vit = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    except (RuntimeError, KeyError, ValueError, OSError) as error:
        hint = ""
        if overlay is None:
            hint = (
                " Downloading needs internet (HF_HUB_OFFLINE must be unset); offline, pass a local copy with "
                "weights=FILE, or the file itself as the source."
            )
        raise ValueError(f"Could not load the image ViT {where}: {error}.{hint}") from error
    return vit, where


def _file_vit_args(path: Path, num_heads: int | None, trusted: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """timm VisionTransformer kwargs read from a weights file, and the `pretrained_cfg_overlay` that loads it."""
    if path.suffix == ".npz":
        kwargs = _npz_geometry(path)
        overlay = {"file": str(path), "custom_load": True}  # timm's _load_weights reads the JAX layout
    else:
        state = read_state_dict(path, trusted)
        if any(".patch_embeddings.projection." in k or k.startswith("embeddings.") for k in state):
            state, _, _ = rename_hf(state)  # a Hugging Face ViTModel: same names as ViViT's
        overlay = {"state_dict": state}  # the tensors already read, not the file a second time
        kwargs = _state_dict_geometry(state, path)
        if num_heads is None:
            raise ValueError(f"'{path}': a PyTorch state dict does not tell the number of heads; pass num_heads.")
        kwargs["num_heads"] = num_heads
    # The overlay states the file's head size too, so timm loads strictly: a key it cannot place is an error.
    overlay["num_classes"] = kwargs["num_classes"]
    return kwargs, overlay


def _grid(num_tokens: int, has_cls: bool, where: Any) -> tuple[int, int]:
    """(grid side, position rows before the grid) of a square ViT position embedding of `num_tokens` rows."""
    for prefix in (1, 0) if has_cls else (0,):
        side = math.isqrt(num_tokens - prefix)
        if side * side == num_tokens - prefix:
            return side, prefix
    raise ValueError(f"{where}: a position embedding of {num_tokens} rows is not a square grid (+ CLS row).")


def _state_dict_geometry(state: Mapping[str, torch.Tensor], where: Any) -> dict[str, Any]:
    for key in ("patch_embed.proj.weight", "pos_embed", "blocks.0.mlp.fc1.weight"):
        if key not in state:
            raise ValueError(f"'{where}' is not a timm/Hugging Face ViT state dict: it has no '{key}'.")
    dim, in_chans, ph, pw = state["patch_embed.proj.weight"].shape
    has_cls = "cls_token" in state
    side, prefix = _grid(state["pos_embed"].shape[1], has_cls, where)
    depth = 1 + max(int(m[1]) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    return dict(
        img_size=side * ph,
        patch_size=(ph, pw),
        in_chans=in_chans,
        embed_dim=dim,
        depth=depth,
        mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0] / dim,
        qkv_bias="blocks.0.attn.qkv.bias" in state,
        class_token=has_cls,
        no_embed_class=has_cls and prefix == 0,
        global_pool="token" if has_cls else "avg",
        fc_norm="fc_norm.weight" in state,
        num_classes=state["head.weight"].shape[0] if "head.weight" in state else 0,
    )


def _npz_geometry(path: Path) -> dict[str, Any]:
    """Geometry of an original JAX ViT `.npz` (vision_transformer or big_vision names), read key by key."""
    with np.load(path, allow_pickle=False) as npz:
        keys = list(npz.files)

        def find(pattern: str) -> str | None:
            return next((k for k in keys if re.search(pattern, k)), None)

        embedding = find(r"(^|/)embedding/kernel$")
        if embedding is None:
            raise ValueError(f"'{path}' is not a JAX ViT .npz: no 'embedding/kernel'.")
        prefix = embedding[: -len("embedding/kernel")]
        ph, pw, in_chans, dim = npz[embedding].shape
        has_cls = f"{prefix}cls" in keys
        pos = find(rf"^{re.escape(prefix)}(Transformer/posembed_input/)?pos_embedding$")
        side, pos_prefix = _grid(npz[pos].shape[1], has_cls, path)
        query = find(r"encoderblock(_0)?/MultiHeadDotProductAttention_\d/query/kernel$")
        mlp = find(r"encoderblock(_0)?/MlpBlock_\d/Dense_0/kernel$")
        stacked = "/encoderblock/" in query
        depth = (
            npz[query].shape[0] if stacked else len({m[1] for k in keys if (m := re.search(r"encoderblock_(\d+)/", k))})
        )
        head = f"{prefix}head/kernel"
        return dict(
            img_size=side * ph,
            patch_size=(ph, pw),
            in_chans=in_chans,
            embed_dim=dim,
            depth=depth,
            num_heads=npz[query].shape[-2],
            mlp_ratio=npz[mlp].shape[-1] / dim,
            qkv_bias=query.replace("/kernel", "/bias") in keys,
            class_token=has_cls,
            no_embed_class=has_cls and pos_prefix == 0,
            global_pool="token" if has_cls else "avg",
            fc_norm=False,
            num_classes=npz[head].shape[-1] if head in keys else 0,
        )

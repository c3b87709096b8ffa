"""Parameters and FLOPs of a model, as the paper counts them (Tables 2 and 5); `python -m vivit.flops` prints them.

Convention: the paper's "FLOPs" are multiply-adds, so one multiply-add counts as ONE FLOP here (like fvcore).
torch's `FlopCounterMode` counts two per multiply-add; we halve its total. What is counted is what
`FlopCounterMode` counts: matrix multiplications (every Linear, the attention's QK^T and AV products) and
convolutions (the tubelet embedding). Softmax, LayerNorm, GELU, bias and residual additions are not. This
reproduces the paper's Tables 2 and 5 within 1%; the paper's numbers are always 0.3-0.9% higher, presumably because
its counter also counted some element-wise work (softmax, LayerNorm, GELU, additions). fvcore and
FlopCounterMode leave that out, and so do we.

The model is built on the meta device (no memory, no arithmetic) and run once under `FlopCounterMode` with the
MATH backend of `scaled_dot_product_attention`: the fused CPU kernel is invisible to the counter, the math
path decomposes attention into two counted batched matmuls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from .registry import build_model

TORCH_FLOPS_PER_MAC = 2  # FlopCounterMode's convention

CONVENTION = (
    "GFLOPs = 1e9 multiply-adds for one view (one clip, batch 1), the paper's convention (fvcore's); torch's "
    "FlopCounterMode counts 2 per multiply-add. Counted: matmuls (Linear layers, attention QK^T and AV) and the "
    "tubelet convolution; softmax, LayerNorm, GELU and additions are not."
)


def build_meta_model(config: Mapping[str, Any]) -> nn.Module:
    """A model config (plain values) built on the meta device: shapes only, so even ViViT-H costs no memory."""
    with torch.device("meta"):
        return build_model(config).eval()


def count_macs(model: nn.Module, batch_size: int = 1) -> dict[str, int]:
    """Multiply-adds of one forward pass of `model` on `batch_size` clips, per aten op (e.g. "aten.bmm").

    Runs on the model's device; on the meta device (see `build_meta_model`) nothing is computed.
    """
    param = next(model.parameters())
    video = torch.zeros(
        batch_size,
        model.patch_embed.in_chans,
        model.num_frames,
        model.img_size,
        model.img_size,
        device=param.device,
        dtype=param.dtype,
    )
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter, torch.no_grad():
        model(video)
    return {str(op): flops // TORCH_FLOPS_PER_MAC for op, flops in counter.get_flop_counts()["Global"].items()}


def model_stats(model: nn.Module) -> dict[str, Any]:
    """Parameters, multiply-adds per view (split by op) and token geometry of a model."""
    macs = count_macs(model)
    params = sum(p.numel() for p in model.parameters())
    return {
        "params": params,
        "params_m": params / 1e6,
        "gflops": sum(macs.values()) / 1e9,
        "macs_by_op": macs,
        "tokens": model.patch_embed.num_patches,
        "grid": list(model.patch_embed.grid_size),
        "num_frames": model.num_frames,
        "img_size": model.img_size,
    }

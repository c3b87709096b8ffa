"""Parameters and FLOPs of the model configs in conf/model/ (paper Tables 2 and 5).

    python -m vivit.flops vivit_b_st vivit_b_fe vivit_b_fsa vivit_b_fdp vivit_b_fe_avgpool
    python -m vivit.flops vivit_l_st img_size=320            # key=value overrides the model config
    python -m vivit.flops vivit_b_st --json                  # one JSON object per line

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

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from vivit.configs import compose_model_config
TORCH_FLOPS_PER_MAC = 2  # FlopCounterMode's convention

CONVENTION = (
    "GFLOPs = 1e9 multiply-adds for one view (one clip, batch 1), the paper's convention (fvcore's); torch's "
    "FlopCounterMode counts 2 per multiply-add. Counted: matmuls (Linear layers, attention QK^T and AV) and the "
    "tubelet convolution; softmax, LayerNorm, GELU and additions are not."
)


def build_meta_model(model_cfg: Any) -> nn.Module:
    """Instantiate a model config on the meta device: shapes only, so even ViViT-H costs no memory."""
    from vivit.checkpoint import build_model

    with torch.device("meta"):
        return build_model(model_cfg).eval()


def count_macs(model: nn.Module, batch_size: int = 1) -> dict[str, int]:
    """Multiply-adds of one forward pass of `model` on `batch_size` clips, per aten op (e.g. "aten.bmm").

    Runs on the model's device; on the meta device (see `build_meta_model`) nothing is computed.
    """
    param = next(model.parameters())
    embed = model.patch_embed
    video = torch.zeros(
        batch_size, embed.in_chans, model.num_frames, model.img_size, model.img_size,
        device=param.device, dtype=param.dtype,
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


def config_stats(name: str, overrides: Sequence[str] = (), num_classes: int = 400) -> dict[str, Any]:
    """`model_stats` of the model config `name` (conf/model/<name>.yaml with overrides)."""
    cfg = compose_model_config(name, overrides, num_classes)
    return {"model": name, "overrides": list(overrides), "num_classes": num_classes,
            **model_stats(build_meta_model(cfg))}


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """One line per model: name (+ overrides), parameters, GFLOPs per view, tokens, token grid and input."""
    names = [" ".join([r["model"], *r["overrides"]]) for r in rows]
    width = max(len("model"), *map(len, names))
    header = f"{'model':<{width}} {'params (M)':>10} {'GFLOPs/view':>12} {'tokens':>7}  {'grid (t,h,w)':<13} input"
    lines = [header, "-" * len(header)]
    for name, r in zip(names, rows):
        grid = "x".join(map(str, r["grid"]))
        lines.append(
            f"{name:<{width}} {r['params_m']:>10.2f} {r['gflops']:>12.4g} {r['tokens']:>7}  {grid:<13} "
            f"{r['num_frames']} x {r['img_size']}px"
        )
    return "\n".join(lines)


def _message(error: BaseException) -> str:
    """One line for the user: the model's own ValueError rather than Hydra's instantiation wrapper."""
    from hydra.errors import InstantiationException

    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    return " ".join(str(error).split())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vivit.flops",
        description="Parameters and GFLOPs per view of model configs (conf/model/<NAME>.yaml).",
        epilog=CONVENTION,
    )
    parser.add_argument("items", nargs="+", metavar="NAME|key=value",
                        help="model config names, and key=value overrides applied to every one (e.g. img_size=288)")
    parser.add_argument("--num-classes", type=int, default=400, help="classes of the head (default: 400, K400)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per model instead of a table")
    args = parser.parse_args(argv)

    overrides = [item for item in args.items if "=" in item]
    names = [item for item in args.items if "=" not in item]
    if not names:
        parser.error("name at least one model config, e.g. vivit_b_st")
    try:
        rows = [config_stats(name, overrides, args.num_classes) for name in names]
    except Exception as error:  # unknown config, bad override, invalid model geometry: one line, no traceback
        print(f"error: {_message(error)}", file=sys.stderr)
        return 2
    if args.json:
        for row in rows:
            print(json.dumps({**row, "convention": "multiply-adds"}))
    else:
        print(format_table(rows))
        print("\n" + textwrap.fill(CONVENTION, width=100))
    return 0


if __name__ == "__main__":
    sys.exit(main())

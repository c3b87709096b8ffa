"""`python -m vivit.flops NAME ... [key=value ...]` (console: vivit-flops): parameters and GFLOPs per view of model
configs (paper Tables 2 and 5), counted as vivit.models.flops counts them (multiply-adds, the paper's convention).

    python -m vivit.flops vivit_b_st vivit_b_fe vivit_b_fsa vivit_b_fdp vivit_b_fe_avgpool
    python -m vivit.flops vivit_l_st img_size=320            # key=value overrides the model config
    python -m vivit.flops vivit_b_st --json                  # one JSON object per line
    python -m vivit.flops --list                             # every model config
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

from omegaconf import OmegaConf

from vivit.models.flops import CONVENTION, build_meta_model, count_macs, model_stats
from vivit.runtime.config import compose_model_config, model_choices

__all__ = ["build_meta_model", "compose_model_config", "config_stats", "count_macs", "format_table", "main"]


def config_stats(name: str, overrides: Sequence[str] = (), num_classes: int = 400) -> dict[str, Any]:
    """Parameters, GFLOPs per view and geometry of the model config `name` with `key=value` overrides."""
    cfg = OmegaConf.to_container(compose_model_config(name, overrides), resolve=True)
    return {
        "model": name,
        "overrides": list(overrides),
        "num_classes": num_classes,
        **model_stats(build_meta_model({**cfg, "num_classes": num_classes})),
    }


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vivit.flops",
        description="Parameters and GFLOPs per view of model configs (the zoo's vivit_<size>_<variant> and "
        "conf/model/<NAME>.yaml).",
        epilog=CONVENTION,
    )
    parser.add_argument(
        "items",
        nargs="*",
        metavar="NAME|key=value",
        help="model config names, and key=value overrides applied to every one (e.g. img_size=288)",
    )
    parser.add_argument("--num-classes", type=int, default=400, help="classes of the head (default: 400, K400)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per model instead of a table")
    parser.add_argument("--list", action="store_true", help="print every model config name and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(model_choices()))
        return 0
    overrides = [item for item in args.items if "=" in item]
    names = [item for item in args.items if "=" not in item]
    if not names:
        parser.error("name at least one model config, e.g. vivit_b_st (--list shows them all)")
    try:
        rows = [config_stats(name, overrides, args.num_classes) for name in names]
    except ValueError as error:  # unknown config, bad override, invalid model geometry: one line, no traceback
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
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

"""`python -m vivit.export CKPT OUT.pt2 [--onnx OUT.onnx] [--batch 2]` (console: vivit-export).

A checkpoint as a `torch.export` program and ONNX, each checked against the eager model (vivit.weights.export).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch

from vivit.weights import export as exporting
from vivit.weights.checkpoint import load_checkpoint
from vivit.weights.export import (
    example_clip,
    export_onnx,
    export_program,
    max_difference,
    missing_onnx_packages,
    onnx_outputs,
)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m vivit.export",
        description=exporting.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("ckpt", help="a train.py checkpoint or a converted file")
    parser.add_argument("out", help="the torch.export program to write (.pt2)")
    parser.add_argument("--onnx", help="also write an ONNX file here (needs onnx and onnxscript)")
    parser.add_argument("--batch", type=int, default=2, help="batch of the example used to trace (default 2)")
    parser.add_argument("--atol", type=float, default=1e-4, help="largest allowed difference from eager")
    parser.add_argument(
        "--trusted",
        action="store_true",
        help="read a checkpoint that pickles other objects than tensors (only a file you made: unpickling runs code)",
    )
    args = parser.parse_args(argv)
    if args.onnx:
        missing = missing_onnx_packages()
        if missing:
            sys.exit(
                f"error: --onnx needs {', '.join(missing)}: pip install -r requirements-export.txt "
                "(or pip install .[export])"
            )
    try:
        model = load_checkpoint(args.ckpt, trusted=args.trusted)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    check = example_clip(model, args.batch + 1, seed=1)  # another batch size than traced: the batch is dynamic
    with torch.no_grad():
        eager = model(check)
    program = export_program(model, args.out, args.batch)
    with torch.no_grad():
        exported = program.module()(check)
    reports = [("torch.export", args.out, max_difference(eager, exported))]
    if args.onnx:
        export_onnx(model, args.onnx, args.batch)
        reports.append(("onnx", args.onnx, max_difference(eager, onnx_outputs(args.onnx, check))))
    for name, path, diff in reports:
        print(f"wrote {path} ({name}): max |logit difference| from eager {diff:.2e} on a batch of {args.batch + 1}")
    if any(diff > args.atol for _, _, diff in reports):
        sys.exit(f"error: an export differs from the eager model by more than --atol {args.atol}")


if __name__ == "__main__":
    main()

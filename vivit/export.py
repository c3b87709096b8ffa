"""Export a checkpoint for serving: `torch.export` (.pt2) and ONNX, both with a dynamic batch, checked against eager.

    python -m vivit.export CKPT OUT.pt2 [--onnx OUT.onnx] [--batch 2]

CKPT is a train.py checkpoint or a file of `python -m vivit.convert`. The exported programs take clips
(B, C, T, H, W) normalised as in training (scenic's [-1, 1]) and return the logits (a dict of logits per head for
a multi-head model such as EPIC-KITCHENS'). Each export is run on a random batch and compared with the eager
model; the largest absolute difference is printed and the export fails above `--atol`.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from vivit.checkpoint import load_checkpoint


def example_clip(model: nn.Module, batch: int = 2, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, getattr(model, "in_chans", 3), model.num_frames, model.img_size, model.img_size)
    return torch.rand(shape, generator=generator) * 2 - 1


def _flat(output: torch.Tensor | Mapping[str, torch.Tensor] | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(output, Mapping):
        return list(output.values())  # the insertion order of the heads, as ONNX flattens them
    return list(output) if isinstance(output, (list, tuple)) else [output]


def max_difference(expected: object, actual: object) -> float:
    return max(float((torch.as_tensor(a) - e).abs().max()) for e, a in zip(_flat(expected), _flat(actual)))


def export_program(model: nn.Module, path: str | Path, batch: int = 2) -> torch.export.ExportedProgram:
    """`torch.export` with a dynamic batch dimension, saved as a .pt2 file (`torch.export.load` reads it)."""
    clip = example_clip(model, batch)
    program = torch.export.export(model, (clip,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
    torch.export.save(program, str(path))
    return program


def export_onnx(model: nn.Module, path: str | Path, batch: int = 2) -> None:
    """ONNX (torch.onnx's dynamo exporter) with a dynamic batch; needs `onnx` and `onnxscript`."""
    clip = example_clip(model, batch)
    torch.onnx.export(model, (clip,), str(path), dynamo=True, input_names=["video"],
                      dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))


def missing_onnx_packages() -> list[str]:
    """The optional packages `--onnx` needs that are not installed (checked before any export work)."""
    return [name for name in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None]


def onnx_outputs(path: str | Path, clip: torch.Tensor) -> list[torch.Tensor]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [torch.from_numpy(o) for o in session.run(None, {session.get_inputs()[0].name: clip.numpy()})]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vivit.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ckpt", help="a train.py checkpoint or a converted file")
    parser.add_argument("out", help="the torch.export program to write (.pt2)")
    parser.add_argument("--onnx", help="also write an ONNX file here (needs onnx and onnxscript)")
    parser.add_argument("--batch", type=int, default=2, help="batch of the example used to trace (default 2)")
    parser.add_argument("--atol", type=float, default=1e-4, help="largest allowed difference from eager")
    args = parser.parse_args(argv)
    if args.onnx:
        missing = missing_onnx_packages()
        if missing:
            sys.exit(f"error: --onnx needs {', '.join(missing)}: pip install -r requirements-export.txt "
                     "(or pip install .[export])")
    try:
        model = load_checkpoint(args.ckpt)
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

"""Export a checkpoint for serving: `torch.export` (.pt2) and ONNX, both with a dynamic batch, checked against eager.

    python -m vivit.export CKPT OUT.pt2 [--onnx OUT.onnx] [--batch 2]      (the command: vivit/export.py)

CKPT is a train.py checkpoint or a file of `python -m vivit.convert`. The exported programs take clips
(B, C, T, H, W) normalised as in training (scenic's [-1, 1]) and return the logits (a dict of logits per head for
a multi-head model such as EPIC-KITCHENS'). Each export is run on a random batch and compared with the eager
model; the largest absolute difference is printed and the export fails above `--atol`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn


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
    torch.onnx.export(
        model,
        (clip,),
        str(path),
        dynamo=True,
        input_names=["video"],
        dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
    )


def missing_onnx_packages() -> list[str]:
    """The optional packages `--onnx` needs that are not installed (checked before any export work)."""
    return [name for name in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None]


def onnx_outputs(path: str | Path, clip: torch.Tensor) -> list[torch.Tensor]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [torch.from_numpy(o) for o in session.run(None, {session.get_inputs()[0].name: clip.numpy()})]

"""Initialise a ViViT from a pretrained network: an image ViT (paper Sec. 3.4) or another ViViT checkpoint.

One entry point, `initialise(model, source, ...)`, where `source` is

- a timm model name (`vit_base_patch16_224.orig_in21k`, `vit_large_patch16_224.orig_in21k`,
  `vit_huge_patch14_224.orig_in21k`, ...), downloaded by `timm.create_model(name, pretrained=True)`, or read
  from a local copy of its weights with `weights=FILE`; `imagenet21k` names the ImageNet-21k ViT of the model's
  width and patch size (the paper's starting point for every size: `IMAGENET21K_VITS`);
- a local image-ViT weights file: a timm (or Hugging Face `ViTModel`) state dict in .pth/.bin/.safetensors,
  or an original JAX ViT `.npz` (google-research/vision_transformer or big_vision layout). The ViT's
  geometry is read from the file (the number of heads, which a PyTorch state dict does not show, is the
  model's), and the file is loaded by the same `timm.create_model(..., pretrained=True)` call as a hub model
  (both in vivit/weights/image_vit.py);
- a video checkpoint: a train.py `.ckpt` or a `.pt` written by `python -m vivit.convert` (the paper's
  "Kinetics-400 initialisation" for EPIC-Kitchens and SSv2);
- or a timm `VisionTransformer` instance.

Image ViT -> ViViT follows Scenic's `initialise_from_train_state`:

- tubelet kernel from the 2-D patch kernel: `central_frame` (zeros except the middle frame t//2, paper Eq. 9,
  its best), `inflate` (the kernel tiled over t and divided by t, Eq. 8) or `random` (keep the model's init);
  the bias is always copied, and `embedding=uniform` copies the 2-D kernel as is;
- position embeddings: the image grid is resized to the new spatial grid and repeated for every time step of
  Models 1/3/4 (tokens are time-major), or used once per frame by Model 2's spatial encoder; the CLS row is
  copied only when both networks use a CLS token;
- transformer blocks and the final norm are copied 1:1 (Model 2: into the spatial encoder). Model 2's temporal
  encoder keeps its random init and its two CLS tokens stay zero, as in Scenic. Model 3's temporal attention
  (its temporal LayerNorm keeps its init in every mode) is
    `zero` (the default): its output projection is zero and q/k/v keep their random init, so Eq. 5 starts as a
      residual connection (identity in time), the property the paper's Sec. 3.4 asks for, and the branch trains;
    `zero_all`: every weight and bias zero, the paper's words ("initialise all weights of the temporal MSA with
      zeroes"; scenic: attention_kernel_init_method='zero' with init_temporal_transformer=False). With q, k, v
      and the projection all zero, no weight of the branch ever gets a gradient (the attention output is 0, and
      so is every gradient through it): only the output bias trains, and the block never attends in time;
    `copy`: the spatial attention copied into it, scenic's default (init_encoderblock);
- the classifier is never taken from an image network: the head is zero-initialised.

Video checkpoint -> ViViT: every parameter is copied by name; position embeddings are resized when the geometry
differs (spatially as above, 1-D linear interpolation over time when the number of time steps differs); the head
is dropped (a new zero head) unless `load_head=True`.

Anything that does not fit raises a `ValueError` naming every missing, unexpected and mis-shaped parameter.
"""

from __future__ import annotations

import fnmatch
import inspect
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed
from torch import nn

from vivit.common.checks import check_choice
from vivit.common.files import load_torch_file

from .checkpoint import backbone_weights, read_checkpoint, split_checkpoint
from .image_vit import IMAGENET21K, imagenet21k_vit, load_image_vit

log = logging.getLogger(__name__)

TUBELET_INITS = ("central_frame", "inflate", "random")
TEMPORAL_INITS = ("zero", "zero_all", "copy")
POS_INTERPOLATIONS = ("bilinear", "bicubic")
LIGHTNING_SUFFIX = ".ckpt"  # always a video checkpoint (a .pt may hold an image ViT's state dict or a ViViT)


@dataclass
class InitReport:
    """What `initialise` did to every parameter of the model."""

    source: str
    loaded: list[str] = field(default_factory=list)  # copied unchanged, same name
    adapted: dict[str, str] = field(default_factory=dict)  # model parameter -> how it was made from the source
    kept: list[str] = field(default_factory=list)  # left at the model's initialisation (head: zeroed)
    dropped: list[str] = field(default_factory=list)  # source parameters not used, on purpose

    def __str__(self) -> str:
        lines = [
            f"Initialised from {self.source}: {len(self.loaded)} parameters copied, {len(self.adapted)} adapted, "
            f"{len(self.kept)} left at their initialisation, {len(self.dropped)} source parameters unused."
        ]
        lines += [f"  adapted {name}: {how}" for name, how in self.adapted.items()]
        if self.kept:
            lines.append(f"  kept at init: {compact(self.kept)}")
        if self.dropped:
            lines.append(f"  unused from the source: {compact(self.dropped)}")
        return "\n".join(lines)


def compact(names: Iterable[str]) -> str:
    """Names with block indices folded, e.g. `blocks.{0..11}.attn.qkv.weight`, so long lists stay readable."""
    groups: dict[tuple[str, str], list[int]] = {}
    singles: list[str] = []
    for name in sorted(names):
        match = re.match(r"^(.*?blocks\.)(\d+)(\..*)$", name)
        if match:
            groups.setdefault((match[1], match[3]), []).append(int(match[2]))
        else:
            singles.append(name)
    for (head, tail), idx in groups.items():
        idx = sorted(idx)
        if len(idx) == 1:
            singles.append(f"{head}{idx[0]}{tail}")
        elif idx == list(range(idx[0], idx[-1] + 1)):
            singles.append(f"{head}{{{idx[0]}..{idx[-1]}}}{tail}")
        else:
            singles.append(f"{head}{{{','.join(map(str, idx))}}}{tail}")
    return ", ".join(sorted(singles))


# ----------------------------------------------------------------------------------------------- entry points
def initialise(
    model: nn.Module,
    source: str | Path | nn.Module,
    *,
    weights: str | Path | None = None,
    tubelet_init: str = "central_frame",
    temporal_init: str = "zero",
    pos_interpolation: str = "bilinear",
    load_head: bool = False,
    trusted: bool = False,
) -> InitReport:
    """Initialise `model` (a `vivit.models` ViViT) in place from `source`; returns what was done.

    Args:
        model: the ViViT to initialise.
        source: a timm ViT name (or `imagenet21k`: the model size's), an image-ViT weights file
            (.pth/.bin/.safetensors/.npz), a video checkpoint (train.py `.ckpt` or converted `.pt`), or a timm
            VisionTransformer.
        weights: with a timm name, a local file of its weights (for machines without internet).
        tubelet_init: `central_frame` | `inflate` | `random`: the 3-D tubelet kernel from the 2-D patch kernel.
        temporal_init: Model 3 only, `zero` | `zero_all` | `copy`: the temporal attention from an image ViT.
        pos_interpolation: `bilinear` (Scenic: scipy zoom order 1, corners aligned) or `bicubic` (timm's default)
            for position embeddings on another spatial grid.
        load_head: video checkpoints only: keep the checkpoint's classifier (same classes) instead of a new one.
        trusted: read a file that pickles other objects than tensors and plain containers (a file of your own;
            by default files are read with `weights_only=True`, so loading one cannot run code).
    """
    check_choice("tubelet_init", tubelet_init, TUBELET_INITS)
    check_choice("temporal_init", temporal_init, TEMPORAL_INITS)
    check_choice("pos_interpolation", pos_interpolation, POS_INTERPOLATIONS)
    if not isinstance(getattr(model, "patch_embed", None), nn.Module) or not hasattr(model, "head"):
        raise TypeError(f"initialise() expects a vivit.models ViViT, got {type(model).__name__}.")

    if source == IMAGENET21K:
        source = imagenet21k_vit(model.embed_dim, model.patch_embed.tubelet_size[1])
    video = None if isinstance(source, nn.Module) or weights is not None else _read_video_checkpoint(source, trusted)
    if video is not None:
        state, config = video
        report = _video_to_video(model, state, config, str(source), pos_interpolation, load_head)
    else:
        if load_head:
            raise ValueError("load_head=True needs a video checkpoint: an image ViT's classifier is never loaded.")
        vit, name = load_image_vit(source, weights, num_heads=_num_heads(model), trusted=trusted)
        report = _image_to_video(model, vit, name, tubelet_init, temporal_init, pos_interpolation)
    log.info("%s", report)
    return report


# The options of `initialise` and their defaults: the `init_options` of a model config (vivit.runtime.config).
# `trusted` is not one: it is the command line's to give (train.py trusted=true), never a config's or a checkpoint's.
INIT_OPTIONS = {
    name: parameter.default
    for name, parameter in inspect.signature(initialise).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name != "trusted"
}


def _num_heads(model: nn.Module) -> int:
    return model.block_kwargs["num_heads"]


# ----------------------------------------------------------------------------------------------- bookkeeping
class _Transfer:
    """Builds the new state dict of `model` from a source state dict and checks nothing is silently lost."""

    def __init__(self, model: nn.Module, source: Mapping[str, torch.Tensor], name: str) -> None:
        self.target = model.state_dict()
        self.source = dict(source)
        self.new: dict[str, torch.Tensor] = {}
        self.used: set[str] = set()
        self.allowed_unused: set[str] = set()
        self.allowed_kept: list[str] = []  # fnmatch patterns of model parameters that may keep their init
        self.mismatches: list[str] = []
        self.report = InitReport(name)

    def copy(self, name: str, source_name: str | None = None) -> None:
        """target[name] = source[source_name] if the source has it (else it is reported missing at the end)."""
        source_name = source_name or name
        if source_name not in self.source:
            return
        how = None if source_name == name else f"copy of {source_name}"
        self.set(name, self.source[source_name], how, [source_name])

    def set(self, name: str, value: torch.Tensor, how: str | None, sources: Iterable[str] = ()) -> None:
        self.used.update(sources)
        expected = tuple(self.target[name].shape)
        if tuple(value.shape) != expected:
            origin = ", ".join(f"{s} {tuple(self.source[s].shape)}" for s in sources) or "computed"
            self.mismatches.append(f"{name}: model {expected}, source {tuple(value.shape)} (from {origin})")
            return
        self.new[name] = value.detach().to(self.target[name].dtype)
        if how is None:
            self.report.loaded.append(name)
        else:
            self.report.adapted[name] = how

    def keep(self, *patterns: str) -> None:
        self.allowed_kept += patterns

    def drop(self, names: Iterable[str]) -> None:
        self.allowed_unused.update(n for n in names if n in self.source)

    def finish(self, model: nn.Module) -> InitReport:
        for name in self.target:  # everything not handled explicitly: same name, same shape
            if name not in self.new and not self._may_keep(name):
                self.copy(name)
        unexpected = sorted(set(self.source) - self.used - self.allowed_unused)
        missing = sorted(n for n in self.target if n not in self.new and not self._may_keep(n))
        if unexpected or missing or self.mismatches:
            lines = [f"Cannot initialise {type(model).__name__} from {self.report.source}:"]
            if missing:
                lines.append(f"  missing from the source: {compact(missing)}")
            if unexpected:
                lines.append(f"  in the source but not in the model: {compact(unexpected)}")
            lines += [f"  shape mismatch: {m}" for m in self.mismatches[:12]]
            if len(self.mismatches) > 12:
                lines.append(f"  ... and {len(self.mismatches) - 12} more shape mismatches")
            lines.append(
                "Check that the model config (depth, embed_dim, num_heads, tubelet_size, classifier, "
                "variant) matches the pretrained network."
            )
            raise ValueError("\n".join(lines))
        model.load_state_dict(self.new, strict=False)
        if "head.weight" not in self.new:  # a new classifier starts at zero, as Scenic's output_projection
            nn.init.zeros_(model.head.weight)
            nn.init.zeros_(model.head.bias)
        self.report.kept = sorted(n for n in self.target if n not in self.new)
        self.report.dropped = sorted(set(self.source) - self.used)
        return self.report

    def _may_keep(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.allowed_kept)


# ----------------------------------------------------------------------------------------------- image ViT
def _image_to_video(
    model: nn.Module, vit: nn.Module, name: str, tubelet_init: str, temporal_init: str, interpolation: str
) -> InitReport:
    if getattr(vit, "reg_token", None) is not None:
        raise ValueError(f"{name} has register tokens, which ViViT does not have.")
    has_cls = getattr(vit, "cls_token", None) is not None
    pos_rows = 0 if getattr(vit, "no_embed_class", False) else int(has_cls)
    state = dict(vit.state_dict())
    if "pos_embed" not in state:
        raise ValueError(f"{name} has no learned position embedding (pos_embed), which ViViT needs.")
    transfer = _Transfer(model, state, name)

    # The classifier is never taken from an image network.
    transfer.drop(k for k in state if k.startswith("head."))
    transfer.keep("head.*")
    _tubelet_from_image(transfer, model, tubelet_init)

    # CLS token: Model 1 takes the ViT's; Model 2's two CLS tokens stay zero (Scenic names them
    # cls_SpatialTransformer / cls_TemporalTransformer, so the ViT's `cls` never reaches them).
    transfer.keep("cls_token")
    if not model.takes_image_cls_token or "cls_token" not in transfer.target:
        transfer.drop(["cls_token"])
    else:
        transfer.copy("cls_token")
    vit_heads = vit.blocks[0].attn.num_heads
    if vit_heads != _num_heads(model):
        raise ValueError(
            f"{name} has {vit_heads} attention heads, the model {_num_heads(model)} "
            f"(model.num_heads): set model.num_heads={vit_heads}."
        )

    # Position embeddings: grid resized to the model's, repeated over time (Models 1/3/4) or per frame (Model 2).
    nt, nh, nw = model.patch_embed.grid_size
    frames = nt if model.pos_embed_spans_time else 1
    pos = state["pos_embed"]
    grid = _resize_spatial(pos[:, pos_rows:].reshape(1, 1, *vit.patch_embed.grid_size, -1), (nh, nw), interpolation)
    new = grid.repeat(1, frames, 1, 1, 1).reshape(1, frames * nh * nw, -1)  # time-major: frame t = rows t*nh*nw..
    how = f"{tuple(vit.patch_embed.grid_size)} grid of pos_embed"
    how += f" resized to {(nh, nw)} ({interpolation})" if (nh, nw) != tuple(vit.patch_embed.grid_size) else ""
    how += f", repeated for {frames} time steps" if frames > 1 else ""
    # The CLS row: the ViT's; zero if its CLS token has no position (big_vision, timm's no_embed_class), so the
    # token enters as in the ViT; the model's own if the ViT has no CLS token (Scenic).
    cls_row = pos[:, :1] if pos_rows else torch.zeros_like(pos[:, :1]) if has_cls else None
    if model.num_prefix_tokens:
        how += (
            {1: "; CLS row copied", 0: "; CLS row zero (the ViT adds no position to its CLS token)"}[pos_rows]
            if has_cls
            else "; CLS row kept at init (the ViT has no CLS token)"
        )
    transfer.set("pos_embed", _with_cls_row(new, model, cls_row), how, ["pos_embed"])

    transfer.keep(*model.new_parameters())  # e.g. Model 2's temporal encoder starts random, as in Scenic
    _temporal_attention_from_image(transfer, model, temporal_init)
    return transfer.finish(model)


def _tubelet_from_image(transfer: _Transfer, model: nn.Module, tubelet_init: str) -> None:
    """The 3-D tubelet kernel from the ViT's 2-D patch kernel (Scenic's init_embedding)."""
    kernel = transfer.source.get("patch_embed.proj.weight")
    if kernel is None or transfer.target["patch_embed.proj.weight"].ndim != 5:
        return  # uniform frame sampling: a 2-D kernel, copied by name
    t = model.patch_embed.tubelet_size[0]
    if tubelet_init == "random":
        transfer.drop(["patch_embed.proj.weight"])
        transfer.keep("patch_embed.proj.weight")
        return
    if tubelet_init == "central_frame":
        weight = torch.zeros(*kernel.shape[:2], t, *kernel.shape[2:], dtype=kernel.dtype)
        weight[:, :, t // 2] = kernel
        how = f"central frame: 2-D kernel at t={t // 2} of {t}, zeros elsewhere"
    else:
        weight = kernel.unsqueeze(2).repeat(1, 1, t, 1, 1) / t
        how = f"filter inflation: 2-D kernel repeated over t={t}, divided by {t}"
    transfer.set("patch_embed.proj.weight", weight, how, ["patch_embed.proj.weight"])


def _temporal_attention_from_image(transfer: _Transfer, model: nn.Module, temporal_init: str) -> None:
    """The temporal attention modules an image ViT does not have (Model 3: one per block), from the spatial
    attention beside each (`model.temporal_attention_pairs()`)."""
    for temporal, spatial in model.temporal_attention_pairs().items():
        names = model.get_submodule(temporal).state_dict()
        if temporal_init == "copy":  # Scenic's default: the spatial attention copied into the temporal one
            for name in names:
                transfer.copy(f"{temporal}.{name}", f"{spatial}.{name}")
            continue
        # The paper zero-initialises the temporal attention so the block starts as identity in time. Zeroing
        # only the output projection gives exactly that output (0) and keeps the branch trainable: with q/k/v
        # zero too (zero_all, the paper's literal words), every gradient of the branch but the output bias is 0.
        zeroed = names if temporal_init == "zero_all" else ("proj.weight", "proj.bias")
        if temporal_init == "zero":
            transfer.keep(f"{temporal}.qkv.*")
        how = {"zero": "zero (the temporal attention branch starts at exactly 0)", "zero_all": "zero (all weights)"}
        for name in zeroed:
            target = f"{temporal}.{name}"
            transfer.set(target, torch.zeros_like(transfer.target[target]), how[temporal_init])


def _with_cls_row(grid: torch.Tensor, model: nn.Module, cls_row: torch.Tensor | None) -> torch.Tensor:
    """Prepend the CLS position row when the model has a CLS token: the source's if it has one, else the model's."""
    if model.num_prefix_tokens == 0:
        return grid
    if cls_row is None:
        cls_row = model.pos_embed.detach()[:, :1]
    return torch.cat([cls_row.to(grid.dtype), grid], dim=1)


def _resize_spatial(x: torch.Tensor, size: tuple[int, int], interpolation: str) -> torch.Tensor:
    """(1, T, h, w, D) position grid -> (1, T, H, W, D), each frame resized on its own."""
    _, frames, h, w, dim = x.shape
    if (h, w) == tuple(size):
        return x
    # "bilinear" with aligned corners is exactly scipy.ndimage.zoom(order=1), what Scenic uses.
    options = (
        {"interpolation": "bilinear", "antialias": False, "align_corners": True}
        if interpolation == "bilinear"
        else {"interpolation": "bicubic", "antialias": True}
    )
    frames_out = [
        resample_abs_pos_embed(
            x[:, f].reshape(1, h * w, dim).float(), list(size), old_size=[h, w], num_prefix_tokens=0, **options
        )
        for f in range(frames)
    ]
    return torch.stack(frames_out, dim=1).reshape(1, frames, *size, dim).to(x.dtype)


def _resize_temporal(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(1, T, ..., D) -> (1, frames, ..., D) by 1-D linear interpolation over T (Scenic: zoom order 1)."""
    if x.shape[1] == frames:
        return x
    rest = x.shape[2:]
    flat = x.reshape(1, x.shape[1], -1).transpose(1, 2).float()  # (1, C, T)
    out = F.interpolate(flat, size=frames, mode="linear", align_corners=True)
    return out.transpose(1, 2).reshape(1, frames, *rest).to(x.dtype)


# ----------------------------------------------------------------------------------------------- video
def _read_video_checkpoint(
    source: str | Path, trusted: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None] | None:
    """(backbone state, vivit_config) if `source` is a ViViT checkpoint, else None (an image source)."""
    path = Path(source)
    if not path.is_file() or path.suffix in (".npz", ".safetensors"):
        return None
    if path.suffix == LIGHTNING_SUFFIX:
        return read_checkpoint(path, trusted)
    # a converted .pt, or an image ViT's state dict (no `net.` keys)
    content = load_torch_file(path, mmap=True, trusted=trusted)
    if not isinstance(content, Mapping) or not backbone_weights(content):
        return None
    return split_checkpoint(content, path)  # already loaded: do not read the file twice


def _video_to_video(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    config: Mapping[str, Any] | None,
    name: str,
    interpolation: str,
    load_head: bool,
) -> InitReport:
    transfer = _Transfer(model, state, name)
    if not load_head:
        transfer.drop(["head.weight", "head.bias"])
        transfer.keep("head.*")
    source_model = (config or {}).get("resolved", {}).get("model")
    # CLS tokens are used when both networks have one (a change of classifier keeps the model's own).
    for token in ("cls_token", "temporal_cls_token"):
        if token not in transfer.target:
            transfer.drop([token])
    transfer.keep("cls_token", "temporal_cls_token")
    for token in ("cls_token", "temporal_cls_token"):
        if token in transfer.target:
            transfer.copy(token)

    for key in ("pos_embed", "temporal_pos_embed"):
        if key not in transfer.target or key not in state or state[key].shape == transfer.target[key].shape:
            continue
        if source_model is None:
            raise ValueError(
                f"{name}: {key} has shape {tuple(state[key].shape)}, the model "
                f"{tuple(transfer.target[key].shape)}, and the checkpoint has no vivit_config to tell "
                "its geometry, so it cannot be resized."
            )
        new, how = _resize_video_pos(model, key, state[key], source_model, interpolation)
        transfer.set(key, new, how, [key])
    return transfer.finish(model)


def _source_geometry(cfg: Mapping[str, Any]) -> tuple[tuple[int, int, int], int]:
    """((nt, nh, nw), CLS rows) of the model a checkpoint was trained with, from its resolved config."""
    t, h, w = cfg.get("tubelet_size", (2, 16, 16))
    img, frames = cfg.get("img_size", 224), cfg.get("num_frames", 32)
    return (frames // t, img // h, img // w), int(cfg.get("classifier", "token") == "token")


def _resize_video_pos(
    model: nn.Module, key: str, pos: torch.Tensor, source_model: Mapping[str, Any], interpolation: str
) -> tuple[torch.Tensor, str]:
    (nt0, nh0, nw0), rows = _source_geometry(source_model)
    nt, nh, nw = model.patch_embed.grid_size
    cls_row = pos[:, :1] if rows else None
    body = pos[:, rows:]
    if key == "temporal_pos_embed":  # Model 2's temporal encoder: one row per time step
        new = _resize_temporal(body.reshape(1, nt0, -1), nt).reshape(1, nt, -1)
        how = f"{nt0} time steps interpolated to {nt} (linear)"
    else:
        frames0, frames = (nt0, nt) if model.pos_embed_spans_time else (1, 1)
        if body.shape[1] != frames0 * nh0 * nw0:
            raise ValueError(
                f"{key}: {body.shape[1]} position rows do not match the checkpoint's geometry "
                f"{frames0}x{nh0}x{nw0} from its config."
            )
        grid = _resize_spatial(body.reshape(1, frames0, nh0, nw0, -1), (nh, nw), interpolation)
        new = _resize_temporal(grid, frames).reshape(1, frames * nh * nw, -1)
        how = f"{frames0}x{nh0}x{nw0} grid resized to {frames}x{nh}x{nw} ({interpolation} in space, linear in time)"
    return _with_cls_row(new, model, cls_row), how

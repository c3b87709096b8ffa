"""The four ViViT variants (Arnab et al., ICCV 2021), with the semantics of the official Scenic code.

    SpatioTemporalViViT           Model 1: one transformer over all space-time tokens
    FactorisedEncoderViViT        Model 2: a spatial ViT per frame, then a temporal transformer over frames
    FactorisedSelfAttentionViViT  Model 3: every block attends over space, then over time
    FactorisedDotProductViViT     Model 4: half of the heads attend over space, half over time

All take a video (B, C, T, H, W) and return logits (B, K), or a dict name -> logits when `num_classes` is a
mapping (several heads share one Linear whose outputs are split in mapping order, as Scenic's EPIC-Kitchens
model). Parameter names follow timm's VisionTransformer.

Each variant registers itself in the zoo (`@register_variant`, vivit/models/registry.py) and states what weight
adaptation needs to know of it (`pos_embed_spans_time`, `takes_image_cls_token`, `new_parameters`,
`temporal_attention_pairs`, `block_types`): image-ViT initialisation, the converters, FLOPs and FSDP ask the
model, never test its class.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from functools import partial

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from vivit.common.checks import check_choice

from .embedding import TubeletEmbedding, UniformFrameEmbedding
from .layers import (
    ATTENTION_ORDERS,
    DROP_PATH_MODES,
    Block,
    FactorisedDotProductAttention,
    FactorisedSelfAttentionBlock,
    LayerNorm,
    drop_path_rates,
)
from .registry import register_variant

EMBEDDINGS = {"tubelet": TubeletEmbedding, "uniform": UniformFrameEmbedding}
CLASSIFIERS = ("token", "gap")
TEMPORAL_POOLINGS = ("transformer", "mean")


def _check_num_classes(num_classes: int | Mapping[str, int]) -> dict[str, int] | None:
    """None for a single head, else {name: classes} in mapping order."""
    if isinstance(num_classes, Mapping):
        heads = {str(k): v for k, v in num_classes.items()}
        if not heads or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in heads.values()):
            raise ValueError(
                f"model.num_classes={dict(num_classes)} must map each head name to a positive number of classes, "
                'e.g. {"noun": 300, "verb": 97}.'
            )
        return heads
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes <= 0:
        raise ValueError(
            f"model.num_classes={num_classes!r} must be a positive int or a mapping head name -> positive int "
            "(it normally comes from data.num_classes)."
        )
    return None


class ViViT(nn.Module):
    """Shared stem and head: argument checks, the video embedding, pooling, the classifier and initialisation.

    Args:
        num_classes: classes of one head, or a mapping head name -> classes for several heads.
        img_size: side of the square input crop.
        num_frames: frames in the input clip.
        in_chans: input channels.
        tubelet_size: (t, h, w) of a tubelet; with `embedding="uniform"`, num_frames // t frames are sampled
            and cut into h x w patches.
        embedding: "tubelet" (3-D conv) or "uniform" (uniform frame sampling + 2-D conv), paper Sec. 3.2.
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias: transformer size.
        classifier: "token" (a CLS token) or "gap" (global average pool of the final tokens).
        dropout: dropout after the position embedding, the attention and in the MLP.
        attn_dropout: dropout on the attention weights.
        drop_path_rate: stochastic depth of the last block; block l of L gets l / (L - 1) * drop_path_rate.
        drop_path_mode: "official" (kept branches are not rescaled, as Scenic) or "timm" (rescaled by 1/(1-p)).
        pos_embed_std: std of the normal init of the learned position embeddings (0.02 as ViT/Scenic).
        grad_checkpointing: recompute each block in the backward pass to save activation memory.
    """

    allowed_classifiers: tuple[str, ...] = CLASSIFIERS
    # What weight adaptation needs to know (the defaults are Model 1's; each variant states where it differs):
    takes_image_cls_token = True  # `cls_token` starts from an image ViT's CLS token
    pos_embed_spans_time = True  # `pos_embed` has rows for every time step (time-major), not for one frame
    block_types: tuple[type[nn.Module], ...] = (Block,)  # the transformer blocks (FSDP's wrapping unit)

    def __init__(
        self,
        num_classes: int | Mapping[str, int],
        img_size: int = 224,
        num_frames: int = 32,
        in_chans: int = 3,
        tubelet_size: Sequence[int] = (2, 16, 16),
        embedding: str = "tubelet",
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        classifier: str = "token",
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        drop_path_rate: float = 0.0,
        drop_path_mode: str = "official",
        pos_embed_std: float = 0.02,
        grad_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.head_names = _check_num_classes(num_classes)
        tubelet_size = self._check_geometry(img_size, num_frames, tubelet_size)
        check_choice("model.embedding", embedding, EMBEDDINGS)
        check_choice("model.classifier", classifier, self.allowed_classifiers)
        check_choice("model.drop_path_mode", drop_path_mode, DROP_PATH_MODES)
        if embed_dim % num_heads != 0:
            raise ValueError(
                f"model.embed_dim={embed_dim} is not divisible by model.num_heads={num_heads}; "
                "pick a number of heads that divides the embedding width."
            )
        if depth < 1:
            raise ValueError(f"model.depth={depth} must be at least 1.")
        for key, p in (("dropout", dropout), ("attn_dropout", attn_dropout), ("drop_path_rate", drop_path_rate)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"model.{key}={p} must be in [0, 1).")

        self.num_classes = dict(self.head_names) if self.head_names else num_classes
        self.img_size, self.num_frames, self.tubelet_size = img_size, num_frames, tubelet_size
        self.embed_dim = self.num_features = embed_dim
        self.depth = depth
        self.classifier = classifier
        self.grad_checkpointing = grad_checkpointing
        self.pos_embed_std = pos_embed_std
        # Keyword arguments of every transformer block.
        self.block_kwargs = dict(
            num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, dropout=dropout, attn_dropout=attn_dropout
        )
        self.drop_path_rate, self.drop_path_mode = drop_path_rate, drop_path_mode

        self.patch_embed = EMBEDDINGS[embedding](img_size, num_frames, tubelet_size, in_chans, embed_dim)
        self.num_prefix_tokens = 1 if classifier == "token" else 0
        total = sum(self.head_names.values()) if self.head_names else num_classes
        self.head = nn.Linear(embed_dim, total)  # several heads: one Linear, outputs split in mapping order
        nn.init.zeros_(self.head.weight)  # Scenic's output_projection is zero-initialised
        nn.init.zeros_(self.head.bias)

    @staticmethod
    def _check_geometry(img_size: int, num_frames: int, tubelet_size: Sequence[int]) -> tuple[int, int, int]:
        tubelet = tuple(tubelet_size) if isinstance(tubelet_size, Sequence) else (tubelet_size,)
        if len(tubelet) != 3 or not all(isinstance(s, int) and s > 0 for s in tubelet):
            raise ValueError(
                f"model.tubelet_size={list(tubelet)} must be three positive ints [t, h, w], e.g. [2, 16, 16]."
            )
        for key, value in (("img_size", img_size), ("num_frames", num_frames)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"model.{key}={value!r} must be a positive int.")
        t, h, w = tubelet
        if img_size % h != 0 or img_size % w != 0:
            patch = math.lcm(h, w)
            raise ValueError(
                f"model.img_size={img_size} is not divisible by the patch size {h}x{w} of "
                f"model.tubelet_size={list(tubelet)}; use an img_size that is a multiple of the patch size "
                f"(e.g. {patch * max(1, img_size // patch)}) or another patch size."
            )
        if num_frames % t != 0:
            raise ValueError(
                f"model.num_frames={num_frames} is not divisible by the tubelet length t={t} of "
                f"model.tubelet_size={list(tubelet)}; use a multiple of t (e.g. {t * max(1, num_frames // t)}) "
                "or another t."
            )
        return tubelet

    # -- helpers for the variants ------------------------------------------------------------------------------

    def _new_token(self) -> nn.Parameter:
        """A CLS token, zero-initialised as in Scenic."""
        return nn.Parameter(torch.zeros(1, 1, self.embed_dim))

    def _new_pos_embed(self, num_tokens: int) -> nn.Parameter:
        """A learned position embedding over `num_tokens` tokens, normal(pos_embed_std)."""
        return nn.Parameter(torch.randn(1, num_tokens, self.embed_dim) * self.pos_embed_std)

    def _blocks(self, depth: int, group: int = 1, **overrides) -> nn.ModuleList:
        """`depth` pre-LN blocks with their own stochastic-depth ramp 0 -> drop_path_rate."""
        kwargs = {**self.block_kwargs, "drop_path_mode": self.drop_path_mode, "drop_path_group": group, **overrides}
        rates = drop_path_rates(self.drop_path_rate, depth)
        return nn.ModuleList(Block(self.embed_dim, drop_path=rates[i], **kwargs) for i in range(depth))

    def _embed(self, x: torch.Tensor, cls_token: nn.Parameter | None, pos_embed: nn.Parameter) -> torch.Tensor:
        """Prepend the CLS token (if any) and add the position embedding (which covers the CLS token too)."""
        if cls_token is not None:
            x = torch.cat([cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return x + pos_embed

    def _run_blocks(self, blocks: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        for block in blocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        """CLS token (index 0) for classifier="token", mean of all tokens for "gap"."""
        return x[:, 0] if self.classifier == "token" else x.mean(dim=1)

    # -- what weight adaptation asks (image-ViT initialisation, converters) ------------------------------------

    def new_parameters(self) -> tuple[str, ...]:
        """Patterns (fnmatch) of parameters an image ViT has no counterpart for: they keep their initialisation."""
        return ()

    def temporal_attention_pairs(self) -> dict[str, str]:
        """Temporal attention modules and the spatial attention each may be copied from (Model 3 only)."""
        return {}

    def no_weight_decay(self) -> set[str]:
        """Tokens and position embeddings (timm's convention; Scenic uses no weight decay at all)."""
        return {n for n, _ in self.named_parameters() if n.endswith(("cls_token", "pos_embed"))}

    # -- public API --------------------------------------------------------------------------------------------

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        """Video (B, C, T, H, W) -> pooled pre-head features (B, D)."""
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """Features (B, D) -> logits (B, K), or {head name: logits} for several heads."""
        logits = self.head(features)
        if self.head_names is None:
            return logits
        return dict(zip(self.head_names, logits.split(list(self.head_names.values()), dim=-1)))

    def forward(self, video: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        return self.forward_head(self.forward_features(video))


@register_variant("st", "Model 1: spatio-temporal attention")
class SpatioTemporalViViT(ViViT):
    """Model 1 (paper Sec. 3.3): all nt * nh * nw tokens (+ CLS) go through one transformer encoder.

    See `ViViT` for the arguments.
    """

    def __init__(self, num_classes: int | Mapping[str, int], **kwargs) -> None:
        super().__init__(num_classes, **kwargs)
        self.cls_token = self._new_token() if self.classifier == "token" else None
        self.pos_embed = self._new_pos_embed(self.num_prefix_tokens + self.patch_embed.num_patches)
        self.pos_drop = nn.Dropout(self.block_kwargs["dropout"])
        self.blocks = self._make_blocks(self.depth)
        self.norm = LayerNorm(self.embed_dim)

    def _make_blocks(self, depth: int) -> nn.ModuleList:
        return self._blocks(depth)

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        x = self.pos_drop(self._embed(self.patch_embed(video), self.cls_token, self.pos_embed))
        return self._pool(self.norm(self._run_blocks(self.blocks, x)))


@register_variant("fe", "Model 2: factorised encoder")
class FactorisedEncoderViViT(ViViT):
    """Model 2 (paper Sec. 3.3): a spatial ViT on every frame's tokens, then a temporal transformer.

    The spatial encoder (`cls_token`, `pos_embed` of shape (1, 1 + nh*nw, D), `blocks`, `norm`) is one image
    ViT shared by all nt frames; each frame is pooled to one vector (its CLS token, or the mean for "gap"). The
    temporal encoder (`temporal_cls_token`, `temporal_pos_embed` (1, 1 + nt, D), `temporal_blocks`,
    `temporal_norm`) runs over those nt vectors and is pooled the same way; both stages use `classifier`, as in
    Scenic. `temporal_pooling="mean"` replaces the temporal encoder by a mean over time (the paper's average-pool
    baseline; no temporal parameters). Each encoder has its own stochastic-depth ramp, and a spatial block drops
    its branch for all frames of a clip together (Scenic runs the spatial encoder under `jax.vmap` over time,
    which shares the random draw). Dropout masks are drawn per frame here (Scenic shares them too; all released
    configs use dropout 0).

    Args:
        temporal_depth: number of temporal transformer blocks Lt (paper: 4).
        temporal_pooling: "transformer" or "mean" (average-pool baseline).
        **kwargs: see `ViViT`; `depth` is the spatial depth Ls.
    """

    takes_image_cls_token = False  # its two CLS tokens stay zero, as in Scenic (other names than the ViT's `cls`)
    pos_embed_spans_time = False  # the spatial encoder sees one frame at a time

    def __init__(
        self,
        num_classes: int | Mapping[str, int],
        temporal_depth: int = 4,
        temporal_pooling: str = "transformer",
        **kwargs,
    ) -> None:
        super().__init__(num_classes, **kwargs)
        check_choice("model.temporal_pooling", temporal_pooling, TEMPORAL_POOLINGS)
        if temporal_pooling == "transformer" and temporal_depth < 1:
            raise ValueError(
                f"model.temporal_depth={temporal_depth} must be at least 1 with temporal_pooling=transformer; "
                "for the paper's Lt=0 (average-pool baseline) set model.temporal_pooling=mean."
            )
        self.temporal_pooling = temporal_pooling
        self.temporal_depth = temporal_depth if temporal_pooling == "transformer" else 0
        nt, nh, nw = self.patch_embed.grid_size

        self.cls_token = self._new_token() if self.classifier == "token" else None
        self.pos_embed = self._new_pos_embed(self.num_prefix_tokens + nh * nw)
        self.pos_drop = nn.Dropout(self.block_kwargs["dropout"])
        self.blocks = self._blocks(self.depth, group=nt)
        self.norm = LayerNorm(self.embed_dim)

        if temporal_pooling == "transformer":
            self.temporal_cls_token = self._new_token() if self.classifier == "token" else None
            self.temporal_pos_embed = self._new_pos_embed(self.num_prefix_tokens + nt)
            self.temporal_pos_drop = nn.Dropout(self.block_kwargs["dropout"])
            self.temporal_blocks = self._blocks(temporal_depth)
            self.temporal_norm = LayerNorm(self.embed_dim)

    def new_parameters(self) -> tuple[str, ...]:
        return ("temporal_*",)  # the temporal encoder starts random, as in Scenic

    def forward_features(self, video: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(video)  # (B, nt*ns, D), time-major
        B, _, D = x.shape
        nt = self.patch_embed.grid_size[0]
        # Spatial encoder: every frame is one sequence; frames of a clip are consecutive rows (drop-path groups).
        x = x.reshape(B * nt, -1, D)
        x = self.pos_drop(self._embed(x, self.cls_token, self.pos_embed))
        x = self._pool(self.norm(self._run_blocks(self.blocks, x))).reshape(B, nt, D)
        if self.temporal_pooling == "mean":
            return x.mean(dim=1)
        x = self.temporal_pos_drop(self._embed(x, self.temporal_cls_token, self.temporal_pos_embed))
        return self._pool(self.temporal_norm(self._run_blocks(self.temporal_blocks, x)))


@register_variant("fsa", "Model 3: factorised self-attention")
class FactorisedSelfAttentionViViT(SpatioTemporalViViT):
    """Model 3 (paper Sec. 3.3): Model 1's tokens, but each block attends within frames and across time.

    Only `classifier="gap"` (Scenic asserts there is no CLS token). Blocks have no stochastic depth, as in
    Scenic, so `drop_path_rate` is ignored (with a warning).

    Args:
        attention_order: "space_time" (default; paper Eqs. 4-6, spatial attention first) or "time_space"
            (temporal attention first, Scenic's `time_space`).
        **kwargs: see `ViViT`.
    """

    allowed_classifiers = ("gap",)
    block_types = (FactorisedSelfAttentionBlock,)

    def __init__(
        self,
        num_classes: int | Mapping[str, int],
        attention_order: str = "space_time",
        classifier: str = "gap",
        **kwargs,
    ) -> None:
        kwargs["classifier"] = classifier
        check_choice("model.attention_order", attention_order, ATTENTION_ORDERS)
        self.attention_order = attention_order  # a plain attribute, read by _make_blocks during super().__init__
        if kwargs.get("drop_path_rate", 0.0) > 0:
            warnings.warn(
                "FactorisedSelfAttentionViViT (Model 3) has no stochastic depth, as the official code; "
                f"model.drop_path_rate={kwargs['drop_path_rate']} is ignored.",
                stacklevel=2,
            )
        super().__init__(num_classes, **kwargs)

    def _make_blocks(self, depth: int) -> nn.ModuleList:
        nt, nh, nw = self.patch_embed.grid_size
        return nn.ModuleList(
            FactorisedSelfAttentionBlock(
                self.embed_dim, grid=(nt, nh * nw), attention_order=self.attention_order, **self.block_kwargs
            )
            for _ in range(depth)
        )

    def new_parameters(self) -> tuple[str, ...]:
        return ("blocks.*.temporal_norm1.*",)  # the temporal attention's LayerNorm keeps its init

    def temporal_attention_pairs(self) -> dict[str, str]:
        return {f"blocks.{i}.temporal_attn": f"blocks.{i}.attn" for i in range(len(self.blocks))}


@register_variant(
    "fdp",
    "Model 4: factorised dot-product attention",
    # ViT-Ti has 3 heads and Model 4 needs an even number: 6 heads of 32 channels keep each head
    # inside one of ViT-Ti's pretrained 64-channel heads
    size_overrides={"ti": {"num_heads": 6}},
)
class FactorisedDotProductViViT(SpatioTemporalViViT):
    """Model 4 (paper Sec. 3.3): Model 1 with attention heads split between time (first half) and space.

    Only `classifier="gap"` (as Scenic); `num_heads` must be even. Same parameters as Model 1 (no CLS token).
    See `ViViT` for the arguments.
    """

    allowed_classifiers = ("gap",)

    def __init__(self, num_classes: int | Mapping[str, int], classifier: str = "gap", **kwargs) -> None:
        super().__init__(num_classes, classifier=classifier, **kwargs)

    def _make_blocks(self, depth: int) -> nn.ModuleList:
        nt, nh, nw = self.patch_embed.grid_size
        return self._blocks(depth, attn_layer=partial(FactorisedDotProductAttention, grid=(nt, nh * nw)))

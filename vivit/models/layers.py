"""Transformer building blocks with the official (Scenic/Flax) ViViT semantics.

Names follow timm's VisionTransformer (`norm1`, `attn.qkv`, `attn.proj`, `norm2`, `mlp.fc1/fc2`) so image-ViT
weights map by name. Where they differ from timm it is on purpose, to match Scenic:
LayerNorm eps 1e-6, tanh GELU, xavier-uniform kernels, stochastic depth without rescaling by default.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from vivit.common.checks import check_choice

# Flax LayerNorm uses eps 1e-6 (PyTorch's default is 1e-5).
LayerNorm = partial(nn.LayerNorm, eps=1e-6)

DROP_PATH_MODES = ("official", "timm")


def drop_path_rates(rate: float, depth: int) -> list[float]:
    """Stochastic-depth rate of each layer: a linear ramp from 0 (first layer) to `rate` (last layer).

    Scenic: ``p_l = l / max(L - 1, 1) * rate`` for ``l = 0 .. L-1``. (timm's ramp uses ``linspace(0, rate, L)``,
    which is the same.)
    """
    return [rate * i / max(depth - 1, 1) for i in range(depth)]


def drop_path(x: torch.Tensor, p: float, training: bool, rescale: bool, group: int = 1) -> torch.Tensor:
    """Zero the whole residual branch `x` for a random subset of examples (each dropped with probability p).

    `rescale=True` divides kept branches by 1 - p (timm); `False` keeps them as they are (Scenic).
    `group` consecutive rows of the batch share one decision: the factorised encoder runs its spatial encoder on
    (B * nt) frames and Scenic's `jax.vmap` over time gives every frame of a clip the same decision.
    """
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0] // group,) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    if group > 1:
        mask = mask.repeat_interleave(group, dim=0)
    if rescale and keep > 0.0:
        mask = mask / keep
    return x * mask


class DropPath(nn.Module):
    """Stochastic depth ("droplayer") on a residual branch, per example.

    mode="official" (default): the kept branch is NOT rescaled by 1/(1-p), as in Scenic's ViViT
    (`EncoderBlock.get_drop_pattern`: ``branch * (1 - drop) + residual``), so training and eval outputs differ in
    scale exactly as in the official code. mode="timm": kept branches are rescaled by 1/(1-p) (timm's DropPath).
    In eval mode it is the identity in both modes.
    """

    def __init__(self, p: float = 0.0, mode: str = "official", group: int = 1) -> None:
        super().__init__()
        check_choice("model.drop_path_mode", mode, DROP_PATH_MODES)
        self.p, self.mode, self.group = p, mode, group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training, rescale=self.mode == "timm", group=self.group)

    def extra_repr(self) -> str:
        return f"p={self.p:.3f}, mode={self.mode}, group={self.group}"


class Mlp(nn.Module):
    """Scenic's MlpBlock: Dense -> GELU(tanh) -> Dropout -> Dense -> Dropout."""

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU(approximate="tanh")  # flax.linen.gelu defaults to the tanh approximation
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop2 = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for fc in (self.fc1, self.fc2):
            nn.init.xavier_uniform_(fc.weight)
            nn.init.normal_(fc.bias, std=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class Attention(nn.Module):
    """Multi-head self-attention over the token axis of (B, N, D), computed with PyTorch's fused SDPA.

    q, k and v live in one `qkv` Linear (timm layout: rows [q; k; v]); `dropout` is applied after the output
    projection (Scenic's Dropout after the attention), `attn_dropout` to the attention weights.
    """

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: bool = True, attn_dropout: float = 0.0, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(
                f"model.embed_dim={dim} is not divisible by model.num_heads={num_heads}; "
                "pick a number of heads that divides the embedding width."
            )
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_dropout = attn_dropout
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Flax initialises query, key and value as three separate (D, D) kernels, so xavier's fan is computed
        # per slice; on the fused (3D, D) weight it would give a smaller bound.
        with torch.no_grad():
            for w in self.qkv.weight.chunk(3, dim=0):
                nn.init.xavier_uniform_(w)
        nn.init.xavier_uniform_(self.proj.weight)
        if self.qkv.bias is not None:
            nn.init.zeros_(self.qkv.bias)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = self.attend(q, k, v)  # (B, heads, N, head_dim)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(B, N, D)))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_dropout if self.training else 0.0)


class FactorisedDotProductAttention(Attention):
    """Model 4: half of the heads attend over time, the other half over space (paper Sec. 3.3, Eq. 7).

    Tokens are time-major, (B, nt * ns, D) with ns spatial tokens per frame. As in Scenic's
    `factorized_dot_product_attention`, the FIRST half of the heads attends over time (tokens at the same spatial
    index in all frames) and the SECOND half over space (tokens of the same frame); the outputs are concatenated
    along heads and go through the usual output projection, so the parameters equal those of Model 1.
    """

    def __init__(self, dim: int, num_heads: int, grid: tuple[int, int], **kwargs) -> None:
        if num_heads % 2 != 0:
            raise ValueError(
                f"model.num_heads={num_heads} must be even for FactorisedDotProductViViT (Model 4): half of the "
                "heads attend over time and half over space. Use an even number of heads."
            )
        super().__init__(dim, num_heads, **kwargs)
        self.grid = grid  # (nt, ns)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        B, H, N, hd = q.shape
        nt, ns = self.grid
        p = self.attn_dropout if self.training else 0.0

        def split(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            # 4-D sequences for SDPA: (B, H/2 * ns, nt, hd) over time and (B, H/2 * nt, ns, hd) over space.
            t = t.reshape(B, H, nt, ns, hd)
            time = t[:, : H // 2].transpose(2, 3).reshape(B, -1, nt, hd)
            return time, t[:, H // 2 :].reshape(B, -1, ns, hd)

        (qt, qs), (kt, ks), (vt, vs) = split(q), split(k), split(v)
        time = F.scaled_dot_product_attention(qt, kt, vt, dropout_p=p).reshape(B, H // 2, ns, nt, hd).transpose(2, 3)
        space = F.scaled_dot_product_attention(qs, ks, vs, dropout_p=p).reshape(B, H // 2, nt, ns, hd)
        return torch.cat([time, space], dim=1).reshape(B, H, N, hd)


class Block(nn.Module):
    """Pre-LN transformer block: x + DropPath(MSA(LN(x))), then x + DropPath(MLP(LN(x)))."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        drop_path: float = 0.0,
        drop_path_mode: str = "official",
        drop_path_group: int = 1,
        attn_layer: Callable[..., Attention] = Attention,
    ) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = attn_layer(dim, num_heads, qkv_bias=qkv_bias, attn_dropout=attn_dropout, dropout=dropout)
        self.drop_path1 = DropPath(drop_path, drop_path_mode, drop_path_group)
        self.norm2 = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dropout)
        self.drop_path2 = DropPath(drop_path, drop_path_mode, drop_path_group)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


ATTENTION_ORDERS = ("space_time", "time_space")


class FactorisedSelfAttentionBlock(nn.Module):
    """Model 3 block: spatial self-attention, temporal self-attention, then the MLP (paper Sec. 3.3, Eqs. 4-6).

    `attention_order="space_time"` (default) is the paper's Eqs. 4-6: attend within each frame first, then across
    frames at each spatial index. `"time_space"` attends over time first, which is what Scenic's `time_space`
    option does. Each attention has its own pre-LN and residual. As in Scenic, this block has no stochastic
    depth. Parameter names: `norm1`/`attn` are the spatial (image-ViT) ones, `temporal_norm1`/`temporal_attn`
    the temporal ones, then `norm2`/`mlp`.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        grid: tuple[int, int],
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        attention_order: str = "space_time",
    ) -> None:
        super().__init__()
        check_choice("model.attention_order", attention_order, ATTENTION_ORDERS)
        self.grid = grid  # (nt, ns)
        self.attention_order = attention_order
        attn = partial(Attention, dim, num_heads, qkv_bias=qkv_bias, attn_dropout=attn_dropout, dropout=dropout)
        self.norm1 = LayerNorm(dim)
        self.attn = attn()
        self.temporal_norm1 = LayerNorm(dim)
        self.temporal_attn = attn()
        self.norm2 = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dropout)

    def spatial(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        x = x.reshape(B * self.grid[0], self.grid[1], D)  # one sequence per frame
        x = x + self.attn(self.norm1(x))
        return x.reshape(B, N, D)

    def temporal(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        nt, ns = self.grid
        x = x.reshape(B, nt, ns, D).transpose(1, 2).reshape(B * ns, nt, D)  # one sequence per spatial index
        x = x + self.temporal_attn(self.temporal_norm1(x))
        return x.reshape(B, ns, nt, D).transpose(1, 2).reshape(B, N, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.attention_order == "space_time":
            x = self.temporal(self.spatial(x))
        else:
            x = self.spatial(self.temporal(x))
        return x + self.mlp(self.norm2(x))

"""Video -> tokens (paper Sec. 3.2): tubelet embedding and uniform frame sampling.

Both return (B, nt * nh * nw, D) tokens in time-major order, idx = t * (nh * nw) + h * nw + w, the order of the
official code. The projection is called `patch_embed.proj` in the model (timm's name), so an image ViT's
patch embedding maps onto it by name.
"""

from __future__ import annotations

import numpy as np
import torch
from timm.layers import lecun_normal_
from torch import nn


def sample_frames_uniformly(num_frames: int, n_sampled: int) -> list[int]:
    """Indices of `n_sampled` frames spread evenly over `num_frames`, as Scenic's `sample_frames_uniformly`.

    Scenic takes round(arange(T/(n+1), T, T/(n+1))) clipped to T-1, or all frames when n >= T. `jnp.arange`
    with float arguments is NumPy's float32 arange, whose rounding we reproduce (it decides ties such as
    T=13, n=11, where 6.5 lands on 6.5000005 and rounds to 7). For a few (T, n) that float arange returns one
    position too many (T=8, n=2 gives [3, 5, 7]), so Scenic would sample n+1 frames; we keep the first n so
    that the token count is always n.
    """
    if n_sampled >= num_frames:
        return list(range(num_frames))
    step = num_frames / (n_sampled + 1)
    positions = np.arange(step, num_frames, step, dtype=np.float32)[:n_sampled]
    return np.minimum(np.round(positions), num_frames - 1).astype(int).tolist()


class _VideoEmbedding(nn.Module):
    """Shared checks and geometry: a (t, h, w) token grid over a (T, H, W) clip."""

    def __init__(
        self, img_size: int, num_frames: int, tubelet_size: tuple[int, int, int], in_chans: int, embed_dim: int
    ) -> None:
        super().__init__()
        t, h, w = tubelet_size
        self.img_size, self.num_frames, self.in_chans = img_size, num_frames, in_chans
        self.tubelet_size = (t, h, w)
        self.grid_size = (num_frames // t, img_size // h, img_size // w)  # (nt, nh, nw)
        self.num_patches = self.grid_size[0] * self.grid_size[1] * self.grid_size[2]

    def check_input(self, x: torch.Tensor) -> None:
        expected = (self.in_chans, self.num_frames, self.img_size, self.img_size)
        if x.ndim != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"Expected a video of shape (B, C, T, H, W) = (B, {', '.join(map(str, expected))}) "
                f"(model.in_chans, model.num_frames, model.img_size), got {tuple(x.shape)}. "
                "Make the data's num_frames / crop_size match the model config."
            )


class TubeletEmbedding(_VideoEmbedding):
    """Non-overlapping t x h x w tubelets, linearly projected: a Conv3d with kernel = stride = tubelet size."""

    def __init__(
        self, img_size: int, num_frames: int, tubelet_size: tuple[int, int, int], in_chans: int, embed_dim: int
    ) -> None:
        super().__init__(img_size, num_frames, tubelet_size, in_chans, embed_dim)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=self.tubelet_size, stride=self.tubelet_size)
        lecun_normal_(self.proj.weight)  # Flax's default conv init
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, D, nt, nh, nw) -> (B, nt*nh*nw, D), time-major


class UniformFrameEmbedding(_VideoEmbedding):
    """Uniform frame sampling: nt = num_frames // t frames, each cut into 2-D h x w patches (a Conv2d).

    The tubelet's t only sets how many frames are sampled, so a config switches between the two embeddings
    without changing the token count (paper Table 1: 8 sampled frames of 32 vs tubelets with t = 4).
    """

    def __init__(
        self, img_size: int, num_frames: int, tubelet_size: tuple[int, int, int], in_chans: int, embed_dim: int
    ) -> None:
        super().__init__(img_size, num_frames, tubelet_size, in_chans, embed_dim)
        self.frame_indices = sample_frames_uniformly(num_frames, self.grid_size[0])
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=self.tubelet_size[1:], stride=self.tubelet_size[1:])
        lecun_normal_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        B, C, _, H, W = x.shape
        if len(self.frame_indices) < x.shape[2]:
            x = x[:, :, self.frame_indices]
        n = x.shape[2]
        x = self.proj(x.transpose(1, 2).reshape(B * n, C, H, W))  # every frame on its own
        return x.flatten(2).transpose(1, 2).reshape(B, -1, x.shape[1])  # (B, n*nh*nw, D), time-major

"""ViViT models: pure PyTorch, no Lightning or Hydra."""

from .embedding import TubeletEmbedding, UniformFrameEmbedding, sample_frames_uniformly
from .layers import (
    Attention,
    Block,
    DropPath,
    FactorisedDotProductAttention,
    FactorisedSelfAttentionBlock,
    Mlp,
    drop_path,
    drop_path_rates,
)
from .vivit import (
    FactorisedDotProductViViT,
    FactorisedEncoderViViT,
    FactorisedSelfAttentionViViT,
    SpatioTemporalViViT,
    ViViT,
)

__all__ = [
    "Attention",
    "Block",
    "DropPath",
    "FactorisedDotProductAttention",
    "FactorisedDotProductViViT",
    "FactorisedEncoderViViT",
    "FactorisedSelfAttentionBlock",
    "FactorisedSelfAttentionViViT",
    "Mlp",
    "SpatioTemporalViViT",
    "TubeletEmbedding",
    "UniformFrameEmbedding",
    "ViViT",
    "drop_path",
    "drop_path_rates",
    "sample_frames_uniformly",
]

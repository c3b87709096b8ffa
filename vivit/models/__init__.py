"""The ViViT models, pure PyTorch: embeddings, attention and blocks, the paper's four variants, the zoo of
variant x size (`create_model("vivit_b_fe", num_classes=400)`) and the FLOPs counter.

May import: vivit.common (and torch, timm.layers). No Lightning, no Hydra.
"""

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
from .registry import (
    INIT_KEYS,
    SIZES,
    VARIANTS,
    block_classes,
    build_model,
    create_model,
    model_class,
    model_config,
    model_names,
    register_variant,
    variant_of,
)
from .vivit import (
    FactorisedDotProductViViT,
    FactorisedEncoderViViT,
    FactorisedSelfAttentionViViT,
    SpatioTemporalViViT,
    ViViT,
)

__all__ = [
    "INIT_KEYS",
    "SIZES",
    "VARIANTS",
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
    "block_classes",
    "build_model",
    "create_model",
    "drop_path",
    "drop_path_rates",
    "model_class",
    "model_config",
    "model_names",
    "register_variant",
    "sample_frames_uniformly",
    "variant_of",
]

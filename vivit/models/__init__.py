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

# The transformer block classes of the four variants: FSDP's wrapping and activation-checkpointing unit
# (conf/trainer/fsdp.yaml). ST, FE (spatial and temporal encoders) and FDP stack `Block`; FSA its own block.
BLOCK_CLASSES = frozenset({Block, FactorisedSelfAttentionBlock})


def block_classes() -> set[type]:
    """BLOCK_CLASSES as a new set (Lightning turns a set of classes into FSDP's ModuleWrapPolicy)."""
    return set(BLOCK_CLASSES)


# The paper's four models by the short names the configs use (vivit_b_st, vivit_b_fe, ...).
VARIANTS = {
    "st": SpatioTemporalViViT,
    "fe": FactorisedEncoderViViT,
    "fsa": FactorisedSelfAttentionViViT,
    "fdp": FactorisedDotProductViViT,
}

__all__ = [
    "BLOCK_CLASSES",
    "block_classes",
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
    "VARIANTS",
    "ViViT",
    "drop_path",
    "drop_path_rates",
    "sample_frames_uniformly",
]

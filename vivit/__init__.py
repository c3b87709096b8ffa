"""ViViT in PyTorch: models in `vivit.models`, pretrained initialisation in `vivit.pretrained`, checkpoint
conversion in `vivit.convert` (`python -m vivit.convert`)."""

from vivit.checkpoint import load_checkpoint

__all__ = ["load_checkpoint"]

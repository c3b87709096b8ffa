"""ViViT in PyTorch: models in `vivit.models`, pretrained initialisation in `vivit.pretrained`, checkpoint
conversion in `vivit.convert` (`python -m vivit.convert`), predictions in `vivit.predict` (`vivit.inference`)."""

from vivit.checkpoint import load_checkpoint

__all__ = ["load_checkpoint", "predict"]


def predict(ckpt_path, videos, topk=5, **options):
    """Top-k class names with probabilities per video; see `vivit.inference.predict` for the options."""
    from vivit.inference import predict as run  # imports the data path only when asked

    return run(ckpt_path, videos, topk=topk, **options)

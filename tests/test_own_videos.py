"""Your own videos, end to end: `experiment=own_videos` on a small class-folder set learns it, from an image ViT
file; the run warns when flips would turn one class into another."""

from __future__ import annotations

import logging

import pytest
import torch

from tests.conftest import compose_config
from tests.fixtures.own_videos import COLOURS, make_own_videos
from vivit.tasks.build import warn_directions_flipped
from vivit.tasks.train import train


@pytest.fixture(scope="session")
def own_videos(tmp_path_factory):
    """3 classes x (8 train + 8 val) clips of 16 frames at 32x32, in class folders."""
    return make_own_videos(tmp_path_factory.mktemp("own_videos") / "mine")


@pytest.fixture(scope="session")
def image_vit_file(tmp_path_factory):
    """An image ViT saved as a timm state dict (random weights: no download), of the width and depth below."""
    from safetensors.torch import save_file
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2, num_classes=0)
    path = tmp_path_factory.mktemp("vit") / "vit_tiny.safetensors"
    save_file(vit.state_dict(), str(path))
    return path


def own_videos_overrides(root, vit) -> list[str]:
    """The preset on a CPU in seconds: the demo model made narrower (its image ViT is the file above), one thread,
    the test split skipped. Optimiser, schedule, epochs, batch and data pipeline are the preset's."""
    return [
        "experiment=own_videos",
        f"data.root={root}",
        "model=vivit_tiny",
        "model.embed_dim=32",
        "model.depth=1",
        "model.num_heads=2",
        f"model.init={vit}",
        "threads=1",
        "trainer.accelerator=cpu",
        "logger=none",
        "data.num_workers=0",
        "data.cache_decoded=true",
        "test=false",
    ]


def test_the_own_videos_preset_learns_a_small_folder_set(own_videos, image_vit_file, tmp_path):
    cfg = compose_config("train", own_videos_overrides(own_videos, image_vit_file), output_dir=tmp_path)
    assert (cfg.optim.optimizer.lr, cfg.data.batch_size, cfg.trainer.max_epochs) == (0.01, 8, 30)
    summary = train(cfg)
    chance = 1 / len(COLOURS)
    assert summary["val"]["val/top1"] >= 0.75 > chance, summary["val"]


def test_class_names_with_a_direction_warn_when_clips_are_flipped(caplog):
    with caplog.at_level(logging.WARNING, logger="vivit.tasks.build"):
        warn_directions_flipped(["Pushing something from left to right", "turn_left", "rotate clockwise"])
        warn_directions_flipped({"verb": ["open", "bright light"], "noun": ["leftover", "copyright"]})
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "data.hflip=false" in message and "'turn_left'" in message and "'rotate clockwise'" in message

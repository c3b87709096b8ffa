"""VideoDataModule batches follow the contract; num_classes is checked; DDP shards evaluate each video once."""

import pytest
import torch

from datamodules import SyntheticVideos, VideoDataModule

SMALL = dict(num_train=32, num_val=16, num_test=16, workers=2)


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    index = SyntheticVideos(tmp_path_factory.mktemp("dm") / "synthetic", **SMALL)
    index.prepare()
    return index


def make(index, **kwargs):
    args = dict(num_classes=8, num_frames=8, crop_size=32, batch_size=8, scale_jitter=None, test_views="2x3")
    return VideoDataModule(index, **{**args, **kwargs})


@pytest.mark.parametrize("cache_decoded", [False, True])
def test_batches_follow_the_contract(index, cache_decoded):
    dm = make(index, cache_decoded=cache_decoded)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    train = next(iter(dm.train_dataloader()))
    assert train["video"].shape == (8, 3, 8, 32, 32) and train["video"].dtype == torch.float32
    assert train["label"].shape == (8,) and train["label"].dtype == torch.long
    assert train["index"].dtype == torch.long and set(train) == {"video", "label", "index"}
    assert -1.0 <= train["video"].min() < 0 < train["video"].max() <= 1.0  # [-1, 1] normalisation
    val = next(iter(dm.val_dataloader()))
    assert val["video"].shape == (8, 3, 8, 32, 32) and val["valid"].dtype == torch.bool and val["valid"].all()
    test = next(iter(dm.test_dataloader()))
    assert test["video"].shape == (1, 6, 3, 8, 32, 32)  # batch 8 // 6 views = 1 video per batch
    assert test["valid"].shape == (1,)
    assert len(dm.train_dataloader()) == 4 and len(dm.val_dataloader()) == 2 and len(dm.test_dataloader()) == 16


def test_cached_and_decoded_batches_agree(index):
    batches = []
    for cache in (False, True):
        dm = make(index, cache_decoded=cache)
        dm.setup("validate")
        batches.append(next(iter(dm.val_dataloader())))
    torch.testing.assert_close(batches[0]["video"], batches[1]["video"])
    assert torch.equal(batches[0]["label"], batches[1]["label"])


def test_num_classes_mismatch_names_the_key(index):
    dm = make(index, num_classes=10)
    with pytest.raises(ValueError, match=r"data\.num_classes.*8 classes"):
        dm.setup("fit")


def test_workers_give_the_same_batches_shape(index):
    dm = make(index, num_workers=2)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.persistent_workers
    batch = next(iter(loader))
    assert batch["video"].shape == (8, 3, 8, 32, 32)

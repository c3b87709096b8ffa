"""VideoDataModule batches follow the contract; num_classes is checked; DDP shards evaluate each video once."""

import pytest
import torch

from vivit.datamodules import SyntheticVideos, VideoDataModule
from vivit.datamodules.datamodule import PADDING

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
    assert train["index"].dtype == torch.long and set(train) == {"video", "label", "index", "unreadable"}
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


# ----------------------------------------------------------------- exact frames through the whole pipeline

from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402

from tests.fixtures.videos import read_code, write_video  # noqa: E402
from vivit.datamodules import FolderVideos, VideoReadError  # noqa: E402
from vivit.datamodules.sampling import centre_indices, linspaced_indices  # noqa: E402


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    """Videos showing their frame index: square ones for train/val, wide ones (W > H) for the 3-crop test."""
    root = tmp_path_factory.mktemp("coded")
    lengths = {"train": [40, 6], "val": [40, 6, 23], "test": [40, 6]}
    for split, sizes in lengths.items():
        rows = ["path,label"]
        for n, length in enumerate(sizes):
            width = 96 if split == "test" else 64
            write_video(root / f"{split}{n}.mp4", length, 64, width, fps=25, gop=10)
            rows.append(f"{split}{n}.mp4,c{n % 2}")
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return root, lengths


def codes(clip: torch.Tensor, band=(0, 64)) -> list[int]:
    """Frame indices shown in a (C, T, H, W) clip normalised with mean 0, std 1."""
    frames = (clip * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 3, 0).numpy()
    return [read_code(frame, band) for frame in frames]


def coded_module(root, **kwargs):
    args = dict(
        num_classes=2,
        num_frames=4,
        stride=3,
        crop_size=64,
        batch_size=2,
        test_views="3x3",
        scale_jitter=None,
        hflip=False,
        mean=(0, 0, 0),
        std=(1, 1, 1),
    )
    return VideoDataModule(FolderVideos(root), **{**args, **kwargs})


@pytest.mark.parametrize("cache_decoded", [False, True])
def test_exact_frames_for_train_val_and_every_test_view(coded, cache_decoded):
    root, lengths = coded
    dm = coded_module(root, cache_decoded=cache_decoded)
    dm.setup("fit")
    dm.setup("test")
    val = dm.datasets["val"]
    for i, length in enumerate(lengths["val"]):
        assert codes(val[i]["video"]) == centre_indices(length, 4, 3).tolist()  # 6 frames: wraps
    train = dm.datasets["train"]
    torch.manual_seed(0)
    for i, length in enumerate(lengths["train"]):
        offsets = set()
        for _ in range(30):
            got = codes(train[i]["video"])
            offsets.add(got[0])
            assert got == [(got[0] + 3 * k) % length for k in range(4)]
        high = max(length - 9, 1)
        assert offsets <= set(range(high)) and len(offsets) >= min(high, 5)  # scenic's range, and random
    test = dm.datasets["test"]
    for i, length in enumerate(lengths["test"]):
        item = test[i]
        assert item["video"].shape == (9, 3, 4, 64, 64) and item["valid"]
        for clip, indices in enumerate(linspaced_indices(length, 4, 3, 3)):
            for crop, left in enumerate([0, 16, 32]):  # left/centre/right of a 96-wide frame
                view = item["video"][clip * 3 + crop]  # clip-major
                assert codes(view, band=(32 - left, 64 - left)) == indices.tolist()


def test_seeded_workers_reproduce_batches(coded):
    root, _ = coded
    batches = []
    for _ in range(2):
        dm = coded_module(root, num_workers=2, hflip=True, scale_jitter=(0.9, 1.33), persistent_workers=False)
        dm.setup("fit")
        torch.manual_seed(123)
        batches.append([b for b in dm.train_dataloader()])
    for a, b in zip(*batches):
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["video"], b["video"])


# ------------------------------------------------------------------------------------------- bad data


@pytest.fixture()
def broken(coded, tmp_path):
    root, _ = coded
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(3000))
    data = (root / "train0.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    rows = [
        "path,label",
        f"{root}/train0.mp4,c0",
        "missing.mp4,c1",
        "noise.mp4,c0",
        "cut.mp4,c1",
        f"{root}/train1.mp4,c1",
    ]
    for split in ("train", "val", "test"):
        (tmp_path / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_bad_videos_are_replaced_in_training_and_counted(broken):
    dm = coded_module(broken)
    dm.setup("fit")
    train = dm.datasets["train"]
    items = [train[i] for i in range(5)]
    assert all(item["video"].shape == (3, 4, 64, 64) for item in items)
    assert all(item["index"] in (0, 4) for item in items)  # the three bad ones replaced by readable ones
    assert sum(item["unreadable"] for item in items) >= 3  # each item says how many videos it replaced


def test_bad_videos_are_invalid_in_evaluation(broken):
    dm = coded_module(broken)
    dm.setup("test")
    dm.setup("validate")
    batch = next(iter(torch.utils.data.DataLoader(dm.datasets["test"], batch_size=5)))
    assert batch["valid"].tolist() == [True, False, False, False, True]
    assert batch["video"].shape == (5, 9, 3, 4, 64, 64) and batch["video"][1].abs().sum() == 0
    assert batch["label"].tolist() == [0, 1, 0, 1, 1]  # labels kept: the module counts them as wrong
    val = [dm.datasets["val"][i]["valid"] for i in range(5)]
    assert val == [True, False, False, False, True]


def test_on_error_raise(broken):
    dm = coded_module(broken, on_error="raise")
    dm.setup("fit")
    with pytest.raises(VideoReadError, match="missing.mp4"):
        dm.datasets["train"][1]
    with pytest.raises(VideoReadError, match="noise.mp4"):
        dm.datasets["val"][2]
    with pytest.raises(VideoReadError, match="missing.mp4"):
        coded_module(broken, on_error="raise", cache_decoded=True).setup("fit")
    with pytest.raises(VideoReadError, match="cut.mp4"):
        dm.datasets["train"][3]


def test_bad_videos_with_cache_and_workers_are_marked(broken):
    dm = coded_module(broken, cache_decoded=True, num_workers=2, persistent_workers=False)
    dm.setup("validate")
    batches = list(dm.val_dataloader())
    assert torch.cat([b["valid"] for b in batches]).tolist() == [True, False, False, False, True]


# ------------------------------------------------------------------------------------------------ DDP


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_ddp_val_and_test_see_every_video_exactly_once(index, world_size):
    seen, counts = {"val": [], "test": []}, {"val": set(), "test": set()}
    for rank in range(world_size):
        dm = make(index, batch_size=3)
        dm.trainer = SimpleNamespace(world_size=world_size, global_rank=rank)
        dm.setup("validate")
        dm.setup("test")
        for mode, loader in (("val", dm.val_dataloader()), ("test", dm.test_dataloader())):
            batches = [[int(i) for i in batch["index"]] for batch in loader]
            seen[mode] += [i for batch in batches for i in batch if i != PADDING]  # padding: index -1
            counts[mode].add(len(batches))
    assert len(counts["val"]) == len(counts["test"]) == 1, counts  # every rank runs as many batches
    assert sorted(seen["val"]) == list(range(16)) and sorted(seen["test"]) == list(range(16))


def training_shards(index, monkeypatch, seed: int, epoch: int, world_size: int = 2) -> list[list[int]]:
    """Each rank's training items of `epoch`, from a loader made the way a rank makes it after its own
    `seed_everything(seed + rank)` (PL_GLOBAL_SEED and the generators differ per rank), e.g. on a reload."""
    from torch.utils.data import DistributedSampler

    shards = []
    for rank in range(world_size):
        monkeypatch.setenv("PL_GLOBAL_SEED", str(seed + rank))
        torch.manual_seed(seed + rank)
        dm = make(index, seed=seed)
        dm.trainer = SimpleNamespace(world_size=world_size, global_rank=rank)
        dm.setup("fit")
        loader = dm.train_dataloader()
        assert isinstance(loader.sampler, DistributedSampler)  # Lightning keeps it (use_distributed_sampler)
        loader.sampler.set_epoch(epoch)
        shards.append(list(loader.sampler))
    return shards


def test_training_shards_are_a_function_of_seed_epoch_and_rank(index, monkeypatch):
    for epoch in range(3):
        shards = training_shards(index, monkeypatch, seed=7, epoch=epoch)
        assert sorted(shards[0] + shards[1]) == list(range(32))  # disjoint, every item once
        assert training_shards(index, monkeypatch, seed=7, epoch=epoch) == shards  # whatever the process state
    assert training_shards(index, monkeypatch, seed=7, epoch=1) != training_shards(index, monkeypatch, 7, epoch=0)
    assert training_shards(index, monkeypatch, seed=8, epoch=0) != training_shards(index, monkeypatch, 7, epoch=0)


def test_a_mid_epoch_position_skips_the_batches_done_once(index):
    from vivit.datamodules.sampler import items_seed

    dm = make(index, seed=3)
    dm.setup("fit")
    dm.load_state_dict({"train_position": [2, 1]})  # epoch 2, one batch of 8 done
    loader = dm.train_dataloader()
    full = loader.sampler.shard(2)
    assert [int(i) for b in loader for i in b["index"]] == full[8:]
    assert dm.datasets["train"].item_seed.value == items_seed(3, 2)
    assert [int(i) for b in loader for i in b["index"]] == full  # the next pass over the epoch is whole


def test_multi_head_labels(coded):
    """An index with one class list per head (e.g. EPIC verb/noun) gives label dicts; None -> -1."""
    from vivit.datamodules import VideoRecord

    root, _ = coded

    class TwoHeads:
        classes = {"verb": ["v0", "v1", "v2"], "noun": ["n0", "n1"]}

        def records(self, split):
            return [
                VideoRecord(root / "val0.mp4", {"verb": 2, "noun": 1}, "a"),
                VideoRecord(root / "val1.mp4", None, "b"),
            ]

    dm = VideoDataModule(TwoHeads(), num_classes={"verb": 3, "noun": 2}, num_frames=4, crop_size=64, batch_size=2)
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    assert batch["label"]["verb"].tolist() == [2, -1] and batch["label"]["noun"].tolist() == [1, -1]
    with pytest.raises(ValueError, match="data.num_classes"):
        VideoDataModule(TwoHeads(), num_classes={"verb": 3, "noun": 3}, num_frames=4, crop_size=64).setup("fit")

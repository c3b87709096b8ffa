"""Exactly the right frames reach the model from each miniature release: train, val and every test view;
EPIC's 60/50 fps rule on .MP4 videos; unreadable files of a release are counted, not fatal."""

import numpy as np
import pytest
import torch

from tests.fixtures import releases
from tests.fixtures.videos import read_code, read_codes
from vivit.datamodules import VideoDataModule, VideoDataset
from vivit.datamodules.index import EpicKitchens100, Kinetics, MomentsInTime, SomethingSomethingV2
from vivit.datamodules.sampling import centre_indices, linspaced_indices

NUM_FRAMES = 8


class Codes:
    """Stand-in transform: the code every frame shows, as a (1, T) tensor (one "crop"), read before any crop."""

    crop_size = 8

    def __call__(self, video) -> torch.Tensor:
        return torch.tensor([read_codes(video.permute(0, 2, 3, 1).numpy())])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("frames")
    k400, ssv2 = releases.make_kinetics(base / "k400"), releases.make_ssv2(base / "ssv2")
    epic, mit = releases.make_epic_frames(base / "epic"), releases.make_mit(base / "mit")
    return {
        "k400": (k400, Kinetics(k400.root, cache_dir=False), 2),  # (release, index, stride of its config)
        "ssv2": (ssv2, SomethingSomethingV2(ssv2.root, cache_dir=False), 1),
        "epic": (epic, EpicKitchens100(epic.root, cache_dir=False), 1),
        "mit": (mit, MomentsInTime(mit.root, cache_dir=False), 2),
    }


def dataset(index, split, stride, mode=None, views=(1, 1)):
    heads = list(index.classes) if isinstance(index.classes, dict) else None
    return VideoDataset(
        index.records(split),
        mode or split,
        NUM_FRAMES,
        stride,
        short_side=48,
        transform=Codes(),
        views=views,
        heads=heads,
        on_error="raise",
    )


@pytest.mark.parametrize("name", ["k400", "ssv2", "epic", "mit"])
def test_val_and_every_test_view_decode_exactly_the_sampled_frames(built, name):
    release, index, stride = built[name]
    val = dataset(index, "val", stride)
    for i, record in enumerate(val.records):
        length, first = release.frames[record.id], release.first_code[record.id]
        expected = (first + centre_indices(length, NUM_FRAMES, stride)) % releases.CODE_MOD
        assert val[i]["video"].tolist() == expected.tolist(), record.id
    test = dataset(index, "test", stride, views=(4, 1))
    for i, record in enumerate(test.records):
        length, first = release.frames[record.id], release.first_code[record.id]
        got = test[i]["video"]  # (4 clips, T)
        for clip, indices in enumerate(linspaced_indices(length, NUM_FRAMES, stride, 4)):
            assert got[clip].tolist() == ((first + indices) % releases.CODE_MOD).tolist(), (record.id, clip)


@pytest.mark.parametrize("name", ["k400", "ssv2", "epic", "mit"])
def test_training_clips_are_strided_runs_from_a_random_offset_in_scenics_range(built, name):
    release, index, stride = built[name]
    train = dataset(index, "train", stride)
    torch.manual_seed(0)
    for i, record in enumerate(train.records):
        length, first = release.frames[record.id], release.first_code[record.id]
        offsets = set()
        for _ in range(6):
            got = np.array(train[i]["video"][0].tolist())
            offset = (got[0] - first) % releases.CODE_MOD
            expected = (first + (offset + stride * np.arange(NUM_FRAMES)) % length) % releases.CODE_MOD
            assert got.tolist() == expected.tolist(), record.id
            offsets.add(offset)
        assert max(offsets) < max(length - (NUM_FRAMES - 1) * stride, 1)
        assert len(offsets) > 1 or length - (NUM_FRAMES - 1) * stride <= 1


def test_epic_three_spatial_crops_through_the_real_transforms(built):
    """The config's alternative 4x3 protocol on EPIC's wide frames: left/centre/right crops, clip-major."""
    release, index, _ = built["epic"]
    dm = VideoDataModule(
        index,
        num_classes={"noun": 300, "verb": 97},
        num_frames=NUM_FRAMES,
        stride=1,
        crop_size=48,
        test_views="4x3",
        scale_jitter=None,
        hflip=False,
        mean=(0, 0, 0),
        std=(1, 1, 1),
        on_error="raise",
    )
    dm.setup("test")
    item, record = dm.datasets["test"][0], index.records("test")[0]
    assert item["label"] == record.label and item["video"].shape == (12, 3, NUM_FRAMES, 48, 48)
    length, first = release.frames[record.id], release.first_code[record.id]
    for clip, indices in enumerate(linspaced_indices(length, NUM_FRAMES, 1, 4)):
        for crop, left in enumerate([0, 16, 32]):  # 80-wide frames, 48 crops
            view = item["video"][clip * 3 + crop]
            frames = (view * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 3, 0).numpy()
            assert [read_code(f, (32 - left, 48 - left)) for f in frames] == (first + indices).tolist()


def test_epic_videos_use_the_60_50_fps_rule_not_the_native_rate(tmp_path):
    """P01_11.MP4 runs at 30 fps and P01_101.MP4 at 25 fps; their annotations count at 60 and 50 fps, so clip
    frame j (file number start_frame + j) is native frame (start_frame - 1 + j) // 2 in both."""
    release = releases.make_epic_videos(tmp_path / "epic")
    for test_file in ("EPIC_100_validation.csv", "EPIC_100_test_timestamps.csv"):
        index = EpicKitchens100(release.root, source="videos", test=test_file, cache_dir=False)
        test = dataset(index, "test", 1, views=(3, 1))
        for i, record in enumerate(test.records):
            start_frame = round(record.start * record.fps) + 1
            length = round((record.end - record.start) * record.fps)
            assert length == release.frames.get(record.id, length)
            for clip, indices in enumerate(linspaced_indices(length, NUM_FRAMES, 1, 3)):
                assert test[i]["video"][clip].tolist() == ((start_frame - 1 + indices) // 2).tolist(), record.id
    val = dataset(EpicKitchens100(release.root, source="videos", cache_dir=False), "val", 1)
    record = val.records[1]  # P01_11_1: frames 93..147 at 60 fps
    assert val[1]["video"].tolist() == ((92 + centre_indices(55, NUM_FRAMES, 1)) // 2).tolist()
    assert record.id == "P01_11_1"


def test_unreadable_videos_of_a_release_are_counted_not_fatal(tmp_path):
    release = releases.make_kinetics(tmp_path / "k400")
    val = release.root / "val"
    first, second = sorted(val.iterdir())
    data = second.read_bytes()
    second.write_bytes(data[: len(data) // 2])  # truncated (the mp4 index is lost)
    index = Kinetics(release.root, cache_dir=tmp_path / "cache")
    assert len(index.records("val")) == 2  # still on disk: indexed; reading it fails
    dm = VideoDataModule(
        index, num_classes=3, num_frames=NUM_FRAMES, stride=2, crop_size=32, test_views="2x3", batch_size=2
    )
    dm.setup("validate")
    first.unlink()  # vanished after indexing
    batch = next(iter(dm.val_dataloader()))
    assert batch["valid"].tolist() == [False, False]
    assert batch["label"].tolist() == release.labels["val"]

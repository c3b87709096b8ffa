"""Transforms keep (C, T, H, W), apply the same parameters to every frame, and crop where scenic does."""

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from vivit.datamodules.transforms import (
    ColourAugment,
    EvalTransform,
    ScaleJitter,
    VideoRandAugment,
    crop_offsets,
    to_video,
    train_transform,
)


def ramp_clip(t=4, h=40, w=56):
    """uint8 (T, H, W, 3): pixel value encodes (row, column) so crops and flips can be located."""
    rows, cols = np.mgrid[0:h, 0:w]
    frame = np.stack([rows * 4 % 256, cols * 4 % 256, (rows + cols) % 256], -1).astype(np.uint8)
    return np.repeat(frame[None], t, 0)


def test_train_transform_same_crop_and_flip_for_every_frame():
    torch.manual_seed(0)
    transform = train_transform(32, scale_jitter=None, hflip=True, mean=(0, 0, 0), std=(1, 1, 1))
    clip = ramp_clip()
    flips = set()
    for _ in range(20):
        out = transform(to_video(clip))
        assert out.shape == (3, 4, 32, 32) and out.dtype == torch.float32
        assert all(torch.equal(out[:, 0], out[:, k]) for k in range(1, 4))  # identical frames stay identical
        first = (out[:, 0] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        top, left = first[0, 0, 0] // 4, first[0, 0, 1] // 4
        flipped = first[0, 1, 1] < first[0, 0, 1]
        flips.add(bool(flipped))
        col0 = left if not flipped else first[0, -1, 1] // 4
        np.testing.assert_array_equal(
            first[..., 0], clip[0, top : top + 32, col0 : col0 + 32, 0][:, :: -1 if flipped else 1]
        )
    assert flips == {True, False}


def test_frames_differ_but_get_the_same_parameters():
    """Frame k of a transformed clip equals frame k transformed alone with the same random draws:
    jitter, crop, flip and colour change are drawn once per clip."""
    clip = np.random.default_rng(0).integers(0, 256, (4, 36, 36, 3), dtype=np.uint8)
    transform = train_transform(32, scale_jitter=(0.9, 1.33), hflip=True, colour_augment=True)
    for seed in range(5):
        torch.manual_seed(seed)
        out = transform(to_video(clip))
        assert out.shape == (3, 4, 32, 32)
        for k in range(4):
            torch.manual_seed(seed)
            alone = transform(to_video(clip[k : k + 1]))
            torch.testing.assert_close(out[:, k], alone[:, 0], atol=1e-5, rtol=0)


def test_scale_jitter_ranges_and_minimum():
    torch.manual_seed(0)
    video = to_video(ramp_clip(2, 100, 200))
    sizes = np.array([ScaleJitter(0.9, 1.33)(video).shape[-2:] for _ in range(300)])
    assert sizes[:, 0].min() >= 90 and sizes[:, 0].max() < 133 and sizes[:, 1].min() >= 180 and sizes[:, 1].max() < 266
    assert np.corrcoef(sizes[:, 0], sizes[:, 1])[0, 1] < 0.3  # independent factors: aspect ratio jitters
    assert min(ScaleJitter(0.5, 0.6, min_size=80)(video).shape[-2:]) == 80


@pytest.mark.parametrize("op", VideoRandAugment.OPS)
def test_randaugment_ops_are_consistent_across_frames(op):
    torch.manual_seed(0)
    frame = np.random.default_rng(1).integers(40, 200, (1, 32, 40, 3), dtype=np.uint8)  # room to stretch
    video = to_video(np.repeat(frame, 3, 0))
    augment = VideoRandAugment(num_layers=1, magnitude=7)  # enhance x1.36, solarize at 179, posterize 2 bits
    out = augment.transform(video, {"ops": [op], "cutout_centre": (10, 20)})
    assert out.shape == video.shape and out.dtype == torch.uint8 and isinstance(out, tv_tensors.Video)
    assert all(torch.equal(out[0], out[k]) for k in (1, 2))
    if op != "Identity":
        assert not torch.equal(out, video), f"{op} changed nothing"


def test_randaugment_magnitudes_follow_tf():
    video = to_video(np.full((2, 8, 8, 3), 100, np.uint8))
    augment = VideoRandAugment(num_layers=1, magnitude=10)
    brighter = augment.transform(video, {"ops": ["Brightness"], "cutout_centre": (0, 0)})
    assert int(brighter[0, 0, 0, 0]) == 190  # factor 10/10 * 1.8 + 0.1 = 1.9
    added = augment.transform(video, {"ops": ["SolarizeAdd"], "cutout_centre": (0, 0)})
    assert int(added[0, 0, 0, 0]) == 210  # +110 below the threshold 128
    cut = VideoRandAugment(magnitude=1).transform(video, {"ops": ["Cutout"], "cutout_centre": (4, 4)})
    assert (cut[:, :, 0:8, 0:8] == 128).all()  # pad 4 -> an 8x8 grey square, clipped to the frame
    # Equalize sees the whole clip: a clip whose frames differ is equalised with one histogram.
    clip = to_video(np.stack([np.full((8, 8, 3), 50, np.uint8), np.full((8, 8, 3), 60, np.uint8)]))
    eq = augment.transform(clip, {"ops": ["Equalize"], "cutout_centre": (0, 0)})
    assert int(eq[0].max()) != int(eq[1].max())  # per-frame equalisation would map both to the same value


def test_randaugment_scenic_compat_reproduces_tf_models_contrast_and_scenic_cutout():
    """On a fixed clip of 4 frames of 64 x 64 (16,384 pixels; grey levels 40 and 120, mean 80) at magnitude 10
    (enhance factor 1.9). TF-Models' Contrast blends toward (pixel count / 256) = 64 instead of the mean:
    64 + 1.9 * (40 - 64) = 18.4 -> 18 and 64 + 1.9 * (120 - 64) = 170.4 -> 170 (truncated, as tf.cast)."""
    frame = np.full((64, 64, 3), 40, np.uint8)
    frame[:, 32:] = 120
    video = to_video(np.repeat(frame[None], 4, 0))
    contrast = {"ops": ["Contrast"], "cutout_centre": (32, 32)}
    scenic = VideoRandAugment(num_layers=1, magnitude=10, scenic_compat=True).transform(video, contrast)
    assert sorted(torch.unique(scenic).tolist()) == [18, 170]
    # the intended op blends toward the clip's grey mean (~80): 40 -> ~4, 120 -> ~156
    ours = VideoRandAugment(num_layers=1, magnitude=10).transform(video, contrast)
    assert torch.equal(ours, F.adjust_contrast(video.as_subclass(torch.Tensor), 1.9))
    assert ours[0, 0, 0, 0] <= 6 and 154 <= ours[0, 0, 0, 40] <= 158
    # the target depends on the clip's size, not its content: a uniform clip, which Contrast cannot change, changes
    flat = to_video(np.full((4, 64, 64, 3), 50, np.uint8))
    assert torch.equal(VideoRandAugment(magnitude=10).transform(flat, contrast), flat)
    assert int(VideoRandAugment(magnitude=10, scenic_compat=True).transform(flat, contrast)[0, 0, 0, 0]) == 37
    cutout = {"ops": ["Cutout"], "cutout_centre": (32, 32)}
    assert int(VideoRandAugment(magnitude=1, scenic_compat=True).transform(video, cutout)[0, 0, 32, 32]) == 0
    assert int(VideoRandAugment(magnitude=1).transform(video, cutout)[0, 0, 32, 32]) == 128


def test_colour_augment_whole_clip():
    torch.manual_seed(0)
    video = tv_tensors.Video(torch.rand(4, 3, 8, 8))
    same = tv_tensors.Video(video[:1].repeat(4, 1, 1, 1))
    out = ColourAugment(p=1.0, p_gray=1.0)(same)
    assert all(torch.allclose(out[0], out[k]) for k in range(1, 4))
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])  # grayscale
    assert 0 <= out.min() and out.max() <= 1
    params = ColourAugment().make_params([video])
    assert abs(params["brightness"]) <= 32 / 255 and 0.6 <= params["saturation"] <= 1.4 and abs(params["hue"]) <= 0.2


def test_eval_centre_and_three_crops():
    clip = ramp_clip(2, 40, 56)
    centre = EvalTransform(32, 1, mean=(0, 0, 0), std=(1, 1, 1))(to_video(clip))
    assert centre.shape == (1, 3, 2, 32, 32)
    assert crop_offsets(56, 32, 1) == [12] and crop_offsets(56, 32, 3) == [0, 12, 24]
    three = EvalTransform(32, 3, mean=(0, 0, 0), std=(1, 1, 1))(to_video(clip))
    assert three.shape == (3, 3, 2, 32, 32)
    lefts = [int(round(float(v[1, 0, 0, 0]) * 255)) // 4 for v in three]
    tops = [int(round(float(v[0, 0, 0, 0]) * 255)) // 4 for v in three]
    assert lefts == [0, 12, 24] and tops == [4, 4, 4]  # W > H: left/centre/right, vertically centred
    tall = EvalTransform(32, 3, mean=(0, 0, 0), std=(1, 1, 1))(to_video(ramp_clip(2, 56, 40)))
    assert [int(round(float(v[0, 0, 0, 0]) * 255)) // 4 for v in tall] == [0, 12, 24]  # top/centre/bottom
    torch.testing.assert_close(three[1], centre[0])


def test_normalisation_to_minus_one_one():
    clip = np.zeros((2, 32, 32, 3), np.uint8)
    clip[1] = 255
    out = EvalTransform(32)(to_video(clip))[0]
    assert float(out[:, 0].max()) == -1.0 and float(out[:, 1].min()) == 1.0

"""Frame-index math of scenic's sampling (train random clip, val centre clip, test linspaced clips)."""

import numpy as np
import pytest
import torch

from vivit.datamodules.sampling import centre_indices, clip_indices, linspaced_indices, parse_views, train_indices


def test_clip_wraps_past_the_end():
    assert clip_indices(3, 5, 4, 1).tolist() == [3, 4, 0, 1]
    assert clip_indices(0, 3, 8, 1).tolist() == [0, 1, 2, 0, 1, 2, 0, 1]  # shorter than the sample: repeat


def test_train_offsets_cover_exactly_the_scenic_range():
    generator = torch.Generator().manual_seed(0)
    # L=20, n=4, s=3: offset ~ U[0, 20 - 9) = {0..10}
    offsets = {int(train_indices(20, 4, 3, generator)[0]) for _ in range(2000)}
    assert offsets == set(range(11))
    clip = train_indices(20, 4, 3, generator)
    assert np.diff(clip).tolist() == [3, 3, 3]
    # Shorter than the clip: offset 0 only, wrapping.
    assert {tuple(train_indices(5, 4, 2, generator)) for _ in range(50)} == {(0, 2, 4, 1)}


def test_centre_clip():
    assert centre_indices(100, 8, 2).tolist() == list(range(42, 58, 2))  # (100 - 16) // 2 = 42
    assert centre_indices(10, 8, 2).tolist() == [0, 2, 4, 6, 8, 0, 2, 4]  # offset clamped at 0, wraps


def test_test_clips_are_linspaced():
    # K400-like: L=250, n=32, s=2 -> offsets linspace(0, 186, 4) = 0, 62, 124, 186 (scenic).
    clips = linspaced_indices(250, 32, 2, 4)
    assert [int(c[0]) for c in clips] == [0, 62, 124, 186]
    assert all(np.diff(c).tolist() == [2] * 31 for c in clips)
    assert clips[-1][-1] == 248
    assert [int(c[0]) for c in linspaced_indices(10, 8, 2, 3)] == [0, 0, 0]
    assert [c.tolist() for c in linspaced_indices(8, 8, 1, 1)] == [list(range(8))]


def test_parse_views():
    assert parse_views("4x3") == (4, 3) and parse_views("1x1") == (1, 1) and parse_views([2, 1]) == (2, 1)
    for bad in ("4", "4x2", "0x1", "ax3"):
        with pytest.raises(ValueError, match="test_views"):
            parse_views(bad)

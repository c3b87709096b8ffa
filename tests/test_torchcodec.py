"""`data.decoder=torchcodec` picks exactly the frames of the PyAV reader (the default) on the index-coded fixtures:
sparse keyframes, clip spans, a resampling rate, variable frame rate, VP9/WebM, rotation, and shard members.
Skipped where torchcodec or its FFmpeg libraries are missing (CI installs both: .ci/run)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from tests.fixtures.videos import read_codes, write_video
from vivit.datamodules import VideoRecord, probe, read_frames, reader

torchcodec = pytest.importorskip("torchcodec.decoders", reason="pip install .[torchcodec] (and FFmpeg libraries)")

VIDEOS = {  # name -> (write_video arguments, record arguments)
    "sparse keyframes": (dict(num_frames=120, height=48, width=64, fps=30, gop=50), {}),
    "clip span": (dict(num_frames=120, height=48, width=64, fps=30, gop=50), dict(start=1.5, end=3.0)),
    "resampled to 25 fps": (dict(num_frames=120, height=48, width=64, fps=30, gop=50), dict(fps=25.0)),
    "span at 60 fps (EPIC)": (dict(num_frames=120, height=48, width=64, fps=30), dict(start=0.5, end=2.5, fps=60.0)),
    "variable frame rate": (
        dict(num_frames=6, pts=[0, 40, 80, 200, 240, 400], time_base=Fraction(1, 1000)),
        {},
    ),
    "VP9 webm": (dict(num_frames=30, codec="libvpx-vp9", fps=12), {}),
    "rotated 90": (dict(num_frames=10, height=48, width=64, rotation=90), {}),
}


@pytest.mark.parametrize("name", list(VIDEOS))
def test_torchcodec_reads_the_frames_pyav_reads(name, tmp_path):
    video, span = VIDEOS[name]
    path = write_video(tmp_path / ("v.webm" if "webm" in name else "v.mp4"), **video)
    record = VideoRecord(path, 0, name, **span)
    length = probe(record).num_frames
    indices = list(range(length)) + [length - 1, 0, length // 2]  # every frame, then out of order with repeats
    pyav = read_frames(record, indices, short_side=32)
    codec = read_frames(record, indices, short_side=32, decoder="torchcodec")
    assert codec.shape == pyav.shape and codec.dtype == np.uint8
    assert read_codes(codec) == read_codes(pyav), name  # frame-exact
    assert np.abs(codec.astype(int) - pyav).mean() < 6  # pixels: the two scalers' rounding only


def test_shard_members_decode_alike(tmp_path):
    from vivit.datamodules.shard_writer import encode_video
    from vivit.datamodules.shards import decode_member

    frames = read_frames(VideoRecord(write_video(tmp_path / "v.mp4", 40, gop=40), 0, "v"), range(40))
    member = encode_video(frames, Fraction(25), 16, 18)
    indices = [37, 3, 16, 16, 0]
    pyav, codec = decode_member(member, "video", indices), decode_member(member, "video", indices, "torchcodec")
    assert read_codes(codec) == read_codes(pyav) == indices and np.array_equal(codec, pyav)


def test_an_unreadable_file_is_a_read_error(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00" * 1000)
    with pytest.raises(reader.READ_ERRORS):
        read_frames(VideoRecord(path, 0, "x"), [0], decoder="torchcodec")

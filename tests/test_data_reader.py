"""The reader decodes exactly the wanted frames: videos whose frames show their own index (tests/fixtures)."""

from fractions import Fraction

import numpy as np
import pytest

from tests.fixtures.videos import keyframe_count, read_codes, write_frame_folder, write_video
from vivit.datamodules import VideoReadError, VideoRecord, probe, read_frames
from vivit.datamodules.reader import short_side_size


def record(path, **kwargs):
    return VideoRecord(path=path, label=0, id="x", **kwargs)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    """300 frames at 30 fps with a keyframe only every 50 frames (and B-frames)."""
    path = write_video(tmp_path_factory.mktemp("reader") / "long.mp4", 300, 64, 96, fps=30, gop=50)
    assert keyframe_count(path) == 6
    return path


def test_probe_counts_frames(long_video):
    info = probe(record(long_video))
    assert info.num_frames == 300 and info.fps == 30.0


@pytest.mark.parametrize("indices", [[0, 1, 2], [210, 211, 212, 213], [175, 149, 150, 299, 0, 150], [299]])
def test_seeks_into_the_middle_and_returns_frames_in_the_asked_order(long_video, indices):
    assert read_codes(read_frames(record(long_video), indices)) == indices


def test_all_frames(long_video):
    assert read_codes(read_frames(record(long_video), range(300))) == list(range(300))


def test_resizes_short_side_in_the_decoder(long_video):
    frames = read_frames(record(long_video), [10], short_side=32)
    assert frames.shape == (1, 32, 48, 3) and frames.dtype == np.uint8
    assert read_codes(frames) == [10]
    assert short_side_size(64, 96, 32) == (32, 48) and short_side_size(96, 64, 32) == (48, 32)


def test_clip_span_in_seconds(long_video):
    clip = record(long_video, start=2.0, end=3.5)  # frames 60..104 at 30 fps
    assert probe(clip).num_frames == 45
    assert read_codes(read_frames(clip, [0, 1, 44])) == [60, 61, 104]


def test_fps_override_samples_on_a_coarser_grid(long_video):
    clip = record(long_video, fps=10)  # index k -> time k/10 s -> native frame 3k
    assert probe(clip).num_frames == 100
    assert read_codes(read_frames(clip, [0, 1, 50, 99])) == [0, 3, 150, 297]


@pytest.mark.parametrize("codec,suffix", [("libvpx-vp9", "webm"), ("libx264", "mkv"), ("mpeg4", "avi")])
def test_containers_without_frame_counts(tmp_path, codec, suffix):
    """webm/mkv report 0 frames: the length comes from duration x rate."""
    path = write_video(tmp_path / f"v.{suffix}", 20, codec=codec, fps=25)
    info = probe(record(path))
    assert info.num_frames == 20
    assert read_codes(read_frames(record(path), range(20))) == list(range(20))
    assert read_codes(read_frames(record(path), [15, 3])) == [15, 3]


def test_variable_frame_rate_maps_timestamps_to_the_frame_on_screen(tmp_path):
    # Frames at 0, 40, 80, 200, 240, 400 ms; sampled on a 25 fps grid (every 40 ms).
    path = write_video(tmp_path / "vfr.mp4", 6, pts=[0, 40, 80, 200, 240, 400], time_base=Fraction(1, 1000))
    clip = record(path, fps=25)
    info = probe(clip)
    assert 11 <= info.num_frames <= 12
    assert read_codes(read_frames(clip, range(11))) == [0, 1, 2, 2, 2, 3, 4, 4, 4, 4, 5]
    assert read_codes(read_frames(clip, [6, 10])) == [4, 5]  # seeking into a gap


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_metadata_is_applied(tmp_path, rotation):
    plain = read_frames(record(write_video(tmp_path / "plain.mp4", 3, 48, 64)), range(3))
    rotated = read_frames(record(write_video(tmp_path / "rot.mp4", 3, 48, 64, rotation=rotation)), range(3))
    # Upright = the coded frame turned anticlockwise by the display matrix's angle.
    np.testing.assert_array_equal(rotated, np.rot90(plain, k=rotation // 90, axes=(1, 2)))


def test_frame_folder(tmp_path):
    folder = write_frame_folder(tmp_path / "P01_01", 40)  # frame_0000000001.jpg shows code 0
    whole = record(folder, frame_template="frame_{:010d}.jpg")
    assert probe(whole).num_frames == 40
    assert read_codes(read_frames(whole, [0, 39, 5])) == [0, 39, 5]
    clip = record(folder, frame_template="frame_{:010d}.jpg", start=11, end=30)  # inclusive file numbers
    assert probe(clip).num_frames == 20
    frames = read_frames(clip, [0, 19], short_side=24)
    assert frames.shape == (2, 24, 32, 3) and read_codes(frames) == [10, 29]


def test_missing_empty_and_corrupt_files_raise(tmp_path, long_video):
    with pytest.raises(VideoReadError, match="not found"):
        probe(record(tmp_path / "missing.mp4"))
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoReadError, match="empty.mp4"):
        read_frames(record(tmp_path / "empty.mp4"), [0])
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(VideoReadError, match="noise.mp4"):
        probe(record(tmp_path / "noise.mp4"))
    data = long_video.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # mp4 index (moov) at the end is lost
    with pytest.raises(VideoReadError, match="cut.mp4"):
        read_frames(record(tmp_path / "cut.mp4"), [0])
    with pytest.raises(VideoReadError, match="frame folder not found"):
        probe(record(tmp_path / "nowhere", frame_template="{:05d}.jpg"))


def test_truncated_stream_is_detected(tmp_path):
    path = write_video(tmp_path / "long.mkv", 100, fps=25)
    data = path.read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) // 3])  # streamable: decodes until the cut
    clip = record(tmp_path / "cut.mkv")
    assert read_codes(read_frames(clip, [0, 5])) == [0, 5]
    with pytest.raises(VideoReadError, match="truncated"):
        read_frames(clip, [90])


class CountingContainer:
    """Wraps a PyAV container to count decoded frames and record seeks."""

    def __init__(self, container):
        self.container, self.decoded, self.seeks = container, 0, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.container.close()

    def __getattr__(self, name):
        return getattr(self.container, name)

    def seek(self, offset, **kwargs):
        self.seeks.append(offset)
        return self.container.seek(offset, **kwargs)

    def decode(self, *args, **kwargs):
        for frame in self.container.decode(*args, **kwargs):
            self.decoded += 1
            yield frame


def test_decodes_from_the_keyframe_before_the_first_wanted_frame_to_the_last(long_video, monkeypatch):
    import vivit.datamodules.reader as reader_module

    opened = []
    original = reader_module._open
    monkeypatch.setattr(
        reader_module, "_open", lambda path: opened.append(CountingContainer(original(path))) or opened[-1]
    )
    assert read_codes(read_frames(record(long_video), [213, 210])) == [213, 210]
    counter = opened[-1]
    assert len(counter.seeks) == 1
    # Keyframes every 50 frames: decoding starts at frame 200 and stops just after 213.
    assert 14 <= counter.decoded <= 20, counter.decoded
    read_frames(record(long_video), [0, 1])
    # no seek into the video (only the rewind to its start after counting packets), stops early
    assert opened[-1].seeks == [0] and opened[-1].decoded <= 3

"""`python -m vivit.datamodules.prepare`: re-encodes a release with dense keyframes at a short side, keeps its layout,
frames and annotations, skips what is done, and redoes what an interrupted run left."""

from pathlib import Path

import pytest

from tests.fixtures import releases
from tests.fixtures.videos import keyframe_count, read_codes, write_video
from vivit.datamodules import VideoRecord, probe, read_frames
from vivit.datamodules.index import Kinetics, SomethingSomethingV2
from vivit.datamodules.prepare import main, prepare


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp("prepare")
    src, dst = base / "src", base / "dst"
    k400 = releases.make_kinetics(src / "k400")
    releases.make_ssv2(src / "ssv2")
    (src / "misc").mkdir()
    write_video(src / "misc" / "rotated.mp4", 20, 48, 64, rotation=90)
    (src / "misc" / "frames.tar").write_bytes(b"not copied")
    result = prepare(src, dst, short_side=32, gop=4, workers=2, progress=False)
    return src, dst, k400, result


def frames(path):
    record = VideoRecord(path, 0, "x")
    return read_frames(record, range(probe(record).num_frames))


def test_reencodes_every_video_with_dense_keyframes_at_the_short_side(prepared):
    src, dst, _, result = prepared
    # 9 Kinetics clips + replacement + 1 corrupt original, 7 SSv2 clips, 1 rotated clip
    assert (result["videos"], result["encoded"], result["failed"]) == (19, 18, 1)
    assert "replacedXYZ" in result["failures"][0] and (dst / "prepare_failures.txt").read_text().count("\n") == 1
    original = src / "k400" / "val" / "val_video01_000001_000011.mp4"
    output = dst / "k400" / "val" / original.name
    assert keyframe_count(original) == 1 and keyframe_count(output) == 10  # 40 frames, a keyframe every 4
    before, after = frames(original), frames(output)
    assert before.shape == (40, 48, 64, 3) and after.shape == (40, 32, 42, 3)
    assert read_codes(after) == read_codes(before) == list(range(40))  # same pictures at the same times
    assert probe(VideoRecord(output, 0, "x")).fps == 25.0


def test_layout_annotations_and_suffixes(prepared):
    src, dst, k400, result = prepared
    csv_path = Path("k400") / "annotations" / "train.csv"
    assert (dst / csv_path).read_bytes() == (src / csv_path).read_bytes()
    assert result["annotations_copied"] == 8 and result["other_files"] == 1
    assert not (dst / "misc" / "frames.tar").exists()
    index = Kinetics(dst / "k400", cache_dir=False)  # the prepared copy is a release like the original
    assert [r.id for r in index.records("train")] == k400.present["train"]
    webm = SomethingSomethingV2(dst / "ssv2", cache_dir=False).records("train")  # VP9 .webm -> H.264 .mp4
    assert [r.path.suffix for r in webm] == [".mp4"] * 4 and keyframe_count(webm[0].path) == 6


def test_rotation_is_kept(prepared):
    src, dst, _, _ = prepared
    before, after = frames(src / "misc" / "rotated.mp4"), frames(dst / "misc" / "rotated.mp4")
    assert before.shape[1:3] == (64, 48) and after.shape[1:3] == (42, 32)  # upright portrait, short side 32
    assert read_codes(after) == read_codes(before)


def test_rerun_skips_finished_outputs_and_redoes_missing_ones(prepared):
    src, dst, _, _ = prepared
    done = dst / "k400" / "train" / "-3B32lodo2M_000059_000069.mp4"
    stamp = done.stat().st_mtime_ns
    missing = dst / "k400" / "test" / "test_vid_01_000007_000017.mp4"
    missing.unlink()
    stale = missing.with_name(f".{missing.stem}.partial-99999.mp4")  # left by a killed run
    stale.write_bytes(b"half")
    result = prepare(src, dst, short_side=32, gop=4, workers=1, progress=False)
    assert (result["encoded"], result["skipped"], result["failed"]) == (1, 17, 1)
    assert missing.is_file() and not stale.exists() and done.stat().st_mtime_ns == stamp
    assert keyframe_count(missing) == 10


def test_cli(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    write_video(src / "a.mkv", 12, 48, 64)
    assert main([str(src), str(tmp_path / "out"), "--short-side", "24", "--gop", "3", "--workers", "1"]) == 0
    assert keyframe_count(tmp_path / "out" / "a.mkv") == 4
    assert "1 re-encoded" in capsys.readouterr().out
    assert main([str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    assert "source folder not found" in capsys.readouterr().err

"""Release indexes read miniature releases in their real layouts: label maps, records, skipped rows, errors, cache."""

import json
import logging
import os
import time

import pytest

from tests.fixtures import releases
from vivit.datamodules.index import EpicKitchens100, Kinetics, MomentsInTime, SomethingSomethingV2
from vivit.datamodules.index.epic100 import annotation_fps
from vivit.datamodules.index.kinetics import file_key
from vivit.datamodules.index.ssv2 import template_class


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("releases")
    return {
        "k400": releases.make_kinetics(base / "k400", 400),
        "k600": releases.make_kinetics(base / "k600", 600),
        "k700": releases.make_kinetics(base / "k700", 700),
        "ssv2": releases.make_ssv2(base / "ssv2"),
        "epic": releases.make_epic_frames(base / "EPIC-KITCHENS"),
        "epic_videos": releases.make_epic_videos(base / "epic_videos"),
        "mit": releases.make_mit(base / "Moments_in_Time_Raw"),
    }


def make_index(name, release, cache_dir, **kwargs):
    if name.startswith("k"):
        return Kinetics(release.root, version=int(name[1:]), cache_dir=cache_dir, **kwargs)
    if name == "ssv2":
        return SomethingSomethingV2(release.root, cache_dir=cache_dir, **kwargs)
    if name == "epic":
        return EpicKitchens100(release.root, cache_dir=cache_dir, **kwargs)
    if name == "epic_videos":
        return EpicKitchens100(release.root, source="videos", cache_dir=cache_dir, **kwargs)
    return MomentsInTime(release.root, cache_dir=cache_dir, **kwargs)


NAMES = ["k400", "k600", "k700", "ssv2", "epic", "epic_videos", "mit"]


@pytest.mark.parametrize("name", NAMES)
def test_records_labels_and_skipped_rows_match_the_release(built, name, tmp_path, caplog):
    release = built[name]
    index = make_index(name, release, tmp_path / "cache")
    assert index.classes == release.classes
    with caplog.at_level(logging.WARNING, logger="vivit.datamodules.index"):
        for split in ("train", "val", "test"):
            records = index.records(split)
            assert [r.id for r in records] == release.present[split], split
            assert [r.label for r in records] == release.labels[split], split
            assert index.missing[split] == release.missing[split], split
            assert all(r.path.exists() for r in records)
            index.records(split)  # a second call neither rebuilds nor reports again
    reports = [m for m in caplog.messages if "no video on disk" in m]
    assert len(reports) == sum(1 for n in release.missing.values() if n)
    for split, count in release.missing.items():
        if count:
            assert any(f" {split}: {count} of " in m for m in reports)


def test_kinetics_label_map_is_the_sorted_train_labels_with_quotes_removed(built, tmp_path):
    index = make_index("k400", built["k400"], False)
    assert index.classes == ["abseiling", "air drumming", "zumba"]
    first = index.records("train")[0]
    assert first.id == "-3B32lodo2M_000059_000069" and index.classes[first.label] == "air drumming"


def test_kinetics_replacement_wins_over_the_corrupt_original(built):
    records = {r.id: r for r in make_index("k400", built["k400"], False).records("train")}
    assert records["replacedXYZ_000020_000030"].path.parent.name == "replacement_for_corrupted_k400"
    assert records["0123456789a_000005_000015"].path.parent.name == "train"


def test_kinetics_600_reads_the_txt_annotations_not_the_incomplete_csv(built):
    index = make_index("k600", built["k600"], False)
    assert index.annotation_file("train").name == "train.txt"
    assert len(index.records("train")) == 5  # the decoy train.csv has one row
    assert all(r.label is None for r in index.records("test"))  # CVDF's K600 test.csv has no labels
    val_as_test = Kinetics(built["k600"].root, version=600, test="val", cache_dir=False)
    assert [r.label for r in val_as_test.records("test")] == built["k600"].labels["val"]


def test_kinetics_file_names():
    assert file_key("-3B32lodo2M_000059_000069") == ("-3B32lodo2M", 59, 69)
    assert file_key("a_b_c_d_e__000001_000011") == ("a_b_c_d_e_", 1, 11)
    assert file_key("notes") is None


def test_ssv2_class_is_the_template_without_brackets(built):
    assert template_class("Holding [something] next to [something]") == "Holding something next to something"
    index = make_index("ssv2", built["ssv2"], False)
    assert index.classes[2] == "Pushing something from left to right"  # labels JSON values are strings
    hidden = SomethingSomethingV2(built["ssv2"].root, test="test", cache_dir=False)
    assert [(r.id, r.label) for r in hidden.records("test")] == [("300", None), ("301", None)]


def test_epic_heads_fps_rule_and_spans(built):
    assert annotation_fps("P01_11") == 60 and annotation_fps("P01_101") == 50 and annotation_fps("P37_103") == 50
    index = make_index("epic", built["epic"], False)
    assert list(index.classes) == ["noun", "verb"]  # scenic's order
    assert (len(index.classes["noun"]), len(index.classes["verb"])) == (300, 97)
    assert index.classes["verb"][0] == "take" and index.classes["noun"][0] == "tap"
    record = index.records("val")[0]  # P01_11_81 of the real CSV: frames 15235..15265
    assert (record.id, record.start, record.end, record.fps) == ("P01_11_81", 15235, 15265, 60)
    assert record.frame_template == "frame_{:010d}.jpg" and record.path.name == "P01_11"
    submission = EpicKitchens100(built["epic"].root, test="EPIC_100_test_timestamps.csv", cache_dir=False)
    tests = submission.records("test")
    assert [r.id for r in tests] == ["P01_101_10", "P01_101_100", "P01_101_101"]
    assert all(r.label is None and r.fps == 50 for r in tests)
    videos = EpicKitchens100(
        built["epic_videos"].root, source="videos", test="EPIC_100_test_timestamps.csv", cache_dir=False
    ).records("test")
    first = videos[0]  # P01_101_0: frames 143..193 at 50 fps -> seconds [142/50, 193/50)
    assert first.path.name == "P01_101.MP4" and first.fps == 50
    assert first.start == pytest.approx(142 / 50) and first.end == pytest.approx(193 / 50)


def test_epic_annotations_can_live_anywhere(built, tmp_path):
    moved = tmp_path / "annotations_elsewhere"
    os.symlink(built["epic"].root / "epic-kitchens-100-annotations", moved)
    index = EpicKitchens100(built["epic"].root, annotations=moved, cache_dir=False)
    assert [r.id for r in index.records("val")] == built["epic"].present["val"]
    # the downloader's parent folder works too (root/EPIC-KITCHENS/PXX)
    parent = tmp_path / "download"
    parent.mkdir()
    os.symlink(built["epic"].root, parent / "EPIC-KITCHENS")
    index = EpicKitchens100(parent, annotations=moved, cache_dir=False)
    assert len(index.records("train")) == 4


def test_mit_classes_from_the_categories_file(built):
    index = make_index("mit", built["mit"], False)
    assert index.classes == ["blocking", "cooking", "running"]  # by index, not by file order


@pytest.mark.parametrize("name", NAMES)
def test_missing_root_is_a_one_line_error_naming_path_and_layout(name, tmp_path):
    release = releases.Release(tmp_path / "nowhere", [])
    with pytest.raises(FileNotFoundError) as error:
        make_index(name, release, False).records("train")
    message = str(error.value)
    assert str(tmp_path / "nowhere") in message and "\n" not in message and "<root>" in message


@pytest.mark.parametrize(
    "name,annotation",
    [
        ("k400", "annotations/train.csv"),
        ("k600", "annotations/val.txt"),
        ("ssv2", "labels/something-something-v2-labels.json"),
        ("epic", "epic-kitchens-100-annotations/EPIC_100_noun_classes.csv"),
        ("mit", "moments_categories.txt"),
        ("mit", "validationSet.csv"),
    ],
)
def test_missing_annotation_file_names_the_expected_path(built, name, annotation, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(built[name].root, copy, symlinks=True)
    (copy / annotation).unlink()
    if name == "k600":  # val.txt missing: the incomplete val.csv is the fallback; remove it too
        (copy / "annotations/val.csv").unlink()
    index = make_index(name, releases.Release(copy, []), False)
    with pytest.raises(FileNotFoundError, match=str(copy / annotation)) as error:
        for split in ("train", "val"):
            index.records(split)
    assert "\n" not in str(error.value)


def test_unknown_label_and_bad_header_are_clear(built, tmp_path):
    import shutil

    copy = tmp_path / "k400"
    shutil.copytree(built["k400"].root, copy)
    csv_path = copy / "annotations" / "val.csv"
    csv_path.write_text(csv_path.read_text().replace("zumba", "salsa"))
    with pytest.raises(ValueError, match=r"val\.csv:2: label 'salsa' is not one of the 3 classes"):
        Kinetics(copy, cache_dir=False).records("val")
    csv_path.write_text("name,clip\nx,y\n")
    with pytest.raises(ValueError, match=r"val\.csv: expected the CVDF header"):
        Kinetics(copy, cache_dir=False).records("val")


def test_no_root_given_names_the_config_key():
    with pytest.raises(ValueError, match=r"data\.root="):
        Kinetics("???")


# ---------------------------------------------------------------------------------------------------- cache


def test_cache_second_load_is_equal_and_a_changed_annotation_invalidates_it(built, tmp_path):
    import shutil

    copy, cache = tmp_path / "k400", tmp_path / "cache"
    shutil.copytree(built["k400"].root, copy)
    first = Kinetics(copy, cache_dir=cache)
    records = first.records("train")
    assert first.cache.hits == 0 and len(list(cache.glob("*.json"))) == 2  # classes + train records
    second = Kinetics(copy, cache_dir=cache)
    assert second.records("train") == records and second.classes == first.classes
    assert second.cache.hits == 2 and second.missing["train"] == 1
    # an edited annotation file (size and mtime change) rebuilds
    csv_path = copy / "annotations" / "train.csv"
    csv_path.write_text(csv_path.read_text().replace("zz9zz9zz9zz,100,110", "zz9zz9zz9zz,100,111"))
    third = Kinetics(copy, cache_dir=cache)
    assert len(third.records("train")) == 4 and third.missing["train"] == 2 and third.cache.hits == 0
    # a video removed from a split folder (the folder's mtime changes) rebuilds too
    time.sleep(0.01)
    (copy / "train" / "abc_def-123_000000_000010.mp4").unlink()
    fourth = Kinetics(copy, cache_dir=cache)
    assert len(fourth.records("train")) == 3 and fourth.cache.hits == 1  # classes still cached
    assert len(list(cache.glob("*.json"))) == 2  # stale entries are replaced, not piled up


def test_unwritable_cache_dir_is_skipped(built, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    index = Kinetics(built["k400"].root, cache_dir=blocker / "cache")
    assert len(index.records("val")) == 2


def test_damaged_cache_file_is_rebuilt(built, tmp_path):
    cache = tmp_path / "cache"
    expected = Kinetics(built["k400"].root, cache_dir=cache).records("val")
    for path in cache.glob("*.json"):
        path.write_bytes(b"\x80\x05garbage")
    again = Kinetics(built["k400"].root, cache_dir=cache)
    assert again.records("val") == expected and again.cache.hits == 0
    assert Kinetics(built["k400"].root, cache_dir=cache).records("val") == expected  # and rewritten


class _Payload:
    """What a crafted pickle does when loaded: here, create a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_crafted_cache_file_is_not_executed_and_is_rebuilt(built, tmp_path):
    import pickle

    cache, marker = tmp_path / "cache", tmp_path / "pwned"
    expected = Kinetics(built["k400"].root, cache_dir=cache).records("val")
    files = sorted(cache.glob("*.json"))
    assert len(files) == 2 and not list(cache.glob("*.pkl"))
    crafted = pickle.dumps(_Payload(marker))
    for path in files:  # the cache files replaced by pickles that run code, and the same under a .pkl name
        path.write_bytes(crafted)
        path.with_suffix(".pkl").write_bytes(crafted)
    again = Kinetics(built["k400"].root, cache_dir=cache)
    assert again.records("val") == expected and again.cache.hits == 0
    assert not marker.exists()
    assert not list(cache.glob("*.pkl"))  # old-format files are removed, never read
    assert Kinetics(built["k400"].root, cache_dir=cache).records("val") == expected  # rewritten as JSON


def test_a_cache_of_another_split_copied_over_is_rejected_and_rebuilt(built, tmp_path):
    import shutil

    cache = tmp_path / "cache"
    index = Kinetics(built["k400"].root, cache_dir=cache)
    train, val = index.records("train"), index.records("val")
    assert len(train) != len(val)
    by_split = {split: next(cache.glob(f"*-{split}-*.json")) for split in ("train", "val")}
    shutil.copyfile(by_split["val"], by_split["train"])  # a val cache under the train cache's name
    again = Kinetics(built["k400"].root, cache_dir=cache)
    assert again.records("train") == train and again.cache.hits == 1  # classes from the cache, train rebuilt
    # a cache file that parses but holds something else is rebuilt too, not fatal
    stored = json.loads(by_split["val"].read_text())
    by_split["val"].write_text(json.dumps({**stored, "value": [{"path": ["a", "b"], "label": [0]}, 0, 1]}))
    assert Kinetics(built["k400"].root, cache_dir=cache).records("val") == val


def test_a_touched_annotation_file_invalidates_the_cache(built, tmp_path):
    import shutil

    copy, cache = tmp_path / "k400", tmp_path / "cache"
    shutil.copytree(built["k400"].root, copy)
    Kinetics(copy, cache_dir=cache).records("val")
    warm = Kinetics(copy, cache_dir=cache)
    warm.records("val")
    assert warm.cache.hits == 1  # val's records (its build, which reads the classes, is skipped)
    before = list(cache.glob("*-val-*.json"))
    annotation = copy / "annotations" / "val.csv"
    stat = annotation.stat()
    os.utime(annotation, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # same size and contents, newer
    touched = Kinetics(copy, cache_dir=cache)
    assert touched.records("val") == warm.records("val")
    assert touched.cache.hits == 1  # only the classes (from the untouched train.csv): val was rebuilt
    after = list(cache.glob("*-val-*.json"))
    assert len(after) == 1 and after != before


@pytest.mark.parametrize("elsewhere", ["/etc/passwd", "../../../etc/passwd"], ids=["absolute", "dot-dot"])
def test_a_cache_whose_rows_leave_the_release_is_rebuilt(built, tmp_path, elsewhere):
    """A cache file with the right key but rows pointing at other files (a crafted or a shared cache) is not used:
    rows are stored relative to the release root and must stay under it."""
    cache = tmp_path / "cache"
    expected = Kinetics(built["k400"].root, cache_dir=cache).records("val")
    path = next(cache.glob("*-val-*.json"))
    stored = json.loads(path.read_text())
    columns = stored["value"][0]
    assert columns["path"] == [str(r.path.relative_to(built["k400"].root)) for r in expected]  # relative to the root
    columns["path"] = [elsewhere] * len(columns["path"])
    path.write_text(json.dumps(stored))  # its key untouched: it matches the run's
    again = Kinetics(built["k400"].root, cache_dir=cache)
    assert again.records("val") == expected  # rebuilt: the crafted rows would point at /etc/passwd
    assert again.cache.hits == 1  # only the classes came from the cache

"""`data=folder`: CSV `path,label` and folder-per-class indexes, class mapping, clear errors."""

import pytest

from vivit.datamodules import FolderVideos


def write_csv(path, rows, header="path,label"):
    path.write_text("\n".join([header] + [",".join(map(str, r)) for r in rows]) + "\n")


def test_csv_with_class_names_sorted(tmp_path):
    write_csv(tmp_path / "train.csv", [("a/1.mp4", "walk"), ("b/2.mp4", "run"), ("3.mp4", "jump")])
    write_csv(tmp_path / "val.csv", [("4.mp4", "run")])
    index = FolderVideos(tmp_path)
    assert index.classes == ["jump", "run", "walk"] and index.num_classes == 3
    train = index.records("train")
    assert [r.label for r in train] == [2, 1, 0]
    assert train[0].path == tmp_path / "a/1.mp4"  # relative to the CSV
    assert [r.label for r in index.records("val")] == [1]
    assert len({r.id for r in train}) == 3


def test_classes_txt_gives_the_order(tmp_path):
    (tmp_path / "classes.txt").write_text("walk\nrun\njump\n")
    write_csv(tmp_path / "train.csv", [("1.mp4", "jump"), ("2.mp4", "walk")])
    index = FolderVideos(tmp_path)
    assert index.classes == ["walk", "run", "jump"]
    assert [r.label for r in index.records("train")] == [2, 0]


def test_integer_labels_and_spans_and_unlabelled_test(tmp_path):
    write_csv(tmp_path / "train.csv", [("1.mp4", 3, 1.5, 4.0), ("2.mp4", 0, "", "")], header="path,label,start,end")
    write_csv(tmp_path / "test.csv", [("x.mp4",), ("y.mp4",)], header="path")
    index = FolderVideos(tmp_path)
    assert index.num_classes == 4
    first, second = index.records("train")
    assert (first.label, first.start, first.end) == (3, 1.5, 4.0) and (second.start, second.end) == (None, None)
    assert [r.label for r in index.records("test")] == [None, None]


def test_folder_per_class(tmp_path):
    for split, names in [("train", ["cat", "dog"]), ("val", ["dog"])]:
        for name in names:
            (tmp_path / split / name).mkdir(parents=True)
            (tmp_path / split / name / "clip.mp4").write_bytes(b"")
            (tmp_path / split / name / "notes.txt").write_text("not a video")
    index = FolderVideos(tmp_path)
    assert index.classes == ["cat", "dog"]
    train = index.records("train")
    assert [(r.path.parent.name, r.label) for r in train] == [("cat", 0), ("dog", 1)]
    assert [r.label for r in index.records("val")] == [1]


def test_split_sources_can_be_renamed(tmp_path):
    write_csv(tmp_path / "train_list.csv", [("1.mp4", "a"), ("2.mp4", "b")])
    index = FolderVideos(tmp_path, train="train_list.csv", test="train_list.csv")
    assert len(index.records("test")) == 2


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"dataset root not found: .*nowhere.*path,label"):
        FolderVideos(tmp_path / "nowhere").records("train")
    write_csv(tmp_path / "train.csv", [("1.mp4", "a")])
    with pytest.raises(FileNotFoundError, match=r"val\.csv.*path,label"):
        FolderVideos(tmp_path).records("val")
    write_csv(tmp_path / "val.csv", [("1.mp4", "zebra")])
    with pytest.raises(ValueError, match=r"'zebra'.*classes\.txt"):
        FolderVideos(tmp_path).records("val")
    (tmp_path / "test.csv").write_text("file,class\nx.mp4,a\n")
    with pytest.raises(ValueError, match=r"test\.csv.*'path,label'"):
        FolderVideos(tmp_path).records("test")

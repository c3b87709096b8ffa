"""`python train.py data=<release> data.root=<folder>` works end to end on every miniature release (fast_dev_run
through the real configs), and a wrong root is a one-line `data:` error."""

import pytest

from tests.conftest import compose_config
from tests.fixtures import releases
from vivit.runtime.errors import ConfigError
from vivit.tasks.train import train

BUILDERS = {
    "k400": lambda root: releases.make_kinetics(root, 400),
    "k600": lambda root: releases.make_kinetics(root, 600),
    "k700": lambda root: releases.make_kinetics(root, 700),
    "ssv2": releases.make_ssv2,
    "epic100": releases.make_epic_frames,
    "mit": releases.make_mit,
}


def overrides(name, release, tmp_path):
    extra = [] if name == "epic100" else [f"data.num_classes={release.num_classes}"]  # EPIC: the real 300/97
    return [
        "debug=fdr",
        f"data={name}",
        f"data.root={release.root}",
        "model=vivit_tiny",
        "data.batch_size=2",
        "data.num_workers=0",
        f"data.index.cache_dir={tmp_path / 'cache'}",
        "logger=none",
        "trainer.accelerator=cpu",
        *extra,
    ]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_fast_dev_run_on_each_release(name, tmp_path):
    release = BUILDERS[name](tmp_path / name)
    cfg = compose_config("train", overrides(name, release, tmp_path), output_dir=tmp_path / "out")
    assert cfg.data.index.root == str(release.root)  # data.root reaches the index
    summary = train(cfg)
    assert {"val", "test"} <= set(summary)
    metrics = summary["test"]
    if name == "epic100":  # two heads and the joint action accuracy
        assert {"test/noun_top1", "test/verb_top1", "test/action_top1"} <= set(metrics), sorted(metrics)
    else:
        assert "test/top1" in metrics and 0.0 <= metrics["test/top1"] <= 1.0


def test_missing_root_is_a_one_line_data_error(tmp_path):
    missing = tmp_path / "no_such_release"
    cfg = compose_config(
        "train",
        ["debug=fdr", "data=k400", f"data.root={missing}", "model=vivit_tiny", "logger=none"],
        output_dir=tmp_path / "out",
    )
    with pytest.raises(ConfigError) as error:
        train(cfg)
    message = str(error.value)
    assert message.startswith("data: ") and str(missing) in message and "annotations" in message
    assert "\n" not in message


def test_class_count_mismatch_names_the_key(tmp_path):
    release = releases.make_mit(tmp_path / "mit")
    cfg = compose_config(
        "train",
        [
            "debug=fdr",
            "data=mit",
            f"data.root={release.root}",
            "model=vivit_tiny",
            f"data.index.cache_dir={tmp_path / 'cache'}",
            "logger=none",
            "data.num_classes=305",
        ],
        output_dir=tmp_path / "out",
    )
    with pytest.raises(ConfigError, match=r"data\.num_classes is 305 .* has 3 classes; set data\.num_classes=3"):
        train(cfg)


@pytest.mark.parametrize(
    "name,stride,resize,views,hflip,colour",
    [
        ("k400", 2, 256, (4, 3), True, True),
        ("k600", 2, 256, (4, 3), True, True),
        ("k700", 2, 256, (4, 3), True, True),
        ("ssv2", 1, 252, (4, 3), False, False),
        ("epic100", 1, 256, (4, 1), True, False),
        ("mit", 2, 256, (4, 3), True, True),
    ],
)
def test_release_configs_carry_the_paper_recipe(name, stride, resize, views, hflip, colour):
    """ViViT-B (32 frames, 224 px): scenic's frames/stride, short side (256 for 224 crops; SSv2 keeps 288/256),
    test views, flip (none for SSv2) and colour augmentation."""
    from hydra.utils import instantiate

    cfg = compose_config("train", [f"data={name}", "data.root=/data/x", "model=vivit_b_fe"])
    dm = instantiate(cfg.data)
    assert (dm.num_frames, dm.stride, dm.crop_size, dm.min_resize, dm.views) == (32, stride, 224, resize, views)
    assert dm.root == "/data/x" and str(dm.index.root) == "/data/x"
    assert dm.train_transform is not None and cfg.data.hflip is hflip and cfg.data.colour_augment is colour
    if name == "ssv2":  # scenic's SSv2 model reads 256 px: 288 -> 256
        big = compose_config("train", ["data=ssv2", "data.root=/x", "model=vivit_b_fe", "model.img_size=256"])
        assert instantiate(big.data).min_resize == 288

"""Numbers you can trust (issue 9): augmentation branches, what counts as an unreadable video, the protocol's
sampling, weight decay groups, num_classes and label checks, and the regularisation wiring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from datamodules import VideoDataModule
from datamodules.datamodule import VideoDataset
from datamodules.reader import VideoReadError
from datamodules.transforms import ColourAugment, VideoRandAugment, to_video, train_transform


# ------------------------------------------------------------------------------ defect 1: every branch forced on
@pytest.mark.parametrize("p, p_gray", [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0)], ids=["jitter", "gray", "both"])
def test_colour_augment_branches_on_a_video(p, p_gray):
    torch.manual_seed(0)
    video = tv_tensors.Video(torch.rand(4, 3, 8, 8))
    out = ColourAugment(p=p, p_gray=p_gray)(video)
    assert isinstance(out, tv_tensors.Video) and out.shape == video.shape
    assert 0 <= out.min() and out.max() <= 1
    gray = torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])
    assert gray == (p_gray == 1.0)
    if p == 0.0:  # grayscale alone: ITU-R 601 luma of the input
        luma = 0.2989 * video[:, 0] + 0.587 * video[:, 1] + 0.114 * video[:, 2]
        torch.testing.assert_close(out[:, 0], luma, atol=1e-3, rtol=0)


@pytest.mark.parametrize("branches", ["jitter", "flip", "randaugment", "colour", "all"])
def test_train_transform_with_branches_forced_on(branches, monkeypatch):
    monkeypatch.setattr(ColourAugment, "make_params", lambda self, inputs: {
        "jitter": True, "brightness": 0.1, "saturation": 1.2, "contrast": 0.8, "hue": 0.1, "gray": True})
    on = {"jitter": branches in ("jitter", "all"), "flip": branches in ("flip", "all"),
          "randaugment": branches in ("randaugment", "all"), "colour": branches in ("colour", "all")}
    transform = train_transform(64, scale_jitter=(1.2, 1.3) if on["jitter"] else None, hflip=on["flip"],
                                randaugment={"num_layers": 2, "magnitude": 5} if on["randaugment"] else None,
                                colour_augment=on["colour"])
    clip = np.random.default_rng(0).integers(0, 256, (4, 72, 80, 3), dtype=np.uint8)  # larger than a Cutout
    for seed in range(8):
        torch.manual_seed(seed)
        out = transform(to_video(clip))
        assert out.shape == (3, 4, 64, 64) and -1 <= out.min() and out.max() <= 1
        gray = torch.allclose(out[0], out[1]) and torch.allclose(out[1], out[2])
        assert gray == (on["colour"] and not on["randaugment"])  # defect 7: RandAugment runs alone


def test_randaugment_alone_when_both_are_set():
    transform = train_transform(16, randaugment={"num_layers": 2, "magnitude": 15}, colour_augment=True)
    kinds = [type(t) for t in transform.transforms]
    assert VideoRandAugment in kinds and ColourAugment not in kinds
    assert ColourAugment in [type(t) for t in train_transform(16, colour_augment=True).transforms]


def _dataset(records, transform, mode="train"):
    return VideoDataset(records, mode, num_frames=2, stride=1, short_side=16, transform=transform)


def test_a_transform_bug_is_not_an_unreadable_video(tmp_path):
    from datamodules.records import VideoRecord
    from tests.fixtures.videos import write_video

    path = write_video(tmp_path / "v.mp4", 4, height=16, width=16)
    records = [VideoRecord(path, 0, "v")]

    def broken(video):
        raise TypeError("a bug in a transform")

    for mode in ("train", "val"):
        dataset = _dataset(records, broken, mode)
        with pytest.raises(TypeError, match="a bug in a transform"):
            dataset[0]
        assert dataset.num_errors.value == 0
    from datamodules.transforms import EvalTransform

    missing = _dataset([VideoRecord(tmp_path / "none.mp4", 0, "x"), *records], EvalTransform(16), "val")
    assert missing[0]["valid"] is False and missing.num_errors.value == 1  # the reader's own failure: counted
    with pytest.raises(VideoReadError):
        VideoDataset(missing.records, "val", 2, 1, 16, EvalTransform(16), on_error="raise")[0]


# ------------------------------------------------------------------ defect 2: one line only for config mistakes
def test_reported_as_keeps_the_traceback_of_a_bug():
    import hydra

    from vivit.tasks import ConfigError, _reported_as

    def transform_with_a_bug():
        return torch.zeros(2) + "a string"  # a TypeError deep in project code

    with pytest.raises(TypeError):
        with _reported_as("data"):
            transform_with_a_bug()
    with pytest.raises(KeyError):
        with _reported_as("data"):
            {}["noun"]
    # wrong arguments to a `_target_`, explicit validation and a missing interpolation are config mistakes
    with pytest.raises(ConfigError, match=r"^data: .*unexpected keyword argument 'batchsize'"):
        with _reported_as("data"):
            hydra.utils.instantiate({"_target_": "datamodules.transforms.EvalTransform", "crop_size": 8,
                                     "batchsize": 2})
    with pytest.raises(ConfigError, match=r"^data: test_views must look like"):
        with _reported_as("data"):
            hydra.utils.instantiate({"_target_": "datamodules.sampling.parse_views", "views": "4by3"})
    with pytest.raises(ConfigError, match=r"^model: "):
        with _reported_as("model"):
            hydra.utils.instantiate({"_target_": "no.such.Model"})


def test_a_transform_type_error_inside_instantiate_keeps_its_traceback():
    import hydra

    from vivit.tasks import _reported_as

    with pytest.raises(hydra.errors.InstantiationException) as error:
        with _reported_as("data"):  # VideoRandAugment raises TypeError on a float clip, inside the target
            hydra.utils.instantiate({"_target_": "datamodules.transforms.VideoRandAugment.transform",
                                     "self": VideoRandAugment(), "inpt": torch.zeros(1, 3, 2, 2),
                                     "params": {"ops": []}})
    assert isinstance(error.value.__cause__, TypeError)


@pytest.mark.parametrize("oc_cause", ["1", "0"])
def test_a_missing_key_is_named_with_oc_cause_or_a_tracer(tmp_path, monkeypatch, oc_cause):
    from tests.conftest import compose_config
    from vivit.tasks import ConfigError, train

    monkeypatch.setenv("OC_CAUSE", oc_cause)
    cfg = compose_config("train", ["debug=fdr", "data=k400", "logger=none"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"^data.root: no value"):
        train(cfg)

"""Which weights a run starts from (vivit/runtime/job_init.py): a paper recipe refuses to train without named weights,
`init_per_job` picks each job's init in a sweep, and a run or sweep folder stands for its final model."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import compose_config
from vivit.runtime import config as _zoo  # noqa: F401 (registers the zoo's model configs)
from vivit.runtime.errors import ConfigError
from vivit.runtime.job_init import apply_model_init
from vivit.tasks.build import build

K400 = ["recipe=k400", "data.root=/datasets/not-here", "model=vivit_tiny", "logger=none"]


def fake_job(folder: Path, model: str, finished: bool = True) -> Path:
    """A job folder of a train.py sweep: its Hydra record of the model config, and a final model if it finished."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "hydra.yaml").write_text(
        OmegaConf.to_yaml({"hydra": {"runtime": {"choices": {"model": model}}}})
    )
    if finished:
        (folder / "checkpoints").mkdir()
        (folder / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    return folder / "checkpoints" / "last.ckpt"


def test_a_paper_recipe_without_init_is_refused_in_one_line_unless_none(tmp_path):
    cfg = compose_config("train", K400, output_dir=tmp_path / "run")
    assert cfg.init_required and cfg.model.init is None
    with pytest.raises(ConfigError, match=r"^model\.init: this paper recipe starts from pretrained weights") as error:
        build(cfg, "fit")  # before the dataset (whose folder does not exist) is looked at
    assert "\n" not in str(error.value) and "model.init=none" in str(error.value)
    for init in ("null", "''"):  # an emptied init is refused too
        cfg = compose_config("train", ["experiment=paper/table2_variants", "data.root=/x", f"model.init={init}"])
        with pytest.raises(ConfigError, match=r"^model\.init: "):
            apply_model_init(cfg)

    cfg = compose_config("train", [*K400, "model.init=none"], output_dir=tmp_path / "none")
    assert apply_model_init(cfg) is None and cfg.model.init == "none"  # random weights, on purpose
    with pytest.raises(ConfigError, match="data.root|not-here"):  # the run goes on to the data
        build(compose_config("train", [*K400, "model.init=none"], output_dir=tmp_path / "none"), "fit")
    assert apply_model_init(compose_config("train", ["model.init=null"])) is None  # outside the recipes: allowed


def test_init_per_job_picks_by_a_group_choice_or_a_config_key(tmp_path):
    per_job = [
        "+init_per_job.key=recipe",
        "+init_per_job.inits.k400=${model.init}",
        "+init_per_job.inits.epic100=/ckpt/from_k400.pt",
        "model.init=imagenet21k",
    ]
    cfg = compose_config("train", [*K400, *per_job])
    assert apply_model_init(cfg) == "model.init = imagenet21k (init_per_job: recipe=k400)"
    assert cfg.model.init == "imagenet21k" and cfg.init_per_job is None  # consumed: DDP's ranks get the result
    cfg = compose_config("train", ["recipe=epic100", "data.root=/x", "model=vivit_tiny", *per_job])
    apply_model_init(cfg)
    assert cfg.model.init == "/ckpt/from_k400.pt"

    by_key = ["+init_per_job.key=model.temporal_depth", "+init_per_job.inits.1=/ckpt/lt1.pt"]
    cfg = compose_config("train", [*K400, *by_key, "model.temporal_depth=1"])
    apply_model_init(cfg)
    assert cfg.model.init == "/ckpt/lt1.pt"

    cfg = compose_config("train", ["recipe=mit", "data.root=/x", "model=vivit_tiny", *per_job])
    with pytest.raises(ConfigError, match=r"^init_per_job\.inits: no entry for recipe=mit \(entries: k400, epic100\)"):
        apply_model_init(cfg)
    cfg = compose_config("train", [*K400, "+init_per_job.key=nothing.here", "+init_per_job.inits.a=b"])
    with pytest.raises(ConfigError, match=r"^init_per_job\.key=nothing\.here: neither a config group nor a config key"):
        apply_model_init(cfg)


def test_a_run_or_sweep_folder_is_its_final_model(tmp_path):
    run = fake_job(tmp_path / "run", "vivit_tiny")
    cfg = compose_config("train", [*K400, f"model.init={run.parents[1]}"])
    assert apply_model_init(cfg) == f"model.init = {run} (the final model of {run.parents[1]})"

    sweep = tmp_path / "sweep"
    fake_job(sweep / "0", "vivit_b_st")
    wanted = fake_job(sweep / "1", "vivit_tiny")
    fake_job(sweep / "2", "vivit_tiny", finished=False)  # a job that stopped: not a candidate
    cfg = compose_config("train", [*K400, f"model.init={sweep}"])
    apply_model_init(cfg)
    assert cfg.model.init == str(wanted)  # the job that ran the same model config

    fake_job(sweep / "3", "vivit_tiny")  # two finished jobs of this model: say so, do not guess
    with pytest.raises(ConfigError, match=r"2 jobs of that sweep ran model=vivit_tiny .* give the job's folder"):
        apply_model_init(compose_config("train", [*K400, f"model.init={sweep}"]))
    with pytest.raises(ConfigError, match=r"no job of that sweep ran model=vivit_b_fe"):
        apply_model_init(compose_config("train", [*K400[:2], "model=vivit_b_fe", f"model.init={sweep}"]))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=r"neither a run folder with checkpoints/last\.ckpt nor a sweep folder"):
        apply_model_init(compose_config("train", [*K400, f"model.init={empty}"]))


def test_the_mit_recipe_states_its_release_and_refuses_the_other_in_one_line(tmp_path):
    """conf/recipe/mit.yaml runs the current release (305 classes); a MiT v1 folder (339, the paper's) stops the run
    at start, naming data.num_classes and both releases."""
    root = tmp_path / "Moments_in_Time_Raw"
    root.mkdir()
    (root / "moments_categories.txt").write_text("".join(f"class{i},{i}\n" for i in range(339)))
    for csv, folder in (("trainingSet.csv", "training"), ("validationSet.csv", "validation")):
        (root / csv).write_text("class0/a.mp4,class0,3,0\n")  # annotations are read before the model is built
        (root / folder / "class0").mkdir(parents=True)
        (root / folder / "class0" / "a.mp4").write_bytes(b"")
    overrides = ["recipe=mit", f"data.root={root}", "model=vivit_tiny", "model.init=none", "logger=none"]
    cfg = compose_config("train", [*overrides, "data.index.cache_dir=false"], output_dir=tmp_path / "run")
    assert cfg.data.num_classes == 305
    with pytest.raises(ConfigError) as error:
        build(cfg, "fit")
    message = str(error.value)
    assert message == (
        "data.num_classes is 305 (the current release, Moments_in_Time_Raw) but the dataset index (MomentsInTime) "
        "has 339 classes (MiT v1, the paper's release); set data.num_classes=339"
    )

"""Paper experiment presets (conf/experiment/paper/), the paper's numbers (experiments/paper.py) and the collector.

The presets compose through the real train.yaml, their sweeps expand (with Hydra's own BasicSweeper) into the
expected jobs, every job composes and builds its model (meta device), and the jobs of a table cover exactly the
paper's rows. The collector runs on a real multirun of train.py with a finished, a failed and a missing job.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import OmegaConf
from omegaconf.errors import InterpolationToMissingValueError

from tests.conftest import CONF, ROOT, compose_config
from tests.test_docs import run_in_process
from tests.test_train import SMALL_DATA, run_cli, small_overrides
from vivit.experiments import collect as collector
from vivit.experiments.paper import TABLES
from vivit.models import build_model
from vivit.runtime.config import model_choices
from vivit.runtime.ranks import apply_global_batch
from vivit.weights.checkpoint import read_checkpoint

PAPER = CONF / "experiment" / "paper"
# preset -> (paper table matched by its jobs, number of jobs)
PRESETS = {
    "table1_input_encoding": ("table1", 4),
    "table2_variants": ("table2", 5),
    "table2_epic": ("table2", 10),
    "table3_temporal_depth": ("table3", 5),
    "table4_regularisation": ("table4", 6),
    "table4_ssv2": ("table4", 6),
    "table5_resolution": ("table5", 3),
    "table6_sota": ("table6", 5),
    "fig7_backbone": ("fig7", 2),
    "fig8_tubelet_size": ("fig8", 12),
    "fig9_frames_views": ("fig9", 3),
}
# the rows of a table a preset's jobs cover, where they are not all of its rows (the JFT rows need weights that
# were never released; Table 6's 1x1 K400 number is eval.py on the 1x3 job's model)
COVERED = {"table6_sota": {"ViViT-L/16x2 FE, 128 frames, 1x3", "ViViT-L/16x2 FE"}}
DATA_ROOT = "data.root=/datasets/somewhere"
K400_CHECKPOINT = "k400_checkpoint=/checkpoints/vivit_b_fe_k400.pt"
ROOTS = [f"roots.{name}=/datasets/{name}" for name in ("k400", "k600", "mit", "epic100", "ssv2")]


def base_overrides(preset: str) -> list[str]:
    """What a user adds to run a preset: its datasets' folders and a Kinetics-400 checkpoint where it needs one."""
    overrides = [f"experiment=paper/{preset}"]
    if preset in ("table2_epic", "table6_sota"):  # several datasets: one folder each
        return overrides + ROOTS[:1] + ROOTS[3:4] if preset == "table2_epic" else overrides + ROOTS
    return overrides + [DATA_ROOT] + ([K400_CHECKPOINT] if preset.startswith("table4") else [])


def sweep_jobs(cfg) -> list[list[str]]:
    """The jobs Hydra's BasicSweeper launches for the sweep declared in the config (no command-line sweeps)."""
    params = [f"{key}={value}" for key, value in cfg.hydra.sweeper.params.items()]
    batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(params), None)
    return [job for batch in batches for job in batch]


def resolved(cfg, key: str):
    value = OmegaConf.select(cfg, key)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def test_every_paper_preset_is_tested():
    assert sorted(p.stem for p in PAPER.glob("*.yaml")) == sorted(PRESETS)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_paper_preset_expands_into_jobs_that_compose(preset, tmp_path):
    table_name, num_jobs = PRESETS[preset]
    cfg = compose_config("train", base_overrides(preset), output_dir=tmp_path)
    assert cfg.hydra.mode == RunMode.MULTIRUN
    assert cfg.task_name == f"paper_{preset}"
    assert "paper" in cfg.tags
    # Hydra names the sweep folder in the launching process, before any job: no ${hydra:...} resolver there
    HydraConfig.instance().cfg = None
    sweep_dir = Path(cfg.hydra.sweep.dir)
    assert sweep_dir.parent.name == "paper" and sweep_dir.name.startswith(f"{preset}-")

    jobs = sweep_jobs(cfg)
    assert len(jobs) == num_jobs
    keys = set()
    for job in jobs:
        job_cfg = compose_config("train", base_overrides(preset) + job, output_dir=tmp_path)
        model, data = resolved(job_cfg, "model"), resolved(job_cfg, "data")
        assert model["num_frames"] == data["num_frames"] in (32, 64, 128) and data["crop_size"] == model["img_size"]
        # the paper's recipe (Table 7): momentum SGD, global batch 64 on one device, pretrained weights named
        assert job_cfg.optim.optimizer._target_ == "torch.optim.SGD" and job_cfg.optim.optimizer.momentum == 0.9
        assert job_cfg.global_batch == 64 and apply_global_batch(job_cfg).startswith("global batch 64 = 8 per device")
        assert data["batch_size"] * job_cfg.trainer.devices * job_cfg.trainer.accumulate_grad_batches == 64
        assert job_cfg.init_required and model["init"] not in (None, "", "none")
        with torch.device("meta"):
            net = build_model({**model, "num_classes": data["num_classes"]})
        assert net.num_frames == model["num_frames"] and net.img_size == model["img_size"]
        check_smoke_job(preset, job, job_cfg, tmp_path)
        keys.add(TABLES[table_name].row_key(job_cfg, job_cfg.hydra.runtime.choices.data))
    # the jobs are exactly the paper's rows (Figure 8: the 4 x 3 grid)
    assert keys == COVERED.get(preset, {row.key for row in TABLES[table_name].rows})


@pytest.mark.parametrize(
    "recipe,data,lr,epochs,views,monitor",
    [
        ("k400", "k400", 0.1, 30, "4x3", "val/top1"),
        ("epic100", "epic100", 0.5, 50, "4x1", "val/action_top1"),
        ("ssv2", "ssv2", 0.5, 35, "4x3", "val/top1"),
        ("mit", "mit", 0.25, 10, "4x3", "val/top1"),
        ("k600", "k600", 0.1, 30, "4x3", "val/top1"),
    ],
)
def test_recipe_switches_data_optimiser_and_protocol_together(recipe, data, lr, epochs, views, monitor, tmp_path):
    cfg = compose_config(
        "train",
        ["experiment=paper/table2_variants", f"recipe={recipe}", DATA_ROOT],
        output_dir=tmp_path,
    )
    assert cfg.hydra.runtime.choices.data == data
    assert cfg.optim.optimizer.lr == lr and cfg.trainer.max_epochs == epochs
    assert cfg.data.test_views == cfg.eval.views == views
    assert cfg.callbacks.model_checkpoint.monitor == monitor
    assert Path(cfg.hydra.sweep.dir).name.startswith(f"table2_variants-{data}-")
    regularisation = {"k400": "kinetics", "k600": "kinetics", "mit": "kinetics", "epic100": "epic100", "ssv2": "ssv2"}
    assert cfg.hydra.runtime.choices.regularisation == regularisation[recipe]


def test_table4_rows_are_cumulative_and_need_the_k400_checkpoint(tmp_path):
    rows = [f"experiment/paper/table4_rows={row}" for row in ("row1_crop_flip_colour", "row2_k400_init", "row6_mixup")]
    first = compose_config("train", ["experiment=paper/table4_regularisation", DATA_ROOT, rows[0]], output_dir=tmp_path)
    assert first.model.init == "vit_base_patch16_224.orig_in21k"  # row 1 needs no Kinetics checkpoint
    assert first.data.colour_augment and first.data.randaugment is None and first.model.drop_path_rate == 0
    assert first.regularisation.label_smoothing == first.regularisation.mixup_alpha == 0
    second = compose_config(
        "train", ["experiment=paper/table4_regularisation", DATA_ROOT, rows[1]], output_dir=tmp_path
    )
    with pytest.raises(InterpolationToMissingValueError, match="Missing mandatory value: k400_checkpoint"):
        _ = second.model.init
    last = compose_config(
        "train", ["experiment=paper/table4_regularisation", DATA_ROOT, K400_CHECKPOINT, rows[2]], output_dir=tmp_path
    )
    assert last.model.init == "/checkpoints/vivit_b_fe_k400.pt" and last.model.drop_path_rate == 0.2
    assert dict(last.data.randaugment) == {"num_layers": 2, "magnitude": 15} and not last.data.colour_augment
    assert (last.regularisation.label_smoothing, last.regularisation.mixup_alpha) == (0.2, 0.1)


def test_demo_sweep_builds_the_four_variants_and_the_baseline_at_demo_size(tmp_path):
    cfg = compose_config("train", ["experiment=demo_variants"], output_dir=tmp_path)
    assert cfg.hydra.mode == RunMode.MULTIRUN
    clip = torch.rand(2, 3, 8, 32, 32) * 2 - 1
    found = []
    for job in sweep_jobs(cfg):
        job_cfg = compose_config("train", ["experiment=demo_variants", *job], output_dir=tmp_path)
        net = build_model({**resolved(job_cfg, "model"), "num_classes": 8})
        assert net(clip).shape == (2, 8)
        found.append(TABLES["table2"].row_key(job_cfg, "synthetic"))
    assert found == ["st", "fe", "fsa", "fdp", "fe_avgpool"]


# ------------------------------------------------------------------------------------------------- paper numbers
def _stats_rows():
    seen = {}
    for table in TABLES.values():
        for row in table.rows:
            if row.model and (row.gflops or row.params_m):
                seen.setdefault((row.model, row.model_overrides), []).append(row)
    return list(seen.items())


@pytest.mark.parametrize("config,rows", _stats_rows(), ids=[" ".join([m, *o]) for (m, o), _ in _stats_rows()])
def test_paper_flops_and_params_match_the_named_configs(config, rows):
    from vivit.flops import config_stats

    model, overrides = config
    stats = config_stats(model, list(overrides))
    for row in rows:
        if row.gflops:
            assert stats["gflops"] == pytest.approx(row.gflops, rel=0.01), row.label
        if row.params_m:
            assert stats["params_m"] == pytest.approx(row.params_m, rel=0.01), row.label


def test_table2_has_the_five_models():
    table = TABLES["table2"]
    assert [row.key for row in table.rows] == ["st", "fe", "fsa", "fdp", "fe_avgpool"]
    assert all(row.gflops and row.params_m and set(row.top1) == {"k400", "epic100"} for row in table.rows)
    assert _stats_rows()  # and their FLOPs/params are checked above


def test_paper_tables_are_consistent():
    data_configs = {p.stem for p in (CONF / "data").glob("*.yaml")}
    model_configs = set(model_choices())
    for table in TABLES.values():
        assert len({row.key for row in table.rows}) == len(table.rows), table.name
        assert set(table.datasets) <= data_configs, table.name
        assert all(0 < v < 100 for row in table.rows for v in [*row.top1.values(), *row.more.values()]), table.name
        assert all(row.model is None or row.model in model_configs for row in table.rows), table.name
    assert TABLES["table4"].metric("epic100") == "test/action_top1" and TABLES["table1"].metric("k400") == "test/top1"


@pytest.mark.parametrize(
    "drop_path,randaugment,smoothing,mixup,init,row",
    [
        (0.0, None, 0.0, 0.0, "vit_base_patch16_224.orig_in21k", "row1"),
        (0.0, None, 0.0, 0.0, "k400.ckpt", "row2"),
        (0.2, {"num_layers": 2, "magnitude": 15}, 0.2, 0.1, "k400.pt", "row6"),
        (0.2, None, 0.0, 0.0, "vit_base_patch16_224.orig_in21k", None),  # stochastic depth without K400 init: no row
        (0.0, None, 0.0, 0.1, "k400.ckpt", None),  # mixup alone on top of row 2: not cumulative
    ],
)
def test_table4_row_is_read_from_what_the_run_ran(drop_path, randaugment, smoothing, mixup, init, row):
    config = OmegaConf.create(
        {
            "model": {
                "_target_": "vivit.models.FactorisedEncoderViViT",
                "temporal_pooling": "transformer",
                "drop_path_rate": drop_path,
                "init": init,
            },
            "data": {"randaugment": randaugment},
            "regularisation": {"label_smoothing": smoothing, "mixup_alpha": mixup},
        }
    )
    assert TABLES["table4"].row_key(config, "epic100") == row


# ------------------------------------------------------------------------------------------------- collector
@pytest.fixture(scope="module")
def multirun(synthetic_root, tmp_path_factory) -> Path:
    """A real train.py multirun of 4 jobs, one at a time: 2 finish, the 3rd fails (7 frames), the 4th never starts."""
    tmp = tmp_path_factory.mktemp("multirun")
    sweep = tmp / "sweep"
    result = run_cli(
        str(ROOT / "train.py"),
        "-m",
        "debug=fdr",
        *small_overrides(synthetic_root),
        "model.num_frames=8,7",
        "model.depth=1,2",
        "hydra.sweeper.max_batch_size=1",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp,
    )
    assert result.returncode != 0 and "model.num_frames=7" in result.stderr  # the sweep stops at the failed job
    assert f"job 2 failed; the sweep's table so far: python -m vivit.experiments.collect {sweep}\n" in result.stdout
    return sweep


def test_collector_lists_finished_failed_and_missing_jobs(multirun, capsys):
    assert collector.main([str(multirun), "--paper", "table2"]) == 0
    printed = capsys.readouterr().out
    assert "2/4 jobs finished" in printed and "failed" in printed and "missing" in printed

    with (multirun / "results.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [(r["job"], r["status"], r["model.num_frames"], r["model.depth"]) for r in rows] == [
        ("0", "ok", "8", "1"),
        ("1", "ok", "8", "2"),
        ("2", "failed", "7", "1"),
        ("3", "missing", "7", "2"),
    ]
    for row in rows[:2]:  # the numbers are the jobs' metrics.json, unchanged
        metrics = json.loads((multirun / row["job"] / "metrics.json").read_text())
        assert float(row["val/top1"]) == pytest.approx(metrics["val"]["val/top1"])
        assert float(row["test/top5"]) == pytest.approx(metrics["test"]["test/top5"])
        assert row["dataset"] == "synthetic"
        # vivit_tiny is Model 2: the paper's K400 number beside it (synthetic has no column of its own)
        paper = (row["paper_row"], row["paper_dataset"], float(row["paper_value"]))
        assert paper == ("Model 2: Fact. encoder", "k400", 78.8)
    assert rows[2]["paper_row"] == "Model 2: Fact. encoder" and rows[3]["paper_row"] == ""  # no config: no row

    md = (multirun / "results.md").read_text().splitlines()
    table = [line for line in md if line.startswith("| ")]
    assert table[0].startswith("| job | status | model.num_frames | model.depth | val/top1 |")
    assert len(table) == 5 and "| 2 | failed | 7 | 1 |" in table[3] and "| 3 | missing | 7 | 2 |" in table[4]
    top1 = json.loads((multirun / "0" / "metrics.json").read_text())["val"]["val/top1"]
    assert f"| {100 * top1:.2f} |" in table[1]
    assert any("1 job(s) failed" in line and ": 2." in line for line in md)
    assert any("missing" in line and ": 3." in line for line in md)

    png = (multirun / "results.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_collector_without_multirun_yaml_and_on_one_run(multirun, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(multirun, copy)
    (copy / "multirun.yaml").unlink()  # the swept keys are then the overrides that differ between job folders
    result = collector.collect(copy, quiet=True)
    assert result["swept"] == ["model.num_frames", "model.depth"]
    assert [j.status for j in result["jobs"]] == ["ok", "ok", "failed"]  # without the sweep nothing is known missing
    single = collector.collect(copy / "1", quiet=True)
    assert [j.status for j in single["jobs"]] == ["ok"] and single["metric"] == "test/top1"


def test_collector_errors_name_the_problem(multirun, tmp_path, capsys):
    assert collector.main([str(tmp_path / "nowhere")]) == 2
    assert "No multirun folder at" in capsys.readouterr().err
    assert collector.main([str(tmp_path)]) == 2
    assert "holds no Hydra job folders" in capsys.readouterr().err
    assert collector.main([str(multirun), "--paper", "table4", "--dataset", "k400"]) == 2
    assert "--dataset k400: the paper's table4 has numbers for epic100" in capsys.readouterr().err


def fake_job(folder: Path, dataset: str, model: dict, metrics: dict) -> None:
    """A finished job folder as train.py leaves it: Hydra's records and metrics.json."""
    (folder / ".hydra").mkdir(parents=True)
    OmegaConf.save({"model": model}, folder / ".hydra" / "config.yaml")
    num = int(folder.name)
    OmegaConf.save(
        {"hydra": {"job": {"num": num}, "runtime": {"choices": {"data": dataset}}}}, folder / ".hydra" / "hydra.yaml"
    )
    (folder / "metrics.json").write_text(json.dumps({"test": metrics}))


def test_collector_keys_table4_by_the_init_a_job_resolved(tmp_path):
    """A Table 4 row-2 job given a sweep folder as k400_checkpoint: its config says the folder, metrics.json the
    K400 checkpoint it resolved to, which makes it the "+ Kinetics 400 initialisation" row."""
    fe_b = {"_target_": "vivit.models.FactorisedEncoderViViT", "embed_dim": 768, "init": "/sweeps/k400"}
    fake_job(tmp_path / "t4" / "0", "epic100", fe_b, {"test/action_top1": 0.4})
    metrics = json.loads((tmp_path / "t4" / "0" / "metrics.json").read_text())
    (tmp_path / "t4" / "0" / "metrics.json").write_text(json.dumps({**metrics, "init": "/sweeps/k400/1/last.ckpt"}))
    assert (
        collector.collect(tmp_path / "t4", paper="table4", quiet=True)["rows"][0][-4] == "+ Kinetics 400 initialisation"
    )


def test_collector_says_when_test_is_the_validation_split_and_matches_the_figures(tmp_path):
    fe_l = {"_target_": "vivit.models.FactorisedEncoderViViT", "embed_dim": 1024, "tubelet_size": [2, 16, 16]}
    fake_job(tmp_path / "sota" / "0", "k600", fe_l, {"test/top1": 0.8302})
    fake_job(tmp_path / "sota" / "1", "k400", {**fe_l, "num_frames": 128}, {"test/top1": 0.81})
    result = collector.collect(tmp_path / "sota", paper="table6", quiet=True)
    md = (tmp_path / "sota" / "results.md").read_text()
    assert md.startswith("# sota: 2/2 jobs finished; test = the validation split of k600\n")
    assert "test/* is the validation split for K600 (its test.csv is unlabelled), as in the paper." in result["notes"]
    assert result["rows"][0][-4:-1] == ["ViViT-L/16x2 FE", "82.9", "+0.12"]
    assert result["rows"][1][-4] == ""  # K400 at 128 frames but no test_views in its config: no row to guess

    # Figure 9's rows by frame count: the 128-frame model's number is Table 6's 1x3 one
    fake_job(tmp_path / "fig9" / "0", "k400", {**fe_l, "num_frames": 128}, {"test/top1": 0.8})
    fake_job(tmp_path / "fig9" / "1", "k400", {**fe_l, "num_frames": 32}, {"test/top1": 0.79})
    rows = collector.collect(tmp_path / "fig9", paper="fig9", quiet=True)["rows"]
    assert [row[-4:-1] for row in rows] == [
        ["128 frames, 1x3 views (Table 6)", "81.7", "-1.70"],
        ["32 frames, 4x3 views", "", ""],
    ]


# ------------------------------------------------------------------------------------------------- debug=smoke
# what debug=smoke keeps of a paper job: the variant, what the tables sweep, the recipe (regularisers, protocol)
SMOKE_KEEPS = (
    "model._target_",
    "model.temporal_depth",
    "model.temporal_pooling",
    "model.tubelet_size",
    "model.embedding",
    "model.classifier",
    "model.drop_path_rate",
    "model.init_options",
    "regularisation",
    "data.randaugment",
    "data.hflip",
    "data.colour_augment",
    "data.test_views",
    "optim",
    "trainer.precision",
)


def check_smoke_job(preset: str, job: list[str], paper_cfg, tmp_path: Path) -> None:
    """`debug=smoke` on one job of a preset: the same job on the synthetic data from random weights, with a
    model small enough to run a clip through at once, and nothing left to set (no data.root, no k400_checkpoint, no
    dataset roots)."""
    cfg = compose_config("train", [f"experiment=paper/{preset}", "debug=smoke", *job], output_dir=tmp_path)
    assert cfg.hydra.runtime.choices.data == "synthetic" and cfg.logger is None and cfg.global_batch is None
    assert cfg.trainer.max_epochs == 1 and cfg.trainer.limit_train_batches == 2
    for key in SMOKE_KEEPS:
        assert resolved(cfg, key) == resolved(paper_cfg, key), (job, key)
    model = resolved(cfg, "model")
    swept_size = any(o.startswith("model.img_size=") for o in job)
    assert model["img_size"] == (paper_cfg.model.img_size if swept_size else 32)
    assert model["init"] == "none" and model["embed_dim"] == 32 and model["num_frames"] == 8
    assert cfg.callbacks.model_checkpoint.monitor == "val/top1"  # EPIC's val/action_top1 is not there
    for key in (k for k in cfg if k != "hydra"):  # nothing left to set
        if OmegaConf.is_config(cfg[key]):
            OmegaConf.to_container(cfg[key], resolve=True, throw_on_missing=True)
    net = build_model({**model, "num_classes": 8})
    assert sum(p.numel() for p in net.parameters()) < 300_000  # ViViT-B: 89-117 M
    clip = torch.zeros(1, 3, 8, model["img_size"], model["img_size"])
    assert net(clip).shape == (1, 8)


# the job of each preset that debug=smoke trains end to end: the one with the most switched on
SMOKE_JOB = {
    "table1_input_encoding": "experiment/paper/table1_rows=uniform",
    "table2_variants": "model=vivit_b_fdp",
    "table3_temporal_depth": "experiment/paper/table3_rows=lt0_avgpool",
    "table4_regularisation": "experiment/paper/table4_rows=row6_mixup",
    "table4_ssv2": "experiment/paper/table4_rows=row6_mixup",
    "table5_resolution": "model.img_size=224",
    "table6_sota": "experiment/paper/table6_rows=k400",
    "fig7_backbone": "model=vivit_l_st",
    "fig8_tubelet_size": "model.tubelet_size=[8,16,16]",
    "fig9_frames_views": "experiment/paper/fig9_rows=frames64",
}
SMOKE_SMALL = [*SMALL_DATA[:3], "data.batch_size=2", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1"]


@pytest.fixture
def no_figures(monkeypatch):
    """The evaluation's PNGs are tested elsewhere (tests/test_numbers.py); drawing them is most of a smoke job."""
    from vivit.evaluation import reports

    for name in ("plot_samples", "plot_confusion"):
        monkeypatch.setattr(reports, name, lambda path, *args, **kwargs: Path(path))


@pytest.mark.parametrize("preset", sorted(SMOKE_JOB))
def test_debug_smoke_runs_a_job_of_every_preset_end_to_end(preset, synthetic_root, tmp_path, no_figures):
    """A job of each preset trains, validates and tests with its recipe (regularisers, bf16, its test views) on the
    synthetic set, from random weights said on purpose (model.init=none), and its metrics.json is written."""
    from vivit.tasks.train import train

    job = tmp_path / "sweep" / "0"
    overrides = [f"experiment=paper/{preset}", "debug=smoke", f"data.root={synthetic_root}", *SMOKE_SMALL]
    cfg = compose_config("train", [*overrides, SMOKE_JOB[preset]], output_dir=job)
    assert cfg.init_required and cfg.trainer.precision == "bf16-mixed"
    summary = train(cfg)
    views = [int(n) for n in cfg.data.test_views.split("x")]
    assert views[0] * views[1] >= 3  # the preset's multi-view test, not the smoke mode's
    assert {"val/top1", "test/top1", "test/mean_class_top1"} <= set(summary["test"]) | set(summary["val"])
    assert json.loads((job / "metrics.json").read_text())["test"] == summary["test"]


def test_jobs_are_named_by_their_swept_values_and_presets_by_their_paper_table():
    job = collector.Job(
        num=3, overrides=["seed=1", "model=vivit_b_fe", "experiment/paper/table4_rows=row2"], status="ok"
    )
    assert collector.job_label(job, ["seed"]) == "seed=1"  # results.png's x labels: not a bare "1"
    assert collector.job_label(job, ["model", "experiment/paper/table4_rows"]) == "model=vivit_b_fe, table4_rows=row2"
    assert collector.job_label(job, ["data"]) == "job 3"
    assert [collector.paper_table_of(e) for e in ("paper/table2_variants", "paper/table1_input_encoding")] == [
        "table2",
        "table1",
    ]
    assert [collector.paper_table_of(e) for e in ("paper/fig8_tubelet_size", "paper/table4_ssv2")] == ["fig8", "table4"]
    assert [collector.paper_table_of(e) for e in ("demo_variants", None)] == [None, None]


def test_two_stage_smoke_finds_the_first_stages_checkpoints(synthetic_root, tmp_path, monkeypatch, capsys):
    """experiment=paper/table2_epic through train.py's entry point (in this process): the K400 job of a model, then
    the EPIC job of that model, which starts from the K400 job's final model, found by name in the sweep folder;
    then the collector."""
    sweep = tmp_path / "sweep"
    monkeypatch.chdir(tmp_path)
    args = [
        "experiment=paper/table2_epic",
        "debug=smoke",
        "model=vivit_b_fe",  # one model: the two stages of its column
        f"data.root={synthetic_root}",
        *SMOKE_SMALL,
        "trainer.limit_test_batches=1",
        "threads=1",
        f"hydra.sweep.dir={sweep}",
    ]
    status = run_in_process("train.py", args)
    printed = capsys.readouterr()
    assert status == 0, (printed.out + printed.err)[-3000:]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["epic100_vivit_b_fe", "k400_vivit_b_fe"]
    first = sweep / "k400_vivit_b_fe" / "checkpoints" / "last.ckpt"
    # the second stage's run config (in its checkpoint) names the first stage's final model as its init
    _, second = read_checkpoint(sweep / "epic100_vivit_b_fe" / "checkpoints" / "last.ckpt")
    assert second["resolved"]["model"]["init"] == str(first)
    log = (sweep / "epic100_vivit_b_fe" / "train.log").read_text()
    assert f"model.init = {first} (init_per_job: recipe=epic100" in log and "Initialised from " + str(first) in log
    assert collector.main([str(sweep), "--paper", "table2"]) == 0
    with (sweep / "results.csv").open() as file:
        rows = {row["recipe"]: row for row in csv.DictReader(file)}
    assert rows["k400"]["status"] == rows["epic100"]["status"] == "ok"
    assert rows["k400"]["paper_row"] == rows["epic100"]["paper_row"] == "Model 2: Fact. encoder"
    assert json.loads((sweep / "epic100_vivit_b_fe" / "metrics.json").read_text())["init"] == str(first)


# ------------------------------------------------------------------------------------------------- protocol
def protocol_table() -> list[dict]:
    """The rows of docs/protocol.md's table of differences: key, where (the overrides it applies to), values."""
    lines = (ROOT / "docs" / "protocol.md").read_text().splitlines()
    start = lines.index("| difference | key | where | paper | scenic | sources |")
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        _, key, where, paper, scenic, _ = (cell.strip() for cell in line.strip("|").split("|"))
        conditions = dict(o.split("=") for o in where.strip("`").split()) if where.startswith("`") else {}
        rows.append(
            {
                "key": key.strip("`"),
                "where": conditions,
                "values": tuple(yaml.safe_load(v.strip("`")) for v in (paper, scenic)),
            }
        )
    return rows


def flat(node, prefix: str = "") -> dict:
    """A config as {dotted key: value}, interpolations left as written (only what a config file sets differs)."""
    container = OmegaConf.to_container(node, resolve=False) if OmegaConf.is_config(node) else node
    out = {}
    for key, value in container.items():
        if isinstance(value, dict) and value:
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# every recipe, and the models the table names, under both protocols
PROTOCOL_JOBS = [
    ("k400", "vivit_b_fe"),
    ("k400", "vivit_l_fe"),
    ("k600", "vivit_l_fe"),
    ("ssv2", "vivit_l_fe"),
    ("epic100", "vivit_b_fsa"),
    ("mit", "vivit_b_st"),
]


@pytest.mark.parametrize("recipe,model", PROTOCOL_JOBS)
def test_protocol_switch_changes_exactly_the_documented_values(recipe, model, tmp_path):
    table = protocol_table()
    expected = {
        row["key"]: row["values"]
        for row in table
        if all({"recipe": recipe, "model": model}.get(k) == v for k, v in row["where"].items())
    }
    configs = {
        protocol: compose_config(
            "train", [f"recipe={recipe}", f"model={model}", DATA_ROOT, f"protocol={protocol}"], output_dir=tmp_path
        )
        for protocol in ("paper", "scenic")
    }
    paper, scenic = ({k: v for k, v in flat(cfg).items() if not k.startswith("hydra.")} for cfg in configs.values())
    changed = {
        key: (paper.get(key), scenic.get(key))
        for key in paper.keys() | scenic.keys()
        if paper.get(key) != scenic.get(key)
    }
    assert changed.pop("protocol") == ("paper", "scenic")
    assert changed == expected
    # and the recipe's own values are the paper's (Table 7), so protocol=paper changes nothing
    assert configs["paper"].hydra.runtime.choices.protocol == "paper"


def test_protocol_reaches_the_training_augmentation(tmp_path):
    """The data switches of the table arrive in the transforms the data module builds: scenic's RandAugment on
    EPIC-Kitchens, and its colour drop on Kinetics."""
    import hydra

    found = {}
    for protocol in ("paper", "scenic"):
        for recipe in ("epic100", "k400"):
            cfg = compose_config("train", [f"recipe={recipe}", DATA_ROOT, f"protocol={protocol}"], output_dir=tmp_path)
            steps = hydra.utils.instantiate(cfg.data, test_views="1x1").train_transform.transforms
            found[protocol, recipe] = {type(t).__name__: t for t in steps}
    assert not found["paper", "epic100"]["VideoRandAugment"].scenic_compat
    assert found["scenic", "epic100"]["VideoRandAugment"].scenic_compat
    assert found["scenic", "epic100"]["VideoRandAugment"].fill == 0
    assert (found["paper", "k400"]["ColourAugment"].p_gray, found["scenic", "k400"]["ColourAugment"].p_gray) == (0, 0.1)

"""The paper's reference numbers: ViViT (Arnab et al., ICCV 2021), Tables 1-6 and Figures 7-9 of arXiv v2, as data.

Every table lists its rows with the paper's number per dataset (top-1 in percent; EPIC-Kitchens: action top-1)
and, where the paper gives them, GFLOPs per view, parameters (millions) and TPU-v3 inference time. `PaperTable.metric`
names the entry of a run's metrics.json that the paper's number corresponds to (the multi-view test: K400 4x3
views, EK 4x1). Datasets are named as the configs in conf/data/ (k400, k600, epic100, ssv2, mit).

A run is matched to a row by what it ran, read from its composed config (`.hydra/config.yaml`), not by what its
preset was called: `PaperTable.row_key(config, dataset)` returns the row's `key`; e.g. Table 2 keys a run by its
model class (`SpatioTemporalViViT` -> "st", `FactorisedEncoderViViT` with mean pooling -> "fe_avgpool"), Table 4 by
which of its regularisers are on. So a sweep written by hand (`python train.py -m model=vivit_b_st,vivit_b_fe ...`)
or the CPU demo (experiment=demo_variants) lines up with the paper as well as the presets in conf/experiment/paper/.

`Row.model` (+ `model_overrides`) names the conf/model config of a row, so the paper's FLOPs and parameters can be
checked against `python -m vivit.flops` (tests/test_experiments.py does).

The figures print no numbers. Their tables hold what the paper states elsewhere for the same setting (Figure 7's
and Figure 8's 16x2 points are Table 2's and Table 5's models, Figure 9's 128-frame model is Table 6's) and the
FLOPs its text gives; a row without a number is matched and listed, with nothing to compare.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vivit.models import SIZES, variant_of
from vivit.weights.checkpoint import VIDEO_CHECKPOINT_SUFFIXES

__all__ = ["Row", "PaperTable", "TABLES", "VALIDATION_AS_TEST", "variant", "config_value"]

# The metric of the paper's numbers: top-1 of the multi-view test; EPIC-Kitchens reports actions (noun and verb).
TOP1 = "test/top1"
ACTION_TOP1 = "test/action_top1"
METRICS = {"k400": TOP1, "k600": TOP1, "k700": TOP1, "mit": TOP1, "ssv2": TOP1, "epic100": ACTION_TOP1}
# Where the paper's "test" numbers, and this project's test split, are the validation set: K600's test.csv, SSv2's
# test ids and EPIC's test timestamps are unlabelled, and MiT has no public test set.
VALIDATION_AS_TEST = {
    "k600": "K600 (its test.csv is unlabelled)",
    "mit": "MiT (no public test set)",
    "epic100": "EPIC-KITCHENS-100 (the test timestamps are unlabelled)",
    "ssv2": "SSv2 (its test ids are unlabelled)",
}


@dataclass(frozen=True)
class Row:
    """One row of a paper table."""

    key: str  # what the table's `row_key` returns for a run of this row
    label: str  # the paper's name of the row
    top1: Mapping[str, float]  # dataset -> the paper's number (percent)
    gflops: float | None = None  # per view, in multiply-adds (the paper's convention)
    params_m: float | None = None  # millions
    runtime_ms: float | None = None  # TPU-v3 inference, per view
    model: str | None = None  # conf/model/<model>.yaml of the row ...
    model_overrides: tuple[str, ...] = ()  # ... with these key=value changes (as `python -m vivit.flops`)
    more: Mapping[str, float] = field(default_factory=dict)  # other numbers, "dataset:metric" -> percent


@dataclass(frozen=True)
class PaperTable:
    """A paper table: its rows, the metric its numbers are, and how a run finds its row."""

    name: str
    title: str
    rows: tuple[Row, ...]
    row_key: Callable[[DictConfig, str | None], str | None]  # a run's config and dataset -> its row's key, or None
    note: str = ""

    @property
    def datasets(self) -> list[str]:
        """The datasets the table has numbers for, in the paper's column order."""
        return list(dict.fromkeys(d for row in self.rows for d in row.top1))

    def metric(self, dataset: str) -> str:
        """The metrics.json entry the table's number for `dataset` corresponds to."""
        return METRICS.get(dataset, TOP1)

    def row(self, key: str | None) -> Row | None:
        return next((row for row in self.rows if row.key == key), None)


# ------------------------------------------------------------------------------------------- reading a run's config
SIZE_NAMES = {config["embed_dim"]: name.capitalize() for name, config in SIZES.items()}  # ViT width -> "Ti", "B"...


def config_value(config: DictConfig, key: str, default: Any = None) -> Any:
    """`key` of a run's config (dotted), or `default` when absent or not resolvable outside the run."""
    try:
        value = OmegaConf.select(config, key, default=default, throw_on_missing=False)
        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=True)
    except OmegaConfBaseException:  # an interpolation that only resolves inside the Hydra run, e.g. ${hydra:...}
        return default
    return value


def variant(config: DictConfig) -> str | None:
    """The paper's model variant of a run: st, fe, fsa, fdp, or fe_avgpool (Model 2 with mean pooling)."""
    found = variant_of(str(config_value(config, "model._target_", "")))
    name = found.name if found else None
    if name == "fe" and config_value(config, "model.temporal_pooling") == "mean":
        return "fe_avgpool"
    return name


def _table1_key(config: DictConfig, dataset: str | None = None) -> str | None:
    if variant(config) != "st":
        return None
    if config_value(config, "model.embedding") == "uniform":
        return "uniform"
    return f"tubelet_{config_value(config, 'model.init_options.tubelet_init', 'central_frame')}"


def _table2_key(config: DictConfig, dataset: str | None = None) -> str | None:
    return variant(config)


def _table3_key(config: DictConfig, dataset: str | None = None) -> str | None:
    name = variant(config)
    if name == "fe_avgpool":
        return "lt0"
    return f"lt{config_value(config, 'model.temporal_depth')}" if name == "fe" else None


def _table4_key(config: DictConfig, dataset: str | None = None) -> str | None:
    """The cumulative row: how many of the regularisers, in the table's order, are on (all later ones off)."""
    if variant(config) != "fe":
        return None
    init = str(config_value(config, "model.init") or "")
    steps = [
        init.endswith(VIDEO_CHECKPOINT_SUFFIXES),  # Kinetics-400 initialisation: a video checkpoint
        float(config_value(config, "model.drop_path_rate", 0.0) or 0.0) > 0,
        bool(config_value(config, "data.randaugment")),
        float(config_value(config, "regularisation.label_smoothing", 0.0) or 0.0) > 0,
        float(config_value(config, "regularisation.mixup_alpha", 0.0) or 0.0) > 0,
    ]
    on = next((i for i, step in enumerate(steps) if not step), len(steps))
    return None if any(steps[on:]) else f"row{on + 1}"


def _table5_key(config: DictConfig, dataset: str | None = None) -> str | None:
    if variant(config) != "st" or config_value(config, "model.embed_dim") != 1024:
        return None
    return str(config_value(config, "model.img_size"))


def _fig7_key(config: DictConfig, dataset: str | None = None) -> str | None:
    """The backbone of a Model 1 run: `B` or `L` (any other size has no point in the figure)."""
    size = SIZE_NAMES.get(config_value(config, "model.embed_dim"))
    return size if variant(config) == "st" and size in ("B", "L") else None


def _fig8_key(config: DictConfig, dataset: str | None = None) -> str | None:
    """`<variant> 16x<t>`: the variant of a ViViT-B run and its tubelet length."""
    name, tubelet = variant(config), config_value(config, "model.tubelet_size") or [None]
    if name not in ("st", "fe", "fsa", "fdp") or SIZE_NAMES.get(config_value(config, "model.embed_dim")) != "B":
        return None
    return f"{name} 16x{tubelet[0]}"


def _fig9_key(config: DictConfig, dataset: str | None = None) -> str | None:
    """`<frames> frames` of a ViViT-L factorised encoder run."""
    if variant(config) != "fe" or SIZE_NAMES.get(config_value(config, "model.embed_dim")) != "L":
        return None
    return f"{config_value(config, 'model.num_frames')} frames"


def _table6_key(config: DictConfig, dataset: str | None = None) -> str | None:
    """`ViViT-L/16x2 FE` (+ ` (JFT)` when initialised from a JFT model), and for K400 `, <frames> frames, <views>`."""
    size = SIZE_NAMES.get(config_value(config, "model.embed_dim"))
    t, patch, _ = config_value(config, "model.tubelet_size", [None, None, None])
    if size is None or variant(config) not in ("st", "fe"):
        return None
    key = f"ViViT-{size}/{patch}x{t}{' FE' if variant(config) == 'fe' else ''}"
    if "jft" in str(config_value(config, "model.init") or "").lower():
        key += " (JFT)"
    if dataset == "k400":
        key += f", {config_value(config, 'model.num_frames')} frames, {config_value(config, 'data.test_views')}"
    return key


# ----------------------------------------------------------------------------------------------------- the tables
TABLE1 = PaperTable(
    name="table1",
    title="Table 1: input encoding (ViViT-B, Model 1, 32 frames; 8 sampled frames or tubelets of t=4)",
    row_key=_table1_key,
    rows=tuple(
        Row(key, label, {"k400": top1}, model="vivit_b_st", model_overrides=("tubelet_size=[4,16,16]",) + extra)
        for key, label, top1, extra in [
            ("uniform", "Uniform frame sampling", 78.5, ("embedding=uniform",)),
            ("tubelet_random", "Tubelet embedding, random init.", 73.2, ()),
            ("tubelet_inflate", "Tubelet embedding, filter inflation", 77.6, ()),
            ("tubelet_central_frame", "Tubelet embedding, central frame", 79.2, ()),
        ]
    ),
)

TABLE2 = PaperTable(
    name="table2",
    title="Table 2: model variants (ViViT-B/16x2, 32 frames); K400 top-1, EK action top-1, TPU-v3 runtime",
    row_key=_table2_key,
    rows=(
        Row("st", "Model 1: Spatio-temporal", {"k400": 80.0, "epic100": 43.1}, 455.2, 88.9, 58.9, "vivit_b_st"),
        Row("fe", "Model 2: Fact. encoder", {"k400": 78.8, "epic100": 43.7}, 284.4, 115.1, 17.4, "vivit_b_fe"),
        Row("fsa", "Model 3: Fact. self-attention", {"k400": 77.4, "epic100": 39.1}, 372.3, 117.3, 31.7, "vivit_b_fsa"),
        Row("fdp", "Model 4: Fact. dot product", {"k400": 76.3, "epic100": 39.5}, 277.1, 88.9, 22.9, "vivit_b_fdp"),
        Row(
            "fe_avgpool",
            "Model 2: Ave. pool baseline",
            {"k400": 75.8, "epic100": 38.8},
            283.9,
            86.7,
            17.3,
            "vivit_b_fe_avgpool",
        ),
    ),
    note="The EK models were trained with every regulariser of Table 4.",
)

TABLE3 = PaperTable(
    name="table3",
    title="Table 3: temporal transformer depth Lt of the factorised encoder (ViViT-B/16x2 FE)",
    row_key=_table3_key,
    rows=(Row("lt0", "Lt = 0 (ave. pool)", {"k400": 75.8}, model="vivit_b_fe_avgpool"),)
    + tuple(
        Row(f"lt{lt}", f"Lt = {lt}", {"k400": top1}, model="vivit_b_fe", model_overrides=(f"temporal_depth={lt}",))
        for lt, top1 in [(1, 78.6), (4, 78.8), (8, 78.8), (12, 78.9)]
    ),
)

TABLE4 = PaperTable(
    name="table4",
    title="Table 4: regularisation, applied cumulatively (EK action top-1, SSv2 top-1; ViViT-B/16x2 FE)",
    row_key=_table4_key,
    rows=tuple(
        Row(f"row{i}", label, top1, model="vivit_b_fe")
        for i, (label, top1) in enumerate(
            [
                ("Random crop, flip, colour jitter", {"epic100": 38.4, "ssv2": 60.4}),
                ("+ Kinetics 400 initialisation", {"epic100": 39.6}),
                ("+ Stochastic depth", {"epic100": 40.2}),
                ("+ Random augment", {"epic100": 41.1}),
                ("+ Label smoothing", {"epic100": 43.1}),
                ("+ Mixup", {"epic100": 43.7, "ssv2": 65.4}),
            ],
            start=1,
        )
    ),
    note="SSv2 has no table: the text gives its first and last rows (ICCV: 'from 60.4% to 65.4%'), model unnamed.",
)

TABLE5 = PaperTable(
    name="table5",
    title="Table 5: spatial resolution (ViViT-L/16x2, Model 1, 32 frames)",
    row_key=_table5_key,
    rows=tuple(
        Row(str(crop), f"{crop} px", {"k400": top1}, gflops, None, runtime, "vivit_l_st", (f"img_size={crop}",))
        for crop, top1, gflops, runtime in [(224, 80.3, 1446, 58.9), (288, 80.7, 2919, 147.6), (320, 81.0, 3992, 238.8)]
    ),
)

TABLE6 = PaperTable(
    name="table6",
    title="Table 6: comparison to the state of the art (ViViT rows)",
    row_key=_table6_key,
    rows=(
        # K400: per-view FLOPs of 3.98 TFLOPs are those of a 128-frame ViViT-L FE (derived, not stated in the table)
        Row(
            "ViViT-L/16x2 FE, 128 frames, 1x1",
            "ViViT-L/16x2 FE, 1x1 views",
            {"k400": 80.6},
            3980.4,
            model="vivit_l_fe",
            model_overrides=("num_frames=128",),
            more={"k400:test/top5": 92.7},
        ),
        Row(
            "ViViT-L/16x2 FE, 128 frames, 1x3",
            "ViViT-L/16x2 FE, 1x3 views",
            {"k400": 81.7},
            3980.4,
            model="vivit_l_fe",
            model_overrides=("num_frames=128",),
            more={"k400:test/top5": 93.8},
        ),
        Row(
            "ViViT-L/16x2 FE (JFT), 128 frames, 1x3",
            "ViViT-L/16x2 FE (JFT), 1x3 views",
            {"k400": 83.5},
            3980.4,
            model="vivit_l_fe",
            model_overrides=("num_frames=128",),
            more={"k400:test/top5": 94.3},
        ),
        Row(
            "ViViT-H/14x2 (JFT), 32 frames, 4x3",
            "ViViT-H/14x2 (JFT), 4x3 views",
            {"k400": 84.9},
            more={"k400:test/top5": 95.8},
        ),
        Row(
            "ViViT-L/16x2 FE",
            "ViViT-L/16x2 FE",
            {"k600": 82.9, "mit": 38.5, "epic100": 44.0, "ssv2": 65.9},
            model="vivit_l_fe",
            more={
                "k600:test/top5": 94.6,
                "mit:test/top5": 64.1,
                "epic100:test/verb_top1": 66.4,
                "epic100:test/noun_top1": 56.8,
                "ssv2:test/top5": 89.9,
            },
        ),
        Row("ViViT-L/16x2 FE (JFT)", "ViViT-L/16x2 FE (JFT)", {"k600": 84.3}, more={"k600:test/top5": 94.9}),
        Row("ViViT-H/14x2 (JFT)", "ViViT-H/14x2 (JFT)", {"k600": 85.8}, more={"k600:test/top5": 96.5}),
    ),
    note="K400 rows are keyed by frames and views too; the paper's K400 FE numbers come from a 128-frame model.",
)

FIG7 = PaperTable(
    name="fig7",
    title="Figure 7: ViViT-B against ViViT-L, Model 1 (spatio-temporal), 16x2, 32 frames",
    row_key=_fig7_key,
    rows=(
        Row("B", "ViViT-B/16x2 (Table 2)", {"k400": 80.0}, 455.2, 88.9, 58.9, "vivit_b_st"),
        Row("L", "ViViT-L/16x2, 224 px (Table 5)", {"k400": 80.3}, 1446, None, 58.9, "vivit_l_st"),
    ),
    note="The figure prints no numbers: its two models are Table 2's and Table 5's, whose numbers these are.",
)

FIG8 = PaperTable(
    name="fig8",
    title="Figure 8: tubelet length (16x8, 16x4, 16x2) of each variant, ViViT-B, 32 frames",
    row_key=_fig8_key,
    rows=tuple(
        Row(
            f"{name} 16x{t}",
            f"Model {model}, 16x{t}",
            {"k400": table2[0]} if t == 2 else {},
            table2[1] if t == 2 else None,
            model=f"vivit_b_{name}",
            model_overrides=() if t == 2 else (f"tubelet_size=[{t},16,16]",),
        )
        for name, model, table2 in [
            ("st", 1, (80.0, 455.2)),
            ("fe", 2, (78.8, 284.4)),
            ("fsa", 3, (77.4, 372.3)),
            ("fdp", 4, (76.3, 277.1)),
        ]
        for t in (8, 4, 2)
    ),
    note="The figure prints no numbers: its 16x2 points are Table 2's models; 16x8 and 16x4 have none.",
)

FIG9 = PaperTable(
    name="fig9",
    title="Figure 9: input frames and test views, ViViT-L/16x2 factorised encoder",
    row_key=_fig9_key,
    rows=(
        Row("32 frames", "32 frames, 4x3 views", {}, 995.3, model="vivit_l_fe"),
        Row("64 frames", "64 frames, 2x3 views", {}, model="vivit_l_fe", model_overrides=("num_frames=64",)),
        Row(
            "128 frames",
            "128 frames, 1x3 views (Table 6)",
            {"k400": 81.7},
            3980.4,
            model="vivit_l_fe",
            model_overrides=("num_frames=128",),
            more={"k400:test/top5": 93.8},
        ),
    ),
    note="The text gives the GFLOPs per view and that 128 frames are the most accurate (Table 6: 81.7 with 1x3).",
)

TABLES: dict[str, PaperTable] = {t.name: t for t in (TABLE1, TABLE2, TABLE3, TABLE4, TABLE5, TABLE6, FIG7, FIG8, FIG9)}

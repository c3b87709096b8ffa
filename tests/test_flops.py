"""FLOPs/parameter counter (`python -m vivit.flops`) against the paper's Tables 2 and 5 and closed-form counts,
and a smoke test of the model throughput benchmark (benchmarks/bench_models.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from vivit import flops
from vivit.models import Attention, FactorisedDotProductAttention

ROOT = Path(__file__).resolve().parents[1]

# Paper Table 2 (ViViT-B/16x2, 32 frames at 224, K400: 400 classes): (GFLOPs, params in M).
TABLE_2 = {
    "vivit_b_st": (455.2, 88.9),
    "vivit_b_fe": (284.4, 115.1),
    "vivit_b_fsa": (372.3, 117.3),
    "vivit_b_fdp": (277.1, 88.9),
    "vivit_b_fe_avgpool": (283.9, 86.7),
}
# Paper Table 5 (ViViT-L/16x2 Model 1, 32 frames): crop size -> GFLOPs.
TABLE_5 = {224: 1446, 288: 2919, 320: 3992}


@pytest.fixture(scope="module")
def table_2() -> dict[str, dict]:
    return {name: flops.config_stats(name) for name in TABLE_2}


@pytest.mark.parametrize("name", TABLE_2)
def test_table_2_gflops_and_params(table_2, name):
    gflops, params_m = TABLE_2[name]
    stats = table_2[name]
    assert stats["gflops"] == pytest.approx(gflops, rel=0.01)
    # Within the paper's one decimal (88.954 M is printed as 88.9 there, 115.06 M as 115.1).
    assert stats["params_m"] == pytest.approx(params_m, abs=0.06)


@pytest.mark.parametrize("crop,gflops", TABLE_5.items())
def test_table_5_gflops(crop, gflops):
    stats = flops.config_stats("vivit_l_st", [f"img_size={crop}"])
    assert stats["img_size"] == crop and stats["tokens"] == 16 * (crop // 16) ** 2
    assert stats["gflops"] == pytest.approx(gflops, rel=0.01)


@pytest.mark.parametrize("frames,gflops", [(32, 995.3), (128, 3980.4)])
def test_large_factorised_encoder_gflops(frames, gflops):
    """Paper Fig. 9 / Table 6: ViViT-L/16x2 FE costs 995.3 GFLOPs per view at 32 frames, 3980.4 at 128."""
    assert flops.config_stats("vivit_l_fe", [f"num_frames={frames}"])["gflops"] == pytest.approx(gflops, rel=0.01)


def test_model_1_equals_closed_form_in_multiply_adds(table_2):
    """One multiply-add = one FLOP: the tubelet conv, 12 D^2 per token per block (qkv 3, proj 1, MLP 8), the
    attention's 2 n^2 D per block and the head, exactly (biases, softmax, LayerNorm and GELU not counted)."""
    D, L, N, K = 768, 12, 16 * 14 * 14, 400
    n = N + 1  # CLS token
    conv = N * D * (3 * 2 * 16 * 16)
    expected = conv + L * (12 * n * D * D + 2 * n * n * D) + D * K
    stats = table_2["vivit_b_st"]
    assert sum(stats["macs_by_op"].values()) == expected
    assert stats["macs_by_op"]["aten.convolution"] == conv


def _attention_macs(nt: int, ns: int, D: int, L: int, Lt: int) -> dict[str, int]:
    """QK^T + AV multiply-adds (2 n^2 D per attention over n tokens) of each ViViT-B variant, from the paper."""
    N = nt * ns
    return {
        "vivit_b_st": L * 2 * (N + 1) ** 2 * D,  # all tokens + CLS
        "vivit_b_fe": L * nt * 2 * (ns + 1) ** 2 * D + Lt * 2 * (nt + 1) ** 2 * D,  # per frame + CLS, then time
        "vivit_b_fe_avgpool": L * nt * 2 * (ns + 1) ** 2 * D,
        "vivit_b_fsa": L * (nt * 2 * ns**2 * D + ns * 2 * nt**2 * D),  # within frames, then across time
        "vivit_b_fdp": L * (2 * N * nt * D // 2 + 2 * N * ns * D // 2),  # half the channels each way
    }


@pytest.mark.parametrize("name", TABLE_2)
def test_attention_is_counted(table_2, name, monkeypatch):
    """Removing the attention products (attend returns v) removes exactly the analytic attention term: the CPU
    fused SDPA kernel, invisible to FlopCounterMode, is not what gets counted."""
    monkeypatch.setattr(Attention, "attend", lambda self, q, k, v: v)
    monkeypatch.setattr(FactorisedDotProductAttention, "attend", lambda self, q, k, v: v)
    without = flops.config_stats(name)
    removed = sum(table_2[name]["macs_by_op"].values()) - sum(without["macs_by_op"].values())
    assert removed == _attention_macs(nt=16, ns=196, D=768, L=12, Lt=4)[name]
    assert without["params"] == table_2[name]["params"]


def test_real_cpu_forward_counts_like_meta():
    """On real CPU tensors (where SDPA would take the uncounted fused kernel) the count equals the meta count."""
    from omegaconf import OmegaConf

    from vivit.models import build_model

    cfg = flops.compose_model_config("vivit_ti_st", ["img_size=32", "num_frames=4", "depth=2"])
    cfg = {**OmegaConf.to_container(cfg, resolve=True), "num_classes": 10}
    meta = flops.count_macs(flops.build_meta_model(cfg))
    cpu = flops.count_macs(build_model(cfg).eval())
    assert cpu == meta and meta["aten.bmm"] > 0


def test_cli_table(capsys):
    assert flops.main(["vivit_b_st", "vivit_tiny", "--num-classes", "8"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["model", "params", "(M)"]
    row = next(line for line in lines if line.startswith("vivit_b_st "))
    assert row.split()[1:4] == ["88.65", "451.5", "3136"]  # 8-class head: 88.954M - 392 * 769 params
    assert any(line.startswith("vivit_tiny ") for line in lines)
    assert "multiply-add" in out and "FlopCounterMode counts 2" in out


def test_cli_json_lines_with_overrides(capsys):
    assert flops.main(["vivit_b_st", "vivit_b_fdp", "img_size=192", "model.num_frames=16", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["model"] for r in rows] == ["vivit_b_st", "vivit_b_fdp"]
    for r in rows:
        assert r["overrides"] == ["img_size=192", "model.num_frames=16"]
        assert (r["img_size"], r["num_frames"], r["grid"], r["tokens"]) == (192, 16, [8, 12, 12], 8 * 144)
        assert r["convention"] == "multiply-adds"
        assert r["gflops"] == pytest.approx(sum(r["macs_by_op"].values()) / 1e9)
    assert rows[0]["params"] == rows[1]["params"] + 2 * 768  # Model 1's CLS token and its position embedding


@pytest.mark.parametrize(
    "argv,message",
    [
        (["vivit_x_st"], "unknown model config 'vivit_x_st'; pick one of: vivit_b_fdp"),
        (["vivit_b_st", "nonsense=1"], "model.nonsense"),
        (["vivit_b_st", "img_size=200"], "model.img_size=200"),
    ],
)
def test_cli_errors_name_the_problem(capsys, argv, message):
    assert flops.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


# -- benchmark smoke test -----------------------------------------------------------------------------------


def test_bench_models_smoke(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_models", ROOT / "benchmarks" / "bench_models.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "models.json"
    threads = torch.get_num_threads()
    try:
        result = bench.main(["--preset", "tiny", "--threads", "1", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)  # the benchmark fixes the thread count for the whole process
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert set(result) == {"meta", "config", "results"}
    assert result["meta"]["threads"] == 1
    rows = {r["model"]: r for r in result["results"]}
    assert list(rows) == ["st", "fe", "fsa", "fdp", "hf"]
    for r in rows.values():
        for mode in ("train", "infer"):
            assert len(r[f"{mode}_step_s_all"]) == 1 and r[f"{mode}_clips_per_s"] > 0
            assert r[f"{mode}_mfu"] is None  # no peak on CPU unless --peak-tflops
    assert rows["hf"]["train_vs_hf"] == rows["hf"]["infer_vs_hf"] == 1.0
    # Same configuration: same parameter count and arithmetic for hf and our Model 1.
    assert rows["hf"]["params"] == rows["st"]["params"]
    assert rows["hf"]["gflops_per_clip"] == rows["st"]["gflops_per_clip"]
    assert "vs hf" in capsys.readouterr().out

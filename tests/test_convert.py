"""Tests of `python -m vivit.convert` (Hugging Face and Scenic checkpoints) and of `vivit.load_checkpoint`.

The Hugging Face test compares logits with `transformers.VivitForVideoClassification` itself; the Scenic tests
build parameter trees with the official names and Flax layouts, check the layouts with Flax's own arithmetic
(einsum over the stored kernels) and round-trip every variant through the msgpack file format.
"""

from __future__ import annotations

import argparse
import json
import re

import msgpack
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tests.fixtures.msgpack import write_msgpack
from vivit import load_checkpoint
from vivit.convert import main
from vivit.models import (
    VARIANTS,
    FactorisedEncoderViViT,
    FactorisedSelfAttentionViViT,
    SpatioTemporalViViT,
)
from vivit.weights.checkpoint import read_checkpoint
from vivit.weights.convert import convert_hf, convert_scenic
from vivit.weights.scenic import read_msgpack

# 8 frames of 16x16, tubelets 2x4x4 -> 4 x 4 x 4 tokens; 2 blocks of width 32 with 4 heads.
GEOMETRY = dict(img_size=16, num_frames=8, tubelet_size=[2, 4, 4], embed_dim=32, depth=2, num_heads=4)


def overrides(variant: str, **extra) -> list[str]:
    values = {**GEOMETRY, **({"temporal_depth": 2} if variant == "fe" else {}), **extra}
    return [f"{k}={json.dumps(v)}" for k, v in values.items()]


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Large random weights everywhere (HF and our heads, CLS and position embeddings start at zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            is_norm_scale = re.search(r"(norm|layernorm)[^.]*\.weight$", name) is not None
            p.copy_(1.0 + 0.2 * noise if is_norm_scale else 0.3 * noise)
    return model.eval()


def clip(batch: int = 2, seed: int = 1) -> torch.Tensor:
    """A clip (B, C, T, H, W) in [-1, 1], the models' input range."""
    return torch.rand(batch, 3, 8, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# -- Hugging Face ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hf_model():
    from transformers import VivitConfig, VivitForVideoClassification

    config = VivitConfig(
        image_size=16,
        num_frames=8,
        tubelet_size=[2, 4, 4],
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=5,
    )
    return randomise(VivitForVideoClassification._from_config(config, attn_implementation="eager"))


def hf_logits(model: nn.Module, video: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():  # Hugging Face takes (B, T, C, H, W)
        return model(pixel_values=video.transpose(1, 2)).logits


def test_hf_conversion_gives_the_same_logits_as_transformers(hf_model, tmp_path, capsys):
    hf_model.save_pretrained(tmp_path / "hf")
    # transformers >= 5.9 names in memory (`layers.N.attention.q_proj`); save_pretrained writes the legacy ones.
    state = {k: v.contiguous() for k, v in hf_model.state_dict().items()}
    assert "vivit.layers.1.attention.q_proj.weight" in state and "vivit.layers.1.mlp.fc2.weight" in state
    save_file(state, tmp_path / "hf" / "model.safetensors")
    main(["hf", str(tmp_path / "hf"), str(tmp_path / "vivit.pt")])
    assert "SpatioTemporalViViT" in capsys.readouterr().out

    model = load_checkpoint(tmp_path / "vivit.pt")
    video = clip()
    reference = hf_logits(hf_model, video)
    with torch.no_grad():
        diff = (model(video) - reference).abs().max().item()
    print(f"HF ViViT vs converted, max abs logit difference: {diff:.3g}")
    assert diff < 1e-4
    assert reference.std() > 0.5  # random weights large enough for a token-order or q/k/v mix-up to show
    assert model.num_classes == 5 and not model.training
    # the class names of config.json's id2label travel with the weights
    saved = torch.load(tmp_path / "vivit.pt", weights_only=True)["vivit_config"]
    assert saved["classes"] == [hf_model.config.id2label[i] for i in range(5)]


def test_hf_class_names_follow_id2label_order_and_scenic_takes_a_names_file(hf_model, tmp_path):
    hf_model.save_pretrained(tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    config["id2label"] = {"1": "b", "0": "a", "3": "d", "2": "c", "4": "e"}  # not in key order in the file
    (tmp_path / "hf" / "config.json").write_text(json.dumps(config))
    main(["hf", str(tmp_path / "hf"), str(tmp_path / "hf.pt")])
    assert torch.load(tmp_path / "hf.pt", weights_only=True)["vivit_config"]["classes"] == list("abcde")

    write_msgpack(scenic_tree(tiny("st")), tmp_path / "checkpoint")
    (tmp_path / "names.txt").write_text("\n".join(f"action {i}" for i in range(6)) + "\n")
    main(
        [
            "scenic",
            str(tmp_path / "checkpoint"),
            str(tmp_path / "scenic.pt"),
            "--model",
            "vivit_s_st",
            "--classes",
            str(tmp_path / "names.txt"),
            *overrides("st"),
        ]
    )
    saved = torch.load(tmp_path / "scenic.pt", weights_only=True)["vivit_config"]
    assert saved["classes"] == [f"action {i}" for i in range(6)]
    (tmp_path / "five.txt").write_text("a\nb\nc\nd\ne\n")
    with pytest.raises(SystemExit, match="5 class names for a classifier of 6 classes"):
        main(
            [
                "scenic",
                str(tmp_path / "checkpoint"),
                str(tmp_path / "bad.pt"),
                "--model",
                "vivit_s_st",
                "--classes",
                str(tmp_path / "five.txt"),
                *overrides("st"),
            ]
        )


def test_hf_conversion_reads_the_legacy_names(hf_model, tmp_path):
    hf_model.save_pretrained(tmp_path / "hf")  # the hub layout: legacy names (transformers <= 5.8)
    state = load_file(tmp_path / "hf" / "model.safetensors")
    assert "vivit.encoder.layer.1.attention.attention.query.weight" in state
    assert "vivit.encoder.layer.1.attention.output.dense.weight" in state
    assert "vivit.encoder.layer.1.output.dense.weight" in state
    legacy = tmp_path / "legacy"  # the same weights as a pytorch_model.bin
    legacy.mkdir()
    (legacy / "config.json").write_text((tmp_path / "hf" / "config.json").read_text())
    torch.save(state, legacy / "pytorch_model.bin")

    video = clip(seed=2)
    for src in (tmp_path / "hf", legacy):
        model = convert_hf(src, tmp_path / "legacy.pt")
        with torch.no_grad():
            assert (model(video) - hf_logits(hf_model, video)).abs().max() < 1e-4


def test_hf_single_weights_file_needs_a_model_config(hf_model, tmp_path):
    weights = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in hf_model.state_dict().items()}, weights)
    with pytest.raises(ValueError, match="no config.json.*--model"):
        convert_hf(weights, tmp_path / "out.pt")
    model = convert_hf(weights, tmp_path / "out.pt", "vivit_s_st", [*overrides("st"), "mlp_ratio=2.0"])
    video = clip(seed=3)
    with torch.no_grad():
        assert (model(video) - hf_logits(hf_model, video)).abs().max() < 1e-4


def test_hf_rejects_an_exact_gelu(hf_model, tmp_path):
    hf_model.save_pretrained(tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**config, "hidden_act": "gelu"}))
    with pytest.raises(ValueError, match="hidden_act='gelu'"):
        convert_hf(tmp_path / "hf", tmp_path / "out.pt")


# -- Scenic --------------------------------------------------------------------------------------------------------
def tiny(variant: str, num_classes: int = 6) -> nn.Module:
    kwargs = {**GEOMETRY, **({"temporal_depth": 2} if variant == "fe" else {})}
    return randomise(VARIANTS[variant].model_class(num_classes, **kwargs))


def scenic_tree(model: nn.Module) -> dict:
    """The official Scenic parameter tree of `model`, written independently of vivit.convert.

    Flax layouts: Conv kernel [t, h, w, c_in, c_out]; Dense kernel [in, out]; attention query/key/value kernel
    [D, heads, head_dim] and bias [heads, head_dim], out kernel [heads, head_dim, D]; LayerNorm scale/bias.
    """
    sd = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    dim, heads = model.embed_dim, model.block_kwargs["num_heads"]
    hd = dim // heads

    def ln(p):
        return {"scale": sd[f"{p}.weight"], "bias": sd[f"{p}.bias"]}

    def dense(p):
        return {"kernel": sd[f"{p}.weight"].T.copy(), "bias": sd[f"{p}.bias"]}

    def attention(p):
        w, b = sd[f"{p}.qkv.weight"], sd[f"{p}.qkv.bias"]
        tree = {
            name: {
                "kernel": w[i * dim : (i + 1) * dim].T.reshape(dim, heads, hd).copy(),
                "bias": b[i * dim : (i + 1) * dim].reshape(heads, hd),
            }
            for i, name in enumerate(("query", "key", "value"))
        }
        tree["out"] = {"kernel": sd[f"{p}.proj.weight"].T.reshape(heads, hd, dim).copy(), "bias": sd[f"{p}.proj.bias"]}
        return tree

    def encoder(prefix: str, depth: int) -> dict:
        tree = {"posembed_input": {"pos_embedding": sd[f"{prefix}pos_embed"]}, "encoder_norm": ln(f"{prefix}norm")}
        for i in range(depth):
            b = f"{prefix}blocks.{i}"
            if isinstance(model, FactorisedSelfAttentionViViT):
                tree[f"encoderblock_{i}"] = {
                    "LayerNorm_space": ln(f"{b}.norm1"),
                    "MultiHeadDotProductAttention_space": attention(f"{b}.attn"),
                    "LayerNorm_time": ln(f"{b}.temporal_norm1"),
                    "MultiHeadDotProductAttention_time": attention(f"{b}.temporal_attn"),
                    "LayerNorm_mlp": ln(f"{b}.norm2"),
                    "MlpBlock": {"Dense_0": dense(f"{b}.mlp.fc1"), "Dense_1": dense(f"{b}.mlp.fc2")},
                }
            else:
                tree[f"encoderblock_{i}"] = {
                    "LayerNorm_0": ln(f"{b}.norm1"),
                    "MultiHeadDotProductAttention_0": attention(f"{b}.attn"),
                    "LayerNorm_1": ln(f"{b}.norm2"),
                    "MlpBlock_0": {"Dense_0": dense(f"{b}.mlp.fc1"), "Dense_1": dense(f"{b}.mlp.fc2")},
                }
        return tree

    tree = {
        "embedding": {
            "kernel": sd["patch_embed.proj.weight"].transpose(2, 3, 4, 1, 0).copy(),
            "bias": sd["patch_embed.proj.bias"],
        },
        "output_projection": dense("head"),
    }
    if isinstance(model, FactorisedEncoderViViT):
        tree["cls_SpatialTransformer"] = sd["cls_token"]
        tree["cls_TemporalTransformer"] = sd["temporal_cls_token"]
        tree["SpatialTransformer"] = encoder("", model.depth)
        tree["TemporalTransformer"] = encoder("temporal_", model.temporal_depth)
    else:
        if "cls_token" in sd:
            tree["cls"] = sd["cls_token"]
        tree["Transformer"] = encoder("", model.depth)
    return tree


def train_state(params: dict) -> dict:
    """A flax.optim train state as Scenic saves it, with a scalar and a chunked array among the extras."""
    momentum = {"embedding": {"kernel": np.zeros((1, 2), np.float32)}}
    chunked = {
        "__msgpack_chunked_array__": True,
        "shape": {"0": 2, "1": 3},
        "chunks": {"0": np.arange(4, dtype=np.float32), "1": np.arange(4, 6, dtype=np.float32)},
    }
    return {
        "optimizer": {"target": params, "state": {"step": np.int64(7), "param_states": momentum}},
        "global_step": np.int64(7),
        "accum_train_time": 12.5,
        "rng": chunked,
    }


def test_scenic_layouts_follow_flax_arithmetic():
    """Apply the stored Flax kernels as Flax does (einsum) and compare with the converted PyTorch modules."""
    model = tiny("st")
    tree = scenic_tree(model)
    from vivit.weights.scenic import rename_scenic

    state, _, unknown, heads = rename_scenic(tree)
    assert not unknown and heads == {4}
    converted = SpatioTemporalViViT(6, **GEOMETRY)
    converted.load_state_dict(state)
    video = clip()

    # Tubelet embedding: nn.Conv over [B, T, H, W, C] with kernel [t, h, w, c, d], stride = kernel, VALID.
    x = video.permute(0, 2, 3, 4, 1).numpy().reshape(2, 4, 2, 4, 4, 4, 4, 3)  # (B, nt, t, nh, h, nw, w, C)
    kernel, bias = tree["embedding"]["kernel"], tree["embedding"]["bias"]
    tokens = np.einsum("bxtyhzwc,thwcd->bxyzd", x, kernel) + bias
    with torch.no_grad():
        ours = converted.patch_embed(video).numpy()
    np.testing.assert_allclose(ours, tokens.reshape(2, 64, 32), atol=1e-5)  # time-major flattening

    # Attention projections: query = einsum('...d,dhk->...hk'), out = einsum('...hk,hkd->...d').
    h = torch.randn(2, 5, 32)
    mha = tree["Transformer"]["encoderblock_1"]["MultiHeadDotProductAttention_0"]
    attn = converted.blocks[1].attn
    with torch.no_grad():
        qkv = attn.qkv(h).reshape(2, 5, 3, 4, 8).numpy()
        for i, name in enumerate(("query", "key", "value")):
            expected = np.einsum("nld,dhk->nlhk", h.numpy(), mha[name]["kernel"]) + mha[name]["bias"]
            np.testing.assert_allclose(qkv[:, :, i], expected, atol=1e-5)
        y = torch.randn(2, 5, 4, 8)
        expected = np.einsum("nlhk,hkd->nld", y.numpy(), mha["out"]["kernel"]) + mha["out"]["bias"]
        np.testing.assert_allclose(attn.proj(y.reshape(2, 5, 32)).numpy(), expected, atol=1e-5)
        dense = tree["Transformer"]["encoderblock_1"]["MlpBlock_0"]["Dense_0"]
        expected = h.numpy() @ dense["kernel"] + dense["bias"]
        np.testing.assert_allclose(converted.blocks[1].mlp.fc1(h).numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_scenic_round_trip_through_msgpack(variant, tmp_path):
    model = tiny(variant)
    path = tmp_path / "checkpoint"
    write_msgpack(train_state(scenic_tree(model)), path)
    restored = read_msgpack(path)
    np.testing.assert_array_equal(restored["rng"], np.arange(6, dtype=np.float32).reshape(2, 3))  # unchunked
    assert restored["global_step"] == 7

    main(["scenic", str(path), str(tmp_path / "vivit.pt"), "--model", f"vivit_s_{variant}", *overrides(variant)])
    converted = load_checkpoint(tmp_path / "vivit.pt")
    assert type(converted) is type(model)
    assert converted.num_classes == 6  # from output_projection
    for name, value in model.state_dict().items():
        assert torch.equal(converted.state_dict()[name], value), name
    video = clip()
    with torch.no_grad():
        assert torch.equal(converted(video), model(video))


def test_scenic_reads_bfloat16_and_params_without_a_train_state(tmp_path):
    model = tiny("st")
    tree = scenic_tree(model)
    kernel = torch.from_numpy(tree["output_projection"]["kernel"]).to(torch.bfloat16)
    payload = msgpack.packb(
        (list(kernel.shape), "bfloat16", kernel.view(torch.int16).numpy().tobytes()), use_bin_type=True
    )
    tree["output_projection"]["kernel"] = msgpack.ExtType(1, payload)  # as flax writes a bfloat16 array
    path = tmp_path / "checkpoint"
    path.write_bytes(
        msgpack.packb(
            {"params": tree},
            default=lambda a: msgpack.ExtType(
                1, msgpack.packb((a.shape, a.dtype.name, a.tobytes()), use_bin_type=True)
            ),
            strict_types=True,
        )
    )
    converted = convert_scenic(path, tmp_path / "vivit.pt", "vivit_s_st", overrides("st"))
    assert torch.equal(converted.head.weight, kernel.float().T)


def test_scenic_mismatch_names_both_parameters(tmp_path):
    path = tmp_path / "checkpoint"
    write_msgpack(train_state(scenic_tree(tiny("fe"))), path)
    with pytest.raises(ValueError) as error:  # a temporal encoder of 3 blocks where the checkpoint has 2
        convert_scenic(path, tmp_path / "out.pt", "vivit_s_fe", overrides("fe", temporal_depth=3, mlp_ratio=2.0))
    message = str(error.value)
    assert "missing from the checkpoint: " in message and "temporal_blocks.2.norm1.weight" in message
    assert (
        "blocks.0.mlp.fc1.weight: model (64, 32), converted (128, 32) from "
        "SpatialTransformer/encoderblock_0/MlpBlock_0/Dense_0/kernel (32, 128)"
    ) in message
    with pytest.raises(ValueError, match=r"attention has \[4\] heads.*num_heads=8"):
        convert_scenic(path, tmp_path / "out.pt", "vivit_s_fe", overrides("fe", num_heads=8))
    with pytest.raises(
        ValueError,
        match=r"unknown model 'vivit_q_st': the zoo has vivit_<size>_<variant> with sizes "
        r"ti, s, b, l, h and variants st, fe, fsa, fdp",
    ):
        convert_scenic(path, tmp_path / "out.pt", "vivit_q_st")


# -- load_checkpoint ---------------------------------------------------------------------------------------------
def test_load_checkpoint_of_a_train_py_checkpoint(tmp_path):
    """A Lightning checkpoint: `net.*` weights among the module's, the run config, and training state."""
    model = tiny("fe", num_classes=4)
    model_cfg = {
        "_target_": "vivit.models.FactorisedEncoderViViT",
        "num_classes": 4,
        "temporal_depth": 2,
        **GEOMETRY,
        "init": None,
    }  # `init` tells how to initialise, not what to build
    checkpoint = {
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "2.6.0",
        "state_dict": {f"net.{k}": v for k, v in model.state_dict().items()},
        "optimizer_states": [{}],
        "hyper_parameters": {"label_smoothing": 0.1},
        "vivit_config": {
            "source": {"model": {**model_cfg, "num_classes": "${data.num_classes}"}, "data": {}},
            "resolved": {"model": model_cfg, "data": {"num_classes": 4}},
        },
    }
    torch.save(checkpoint, tmp_path / "best.ckpt")
    loaded = load_checkpoint(tmp_path / "best.ckpt")
    assert isinstance(loaded, FactorisedEncoderViViT) and not loaded.training
    video = clip()
    with torch.no_grad():
        assert torch.equal(loaded(video), model.eval()(video))

    # Files are read with weights_only=True: an arbitrary pickled object needs trusted=True.
    torch.save({**checkpoint, "hyper_parameters": argparse.Namespace(lr=0.1)}, tmp_path / "pickled.ckpt")
    with pytest.raises(ValueError, match="trusted=True"):
        load_checkpoint(tmp_path / "pickled.ckpt")
    assert isinstance(load_checkpoint(tmp_path / "pickled.ckpt", trusted=True), FactorisedEncoderViViT)

    torch.save({"state_dict": checkpoint["state_dict"]}, tmp_path / "bare.ckpt")
    with pytest.raises(ValueError, match="holds no model config"):
        load_checkpoint(tmp_path / "bare.ckpt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="no backbone weights"):
        read_checkpoint(tmp_path / "other.pt")


def test_converted_file_loads_into_the_lightning_module_as_eval_py_does(tmp_path):
    from vivit.models import build_model
    from vivit.training.module import VideoClassifier

    path = tmp_path / "checkpoint"
    write_msgpack(scenic_tree(tiny("st")), path)
    convert_scenic(path, tmp_path / "vivit.pt", "vivit_s_st", overrides("st"))
    saved = torch.load(tmp_path / "vivit.pt", map_location="cpu", weights_only=True)
    source = saved["vivit_config"]["source"]["model"]
    assert source == saved["vivit_config"]["resolved"]["model"] and source["num_classes"] == 6
    module = VideoClassifier(net=build_model(source), optimizer=None)
    module.load_state_dict(saved["state_dict"])  # what eval.py does


def test_hf_hub_name_converts_from_the_cache_offline(hf_model, tmp_path):
    """`python -m vivit.convert hf org/name OUT` with HF_HUB_OFFLINE=1 reads huggingface_hub's cache layout."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--google--vivit-tiny-test"
    hf_model.save_pretrained(repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}

    def convert(name: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "vivit.convert", "hf", name, str(tmp_path / "out.pt")],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
        )

    result = convert("google/vivit-tiny-test")
    assert result.returncode == 0, result.stderr[-2000:]
    model = load_checkpoint(tmp_path / "out.pt")
    video = clip()
    with torch.no_grad():
        assert (model(video) - hf_logits(hf_model, video)).abs().max() < 1e-4
    result = convert("google/not-in-the-cache")
    assert result.returncode == 1 and "is not in the Hugging Face cache" in result.stderr
    assert "Traceback" not in result.stderr

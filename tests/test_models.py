"""Tests of the ViViT model zoo: geometry, token order, the four variants against reference computations,
stochastic depth, heads, initialisation, errors, compile/autocast and the Hydra model configs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from torch import nn

from vivit.models import (
    INIT_KEYS,
    VARIANTS,
    Attention,
    DropPath,
    FactorisedEncoderViViT,
    FactorisedSelfAttentionViViT,
    TubeletEmbedding,
    UniformFrameEmbedding,
    drop_path,
    drop_path_rates,
    sample_frames_uniformly,
)
from vivit.models import build_model as instantiate  # strips the init keys
from vivit.runtime.config import model_choices

CONF = Path(__file__).resolve().parents[1] / "conf"
# A tiny geometry: 8 frames of 16x16, tubelets 2x4x4 -> 4 x 4 x 4 tokens.
TINY = dict(img_size=16, num_frames=8, tubelet_size=(2, 4, 4), embed_dim=32, depth=2, num_heads=4)


def tiny(variant: str, num_classes=5, **overrides) -> nn.Module:
    kwargs = {**TINY, **overrides}
    if variant == "fe":
        kwargs.setdefault("temporal_depth", 2)
    return VARIANTS[variant].model_class(num_classes, **kwargs)


def randomise_head(model: nn.Module) -> None:
    """The head is zero-initialised (as Scenic), which would make every output 0 and every upstream grad 0."""
    nn.init.normal_(model.head.weight)
    nn.init.normal_(model.head.bias)


def video(batch=2, frames=8, size=16, seed=0) -> torch.Tensor:
    return torch.randn(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


# -- input embedding -------------------------------------------------------------------------------------------


def test_uniform_sampling_indices_follow_scenic():
    # Hand-checked against round(arange(T/(n+1), T, T/(n+1))): 32/9 = 3.56, 7.11, 10.67, ... 28.44.
    assert sample_frames_uniformly(32, 8) == [4, 7, 11, 14, 18, 21, 25, 28]
    # float32 arange as jnp: 1.0833334 + 5 * 1.0833334 = 6.5000005 rounds to 7 (exact 6.5 would give 6).
    assert sample_frames_uniformly(13, 11) == [1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12]
    assert sample_frames_uniformly(8, 2) == [3, 5]  # Scenic's float arange gives a third position (7)
    assert sample_frames_uniformly(4, 4) == sample_frames_uniformly(4, 9) == [0, 1, 2, 3]
    for T in range(1, 65):
        for n in range(1, T + 3):
            idx = sample_frames_uniformly(T, n)
            assert len(idx) == min(n, T)
            assert all(0 <= i < T for i in idx) and idx == sorted(idx)


def test_tubelet_tokens_are_time_major():
    emb = TubeletEmbedding(img_size=12, num_frames=6, tubelet_size=(3, 4, 2), in_chans=1, embed_dim=1)
    nt, nh, nw = emb.grid_size
    assert (nt, nh, nw) == (2, 3, 6) and emb.num_patches == 36
    with torch.no_grad():  # the output is the input value at the tubelet's first (t, y, x) corner
        emb.proj.weight.zero_()
        emb.proj.weight[0, 0, 0, 0, 0] = 1.0
        emb.proj.bias.zero_()
    T, H, W = 6, 12, 12
    ids = torch.arange(T * H * W, dtype=torch.float32).reshape(1, 1, T, H, W)
    tokens = emb(ids)[0, :, 0]
    assert tokens.shape == (36,)
    for k in range(36):
        t, h, w = k // (nh * nw), (k // nw) % nh, k % nw
        assert tokens[k] == ids[0, 0, 3 * t, 4 * h, 2 * w]


def test_uniform_embedding_samples_frames_time_major():
    emb = UniformFrameEmbedding(img_size=8, num_frames=8, tubelet_size=(4, 4, 4), in_chans=1, embed_dim=1)
    assert emb.grid_size == (2, 2, 2) and emb.frame_indices == sample_frames_uniformly(8, 2) == [3, 5]
    assert isinstance(emb.proj, nn.Conv2d) and emb.proj.weight.shape == (1, 1, 4, 4)
    with torch.no_grad():
        emb.proj.weight.zero_()
        emb.proj.weight[0, 0, 0, 0] = 1.0
        emb.proj.bias.zero_()
    ids = torch.arange(8 * 8 * 8, dtype=torch.float32).reshape(1, 1, 8, 8, 8)
    tokens = emb(ids)[0, :, 0]
    expected = [ids[0, 0, f, 4 * h, 4 * w] for f in (3, 5) for h in range(2) for w in range(2)]
    assert tokens.tolist() == [e.item() for e in expected]


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize(
    "embedding,tubelet,nt", [("tubelet", (2, 4, 4), 4), ("tubelet", (4, 8, 8), 2), ("uniform", (2, 4, 4), 4)]
)
def test_shapes_and_token_counts(variant, embedding, tubelet, nt):
    model = tiny(variant, embedding=embedding, tubelet_size=tubelet).eval()
    ns = (16 // tubelet[1]) ** 2
    assert model.patch_embed.grid_size[0] == nt and model.patch_embed.num_patches == nt * ns
    cls = 1 if variant in ("st", "fe") else 0  # token classifier by default for st/fe, gap for fsa/fdp
    if variant == "fe":
        assert model.pos_embed.shape == (1, cls + ns, 32)
        assert model.temporal_pos_embed.shape == (1, cls + nt, 32)
    else:
        assert model.pos_embed.shape == (1, cls + nt * ns, 32)
    x = video()
    assert model.forward_features(x).shape == (2, 32)
    assert model(x).shape == (2, 5)
    assert (model.num_classes, model.num_frames, model.img_size) == (5, 8, 16)


def test_input_shape_mismatch_is_a_clear_error():
    model = tiny("st")
    with pytest.raises(ValueError, match=r"model.num_frames.*got \(2, 3, 4, 16, 16\)"):
        model(video(frames=4))


# -- reference computations ------------------------------------------------------------------------------------


def reference_attention(attn: Attention, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + mask) v per head, written out; `mask` (heads, N, N) is True where allowed."""
    B, N, D = x.shape
    H, hd = attn.num_heads, D // attn.num_heads
    q, k, v = (t.reshape(B, N, H, hd).transpose(1, 2) for t in attn.qkv(x).split(D, dim=-1))
    logits = q @ k.transpose(-1, -2) / math.sqrt(hd)
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    out = logits.softmax(-1) @ v
    return attn.proj(out.transpose(1, 2).reshape(B, N, D))


def reference_block(block: nn.Module, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    x = x + reference_attention(block.attn, block.norm1(x), mask)
    return x + block.mlp(block.norm2(x))


def test_model1_matches_reference_encoder():
    model = tiny("st", classifier="gap").eval()
    randomise_head(model)
    x = video()
    with torch.no_grad():
        z = model.patch_embed(x) + model.pos_embed
        for block in model.blocks:
            z = reference_block(block, z)
        expected = model.head(model.norm(z).mean(1))
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)


def test_model4_matches_masked_attention_reference():
    model = tiny("fdp", num_heads=4).eval()
    randomise_head(model)
    nt, nh, nw = model.patch_embed.grid_size
    ns = nh * nw
    frame = torch.arange(nt * ns) // ns
    where = torch.arange(nt * ns) % ns
    same_place = where[:, None] == where[None, :]  # attention over time at one spatial index
    same_frame = frame[:, None] == frame[None, :]  # attention over space within one frame
    mask = torch.stack([same_place, same_place, same_frame, same_frame])  # first half of the heads: time
    x = video()
    with torch.no_grad():
        z = model.patch_embed(x) + model.pos_embed
        for block in model.blocks:
            z = reference_block(block, z, mask)
        expected = model.head(model.norm(z).mean(1))
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)
        # and it is not plain attention: Model 1 with the same weights differs
        z = model.patch_embed(x) + model.pos_embed
        for block in model.blocks:
            z = reference_block(block, z)
        assert not torch.allclose(model(x), model.head(model.norm(z).mean(1)), atol=1e-3)


def model3_reference(model: FactorisedSelfAttentionViViT, x: torch.Tensor, order: str) -> torch.Tensor:
    """Model 3 with explicit loops over frames and spatial positions (paper Eqs. 4-6)."""
    nt, nh, nw = model.patch_embed.grid_size
    ns = nh * nw
    z = model.patch_embed(x) + model.pos_embed

    def spatial(block, z):
        frames = [z[:, t * ns : (t + 1) * ns] for t in range(nt)]
        return torch.cat([f + block.attn(block.norm1(f)) for f in frames], dim=1)

    def temporal(block, z):
        out = z.clone()
        for s in range(ns):
            idx = torch.arange(nt) * ns + s
            seq = z[:, idx]
            out[:, idx] = seq + block.temporal_attn(block.temporal_norm1(seq))
        return out

    for block in model.blocks:
        z = temporal(block, spatial(block, z)) if order == "space_time" else spatial(block, temporal(block, z))
        z = z + block.mlp(block.norm2(z))
    return model.head(model.norm(z).mean(1))


def test_model3_orders_match_references_and_differ():
    torch.manual_seed(0)
    a = tiny("fsa", attention_order="space_time").eval()
    b = tiny("fsa", attention_order="time_space").eval()
    b.load_state_dict(a.state_dict())  # same weights, only the order differs
    randomise_head(a)
    b.head.load_state_dict(a.head.state_dict())
    x = video()
    with torch.no_grad():
        ya, yb = a(x), b(x)
        torch.testing.assert_close(ya, model3_reference(a, x, "space_time"), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(yb, model3_reference(b, x, "time_space"), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(ya, yb, atol=1e-3)
    names = {n.split(".", 2)[2] for n, _ in a.named_parameters() if n.startswith("blocks.0.")}
    assert {"norm1.weight", "attn.qkv.weight", "temporal_norm1.weight", "temporal_attn.qkv.weight"} <= names
    assert {"norm2.weight", "mlp.fc1.weight"} <= names


@pytest.mark.parametrize("classifier", ["token", "gap"])
def test_model2_matches_per_frame_reference(classifier):
    model = tiny("fe", classifier=classifier).eval()
    randomise_head(model)
    nt = model.patch_embed.grid_size[0]
    x = video()
    token = classifier == "token"

    def encode(z, cls, pos, blocks, norm):
        if token:
            z = torch.cat([cls.expand(z.shape[0], -1, -1), z], dim=1)
        z = z + pos
        for block in blocks:
            z = reference_block(block, z)
        z = norm(z)
        return z[:, 0] if token else z.mean(1)

    with torch.no_grad():
        tokens = model.patch_embed(x).reshape(2, nt, -1, 32)
        frames = [encode(tokens[:, t], model.cls_token, model.pos_embed, model.blocks, model.norm) for t in range(nt)]
        clip = encode(
            torch.stack(frames, 1),
            model.temporal_cls_token,
            model.temporal_pos_embed,
            model.temporal_blocks,
            model.temporal_norm,
        )
        torch.testing.assert_close(model(x), model.head(clip), atol=1e-5, rtol=1e-5)


def test_model2_average_pool_baseline():
    model = tiny("fe", temporal_pooling="mean").eval()
    assert not [n for n, _ in model.named_parameters() if "temporal" in n]
    full = tiny("fe")
    n_temporal = sum(p.numel() for n, p in full.named_parameters() if n.startswith("temporal"))
    assert sum(p.numel() for p in full.parameters()) - sum(p.numel() for p in model.parameters()) == n_temporal
    x = video()
    nt = model.patch_embed.grid_size[0]
    with torch.no_grad():  # mean over time of the per-frame CLS features
        z = model.patch_embed(x).reshape(2 * nt, -1, 32)
        z = torch.cat([model.cls_token.expand(2 * nt, -1, -1), z], 1) + model.pos_embed
        for block in model.blocks:
            z = block(z)
        expected = model.norm(z)[:, 0].reshape(2, nt, 32).mean(1)
        torch.testing.assert_close(model.forward_features(x), expected)


# -- stochastic depth ------------------------------------------------------------------------------------------


def test_drop_path_schedule_per_encoder():
    assert drop_path_rates(0.3, 4) == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert drop_path_rates(0.3, 1) == [0.0]
    model = tiny("fe", depth=3, temporal_depth=5, drop_path_rate=0.2)
    assert [b.drop_path1.p for b in model.blocks] == pytest.approx([0.0, 0.1, 0.2])
    assert [b.drop_path2.p for b in model.temporal_blocks] == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])
    nt = model.patch_embed.grid_size[0]
    assert all(b.drop_path1.group == nt for b in model.blocks)  # one decision per clip in the spatial encoder
    assert all(b.drop_path1.group == 1 for b in model.temporal_blocks)
    st = tiny("st", depth=4, drop_path_rate=0.3, drop_path_mode="timm")
    assert [b.drop_path2.p for b in st.blocks] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert all(b.drop_path1.mode == "timm" for b in st.blocks)


@pytest.mark.parametrize("mode,kept_scale", [("official", 1.0), ("timm", 2.0)])
def test_drop_path_rescaling_and_per_example(mode, kept_scale):
    torch.manual_seed(0)
    dp = DropPath(0.5, mode)
    x = torch.ones(4000, 3, 2)
    y = dp(x)
    per_example = y.reshape(4000, -1)
    assert (per_example == per_example[:, :1]).all()  # one decision for the whole example
    values = set(per_example[:, 0].tolist())
    assert values == {0.0, kept_scale}
    assert 0.45 < (per_example[:, 0] == 0).float().mean() < 0.55
    dp.eval()
    assert torch.equal(dp(x), x)


def test_drop_path_groups_share_decisions():
    torch.manual_seed(0)
    y = drop_path(torch.ones(400 * 4, 5), 0.5, training=True, rescale=False, group=4)
    kept = y[:, 0].reshape(400, 4)
    assert (kept == kept[:, :1]).all() and 0 < kept[:, 0].mean() < 1


def test_stochastic_depth_in_models_train_vs_eval():
    torch.manual_seed(0)
    model = tiny("st", drop_path_rate=0.5)
    randomise_head(model)
    x = video(batch=8)
    model.eval()
    with torch.no_grad():
        ref = model(x)
        assert torch.equal(ref, model(x))  # eval: deterministic
        model.train()
        assert not torch.allclose(model(x), ref)
    with pytest.warns(UserWarning, match="no stochastic depth"):
        fsa = tiny("fsa", drop_path_rate=0.1)
    assert not [m for m in fsa.modules() if isinstance(m, DropPath)]


# -- heads, gradients, init ------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_multi_head_is_one_split_linear(variant):
    model = tiny(variant, num_classes={"noun": 7, "verb": 3}).eval()
    randomise_head(model)
    assert model.head.out_features == 10
    x = video()
    out = model(x)
    assert list(out) == ["noun", "verb"]
    assert out["noun"].shape == (2, 7) and out["verb"].shape == (2, 3)
    logits = model.head(model.forward_features(x))
    torch.testing.assert_close(torch.cat([out["noun"], out["verb"]], -1), logits)


@pytest.mark.parametrize("embedding", ["tubelet", "uniform"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_parameter_gets_a_gradient(variant, embedding):
    torch.manual_seed(0)
    model = tiny(variant, embedding=embedding)
    randomise_head(model)
    model(video()).square().sum().backward()
    D = 32
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        grad = p.grad
        if name.endswith("qkv.bias"):
            # A key bias adds the same q.b to every logit of a softmax row: it legitimately gets no gradient.
            assert grad[D : 2 * D].abs().max() < 1e-4 * grad[2 * D :].abs().max(), name
            grad = torch.cat([grad[:D], grad[2 * D :]])
        assert grad.abs().sum() > 0, name


def test_initialisation_follows_scenic():
    torch.manual_seed(0)
    D = 64
    model = FactorisedEncoderViViT(5, **{**TINY, "embed_dim": D, "num_heads": 4}, pos_embed_std=0.5)
    assert torch.all(model.head.weight == 0) and torch.all(model.head.bias == 0)
    assert torch.all(model.cls_token == 0) and torch.all(model.temporal_cls_token == 0)
    assert model.pos_embed.std().item() == pytest.approx(0.5, rel=0.2)
    attn = model.blocks[0].attn
    bound = math.sqrt(6 / (D + D))  # xavier on each (D, D) slice of the fused qkv
    for w in attn.qkv.weight.chunk(3):
        assert w.abs().max() <= bound and w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
    assert torch.all(attn.qkv.bias == 0) and torch.all(attn.proj.bias == 0)
    mlp = model.blocks[0].mlp
    assert mlp.fc1.weight.abs().max() <= math.sqrt(6 / (D + 4 * D))
    assert 0 < mlp.fc1.bias.abs().max() < 1e-5
    conv = model.patch_embed.proj.weight  # lecun normal: variance 1 / fan_in
    fan_in = conv[0].numel()
    assert conv.std().item() == pytest.approx(math.sqrt(1 / fan_in), rel=0.1)
    assert model.norm.eps == 1e-6 and model.blocks[0].mlp.act.approximate == "tanh"


def test_timm_parameter_names():
    names = set(dict(tiny("st").named_parameters()))
    for key in [
        "patch_embed.proj.weight",
        "cls_token",
        "pos_embed",
        "blocks.1.norm1.weight",
        "blocks.1.attn.qkv.weight",
        "blocks.1.attn.proj.bias",
        "blocks.1.norm2.bias",
        "blocks.1.mlp.fc1.weight",
        "blocks.1.mlp.fc2.weight",
        "norm.weight",
        "head.weight",
    ]:
        assert key in names
    fe = set(dict(tiny("fe").named_parameters()))
    for key in ["temporal_cls_token", "temporal_pos_embed", "temporal_blocks.1.attn.qkv.weight", "temporal_norm.bias"]:
        assert key in fe


# -- errors ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant,overrides,match",
    [
        ("st", dict(img_size=18), r"model\.img_size=18 .*model\.tubelet_size=\[2, 4, 4\]"),
        ("fe", dict(num_frames=7), r"model\.num_frames=7 .*t=2"),
        ("st", dict(tubelet_size=(2, 4)), r"model\.tubelet_size=\[2, 4\] must be three"),
        ("st", dict(tubelet_size=16), r"model\.tubelet_size=\[16\] must be three"),
        ("st", dict(num_frames=0), r"model\.num_frames=0 must be a positive int"),
        ("st", dict(img_size=18, tubelet_size=(2, 4, 6)), r"model\.img_size=18 .*\(e\.g\. 12\)"),
        ("st", dict(num_heads=5), r"model\.embed_dim=32 .*model\.num_heads=5"),
        ("fsa", dict(classifier="token"), r"model\.classifier='token' is not one of 'gap'"),
        ("fdp", dict(classifier="token"), r"model\.classifier='token'"),
        ("fdp", dict(num_heads=2, embed_dim=30), None),  # even heads that divide: fine
        ("fdp", dict(num_heads=1), r"model\.num_heads=1 must be even"),
        ("st", dict(embedding="frames"), r"model\.embedding='frames'"),
        ("st", dict(drop_path_mode="keras"), r"model\.drop_path_mode='keras'"),
        ("st", dict(drop_path_rate=1.0), r"model\.drop_path_rate=1\.0"),
        ("fe", dict(temporal_pooling="max"), r"model\.temporal_pooling='max'"),
        ("fe", dict(temporal_depth=0), r"model\.temporal_depth=0 .*temporal_pooling=mean"),
        ("fsa", dict(attention_order="spacetime"), r"model\.attention_order='spacetime'"),
    ],
)
def test_clear_construction_errors(variant, overrides, match):
    if match is None:
        tiny(variant, **overrides)
        return
    with pytest.raises(ValueError, match=match):
        tiny(variant, **overrides)


@pytest.mark.parametrize("num_classes", [0, -3, "400", {"noun": 0}, {}])
def test_bad_num_classes(num_classes):
    with pytest.raises(ValueError, match="model.num_classes"):
        tiny("st", num_classes=num_classes)


# -- training utilities: checkpointing, compile, autocast ------------------------------------------------------


@pytest.mark.parametrize("variant", ["fe", "fsa"])
def test_grad_checkpointing_gives_same_outputs_and_grads(variant):
    torch.manual_seed(0)
    a = tiny(variant)
    b = tiny(variant, grad_checkpointing=True)
    b.load_state_dict(a.state_dict())
    for m in (a, b):
        randomise_head(m)
    b.head.load_state_dict(a.head.state_dict())
    x = video()
    ya, yb = a(x), b(x)
    torch.testing.assert_close(ya, yb)
    ya.sum().backward()
    yb.sum().backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, msg=name)


def test_torch_compile_and_bf16_autocast():
    """Graph capture with fullgraph=True through dynamo + AOTAutograd (backend aot_eager, ~2 s).

    Inductor code generation takes ~20 s on this CPU, too slow for the unit tests; it is exercised by
    benchmarks and on GPU.
    """
    torch.manual_seed(0)
    model = tiny("fdp").eval()
    randomise_head(model)
    x = video()
    with torch.no_grad():
        ref = model(x)
        torch._dynamo.reset()
        compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
        torch.testing.assert_close(compiled(x), ref)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(out.float(), ref, atol=0.1 * ref.abs().max().item(), rtol=0.05)


# -- Hydra configs ---------------------------------------------------------------------------------------------

MODEL_CONFIGS = model_choices()  # the zoo's names and the files of conf/model/
COMMON_KEYS = {
    "_target_", "img_size", "num_frames", "in_chans", "tubelet_size", "embedding", "embed_dim",
    "depth", "num_heads", "mlp_ratio", "qkv_bias", "classifier", "dropout", "attn_dropout", "drop_path_rate",
    "drop_path_mode", "pos_embed_std", "grad_checkpointing",
}  # fmt: skip
EXTRA_KEYS = {"fe": {"temporal_depth", "temporal_pooling"}, "fsa": {"attention_order"}, "st": set(), "fdp": set()}


def build(cfg, num_classes=400) -> nn.Module:
    """A composed model config built with the number of classes a data module would give it."""
    return instantiate({**OmegaConf.to_container(cfg, resolve=True), "num_classes": num_classes})


def compose_model(name: str, *overrides: str):
    """Compose the model group alone (package `model`): the zoo's configs (vivit.runtime.config) and the files."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(overrides=[f"+model={name}", *overrides])


def test_model_zoo_is_complete():
    expected = {f"vivit_{s}_{v}" for s in ("ti", "s", "b", "l", "h") for v in VARIANTS}
    assert expected | {"vivit_b_fe_avgpool", "vivit_tiny"} <= set(MODEL_CONFIGS)


@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_every_model_config_composes_and_builds(name):
    cfg = compose_model(name).model
    variant = {v.model_class.__name__: k for k, v in VARIANTS.items()}[cfg._target_.rsplit(".", 1)[1]]
    assert set(cfg) - set(INIT_KEYS) == COMMON_KEYS | EXTRA_KEYS[variant], name
    with torch.device("meta"):  # the number of classes comes from the data
        model = build(cfg)
    assert isinstance(model, VARIANTS[variant].model_class) and model.num_classes == 400
    if name.startswith("vivit_") and name != "vivit_tiny":
        size = name.split("_")[1]
        dims = {"ti": (192, 12), "s": (384, 12), "b": (768, 12), "l": (1024, 24), "h": (1280, 32)}[size]
        assert (model.embed_dim, len(model.blocks)) == dims
        assert (model.img_size, model.num_frames) == (224, 32)
        assert model.tubelet_size == ((2, 14, 14) if size == "h" else (2, 16, 16))


# Paper Table 2 (ViViT-B, 16x2 tubelets, 32 frames at 224, Kinetics-400), parameters in millions.
@pytest.mark.parametrize(
    "name,millions",
    [("vivit_b_st", 88.9), ("vivit_b_fe", 115.1), ("vivit_b_fsa", 117.3), ("vivit_b_fdp", 88.9),
     ("vivit_b_fe_avgpool", 86.7)],
)  # fmt: skip
def test_parameter_counts_match_paper_table2(name, millions):
    with torch.device("meta"):
        model = build(compose_model(name).model)
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(millions, abs=0.1)


def test_model_config_overrides():
    cfg = compose_model("vivit_l_fe", "model.temporal_depth=8", "model.drop_path_rate=0.2")
    with torch.device("meta"):
        model = build(cfg.model)
    assert len(model.temporal_blocks) == 8 and len(model.blocks) == 24
    assert model.temporal_blocks[-1].drop_path1.p == pytest.approx(0.2)
    cfg = compose_model("vivit_tiny").model
    assert cfg.pos_embed_std == 0.5 and cfg.tubelet_size == [2, 8, 8]
    model = build(cfg, num_classes=8)
    assert model(video(frames=8, size=32)).shape == (2, 8)
    D = 64
    block = 12 * D * D + 13 * D  # qkv + proj (4D^2 + 4D), two LayerNorms (4D), MLP 4x (8D^2 + 5D)
    spatial = (3 * 2 * 8 * 8 * D + D) + D + (1 + 16) * D + 3 * block + 2 * D  # conv, CLS, pos, blocks, norm
    temporal = D + (1 + 4) * D + 1 * block + 2 * D
    assert sum(p.numel() for p in model.parameters()) == spatial + temporal + (D * 8 + 8) == 226_888
    cfg = compose_model("vivit_s_fsa")  # a mapping from the data config
    with torch.device("meta"):
        model = build(cfg.model, {"noun": 300, "verb": 97})
    assert model.num_classes == {"noun": 300, "verb": 97} and model.head.out_features == 397


def test_model_choice_and_overrides_through_the_train_config(tmp_path):
    from tests.conftest import compose_config  # the real conf/train.yaml, as train.py composes it

    cfg = compose_config("train", ["model=vivit_l_fe", "model.temporal_depth=8"], output_dir=tmp_path)
    assert cfg.data.num_frames == cfg.model.num_frames == 32  # the data follows the model's geometry
    with torch.device("meta"):
        model = build(cfg.model, cfg.data.num_classes)
    assert isinstance(model, FactorisedEncoderViViT) and len(model.temporal_blocks) == 8
    assert model.num_classes == cfg.data.num_classes


def test_an_unknown_model_key_is_one_line_naming_it(tmp_path):
    from tests.conftest import compose_config
    from vivit.models import create_model
    from vivit.runtime.errors import ConfigError
    from vivit.tasks.build import build

    with pytest.raises(
        ValueError, match=r"^model\.foo: FactorisedEncoderViViT takes no argument 'foo'; its arguments: "
    ):
        create_model("vivit_ti_fe", num_classes=3, foo=1)
    cfg = compose_config("train", ["+model.foo=1", "logger=none"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"^model\.foo: FactorisedEncoderViViT takes no argument 'foo'"):
        build(cfg, "fit")

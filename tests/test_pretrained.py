"""Tests of `vivit.weights.pretrained.initialise`: image ViT -> ViViT (paper Sec. 3.4, Scenic's
initialise_from_train_state) and video checkpoint -> ViViT. Image ViTs are tiny timm VisionTransformers saved to
local files and loaded through the same `timm.create_model(..., pretrained=True)` call as hub weights."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn

from vivit.models import (
    VARIANTS,
    FactorisedEncoderViViT,
    FactorisedSelfAttentionViViT,
    SpatioTemporalViViT,
)
from vivit.weights.checkpoint import save_checkpoint
from vivit.weights.pretrained import initialise

# The image ViT: 16x16 images, 4x4 patches (a 4x4 grid), width 32, 2 blocks of 4 heads.
# The ViViTs: 8 frames of 16x16, 2x4x4 tubelets -> 4 time steps x the same 4x4 grid.
TINY = dict(img_size=16, num_frames=8, tubelet_size=(2, 4, 4), embed_dim=32, depth=2, num_heads=4)


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Large random weights everywhere, so that a misplaced tensor shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            p.copy_(1.0 + 0.2 * noise if re.search(r"norm[^.]*\.weight$", name) else 0.3 * noise)
    return model.eval()


def image_vit(class_token: bool = True, seed: int = 0) -> nn.Module:
    """A tiny timm ViT with the tanh GELU of the ViViT models (so that whole forward passes can be compared)."""
    vit = timm.create_model(
        "vit_base_patch16_224",
        pretrained=False,
        img_size=16,
        patch_size=4,
        embed_dim=32,
        depth=2,
        num_heads=4,
        num_classes=7,
        act_layer="gelu_tanh",
        class_token=class_token,
        global_pool="token" if class_token else "avg",
        fc_norm=False,
    )
    return randomise(vit, seed)


def save(vit: nn.Module, path) -> str:
    state = {k: v.contiguous() for k, v in vit.state_dict().items()}
    save_file(state, path) if str(path).endswith(".safetensors") else torch.save(state, path)
    return str(path)


def vivit(variant: str, num_classes: int = 5, seed: int = 1, **overrides) -> nn.Module:
    kwargs = {**TINY, **({"temporal_depth": 2} if variant == "fe" else {}), **overrides}
    return randomise(VARIANTS[variant].model_class(num_classes, **kwargs), seed)


def image(seed: int = 2) -> torch.Tensor:
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def static_clip(img: torch.Tensor, frames: int = 8) -> torch.Tensor:
    """A clip (B, C, T, H, W) whose frames are all `img`."""
    return img.unsqueeze(2).expand(-1, -1, frames, -1, -1).contiguous()


@pytest.fixture(scope="module")
def vit_file(tmp_path_factory):
    vit = image_vit()
    return vit, save(vit, tmp_path_factory.mktemp("vit") / "vit.safetensors")


# -- tubelet and position embeddings --------------------------------------------------------------------------------
@pytest.mark.parametrize("tubelet_init", ["central_frame", "inflate"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_static_clip_tokens_equal_the_image_vit_tokens_at_every_time_step(variant, tubelet_init, vit_file):
    vit, path = vit_file
    model = vivit(variant)
    report = initialise(model, path, tubelet_init=tubelet_init)
    img = image()
    with torch.no_grad():
        expected = vit.patch_embed(img) + vit.pos_embed[:, 1:]  # (B, 16, D): patches + grid position rows
        tokens = model.patch_embed(static_clip(img))  # (B, 4 * 16, D), time-major
        pos = model.pos_embed[:, model.num_prefix_tokens :]
        if variant == "fe":  # one spatial position embedding, added to every frame
            tokens = tokens.reshape(2, 4, 16, 32) + pos.unsqueeze(1)
        else:
            tokens = (tokens + pos).reshape(2, 4, 16, 32)
    for t in range(4):
        torch.testing.assert_close(tokens[:, t], expected, atol=1e-5, rtol=1e-5)

    kernel, weight = vit.patch_embed.proj.weight, model.patch_embed.proj.weight
    if tubelet_init == "central_frame":  # t=2: frame t//2 = 1 holds the 2-D kernel, frame 0 is zero
        assert torch.equal(weight[:, :, 1], kernel) and not weight[:, :, 0].any()
    else:
        torch.testing.assert_close(weight, kernel.unsqueeze(2).expand_as(weight) / 2)
    assert torch.equal(model.patch_embed.proj.bias, vit.patch_embed.proj.bias)
    assert not model.head.weight.any() and not model.head.bias.any()  # never from an image ViT: a zero head
    assert "head.weight" in report.dropped and "head.weight" in report.kept


def test_cls_token_is_copied_for_model_1_and_stays_zero_for_model_2(vit_file):
    vit, path = vit_file
    st, fe = vivit("st"), vivit("fe")
    before = {k: v.clone() for k, v in fe.state_dict().items() if k.startswith("temporal_") or k == "cls_token"}
    initialise(st, path)
    initialise(fe, path)
    assert torch.equal(st.cls_token, vit.cls_token)
    for model in (st, fe):  # the CLS position row is copied when both use a CLS token
        assert torch.equal(model.pos_embed[:, 0], vit.pos_embed[:, 0])
    # Model 2's CLS token keeps its init (Scenic's cls_SpatialTransformer is not the ViT's `cls`), and so does
    # the whole temporal encoder
    for name, value in before.items():
        assert torch.equal(fe.state_dict()[name], value), name
    fresh = FactorisedEncoderViViT(5, temporal_depth=2, **TINY)
    initialise(fresh, path)
    assert not fresh.cls_token.any() and not fresh.temporal_cls_token.any()  # zeros, as a new Scenic model


def test_random_tubelet_keeps_the_model_kernel_and_uniform_copies_the_2d_kernel(vit_file):
    vit, path = vit_file
    model = vivit("st")
    kernel = model.patch_embed.proj.weight.clone()
    report = initialise(model, path, tubelet_init="random")
    assert torch.equal(model.patch_embed.proj.weight, kernel) and "patch_embed.proj.weight" in report.kept
    assert torch.equal(model.patch_embed.proj.bias, vit.patch_embed.proj.bias)

    uniform = vivit("st", embedding="uniform")
    initialise(uniform, path)
    assert torch.equal(uniform.patch_embed.proj.weight, vit.patch_embed.proj.weight)


def test_position_grid_is_resized_as_scenic_and_repeated_over_time_in_time_major_order(vit_file):
    vit, path = vit_file
    model = vivit("st", img_size=28)  # a 7x7 grid from the ViT's 4x4
    initialise(model, path, pos_interpolation="bilinear")
    old = vit.pos_embed[0, 1:].reshape(4, 4, 32)
    new = model.pos_embed[0, 1:].reshape(4, 7, 7, 32)  # (nt, nh, nw, D)
    for t in range(4):  # every time step carries the same grid: rows t*49 .. t*49+48
        assert torch.equal(new[t], new[0])
    grid = new[0]
    # scipy.ndimage.zoom(order=1) aligns the corners: new row 2a is old row a, new row 2a+1 their mean.
    torch.testing.assert_close(grid[::2, ::2], old)
    torch.testing.assert_close(grid[1::2, ::2], (old[:-1] + old[1:]) / 2)
    torch.testing.assert_close(grid[::2, 1::2], (old[:, :-1] + old[:, 1:]) / 2)

    bicubic = vivit("st", img_size=28)
    initialise(bicubic, path, pos_interpolation="bicubic")
    assert bicubic.pos_embed.shape == model.pos_embed.shape
    assert not torch.allclose(bicubic.pos_embed, model.pos_embed)


# -- whole networks on a static clip -----------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["st", "fe", "fsa"])
def test_static_clip_features_equal_the_image_vit_features(variant, tmp_path):
    """With GAP, a clip of identical frames gives exactly the image ViT's features at initialisation.

    Model 1: attending over nt identical copies of each token is attending over the image's tokens. Model 2 with
    mean temporal pooling: every frame is the image. Model 3 (temporal_init=zero): every temporal branch is 0.
    """
    vit = image_vit(class_token=False)
    path = save(vit, tmp_path / "vit.pth")
    extra = {"temporal_pooling": "mean"} if variant == "fe" else {}
    model = vivit(variant, classifier="gap", **extra)
    initialise(model, path)
    img = image()
    with torch.no_grad():
        expected = vit.forward_head(vit.forward_features(img), pre_logits=True)
        features = model.forward_features(static_clip(img))
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-5)
    assert expected.std() > 0.1

    if variant == "fsa":  # copying the spatial attention into the temporal one changes the output
        copied = vivit(variant, classifier="gap")
        initialise(copied, path, temporal_init="copy")
        with torch.no_grad():
            assert (copied.forward_features(static_clip(img)) - expected).abs().max() > 1e-3


def test_model_3_zero_init_makes_the_temporal_branch_exactly_zero_and_trainable(vit_file):
    _, path = vit_file
    model = vivit("fsa")
    initialise(model, path, temporal_init="zero")
    block = model.blocks[1]
    assert torch.equal(block.temporal_attn.proj.weight, torch.zeros(32, 32))
    assert block.temporal_attn.qkv.weight.abs().min() > 0  # q, k, v keep their (non-zero) random init
    x = torch.randn(2, 64, 32, requires_grad=True)
    out = block.temporal(x)
    assert torch.equal(out, x)  # x + temporal attention(LN(x)), whose output is exactly 0
    (out * torch.randn_like(out)).sum().backward()
    assert block.temporal_attn.proj.weight.grad.abs().sum() > 0  # not a dead branch

    # the paper's words (scenic: zero attention kernels, init_temporal_transformer=False): every weight zero,
    # the same identity at the start, but no weight of the branch ever gets a gradient: only the output bias does
    literal = vivit("fsa")
    report = initialise(literal, path, temporal_init="zero_all")
    attn = literal.blocks[1].temporal_attn
    assert all(torch.equal(p, torch.zeros_like(p)) for p in attn.parameters())
    assert report.adapted["blocks.1.temporal_attn.qkv.weight"] == "zero (all weights)"
    out = literal.blocks[1].temporal(x)
    assert torch.equal(out, x)
    (out * torch.randn_like(out)).sum().backward()
    assert torch.equal(attn.qkv.weight.grad, torch.zeros_like(attn.qkv.weight))
    assert torch.equal(attn.proj.weight.grad, torch.zeros_like(attn.proj.weight))
    assert attn.proj.bias.grad.abs().sum() > 0

    copied = vivit("fsa")
    initialise(copied, path, temporal_init="copy")
    for block in copied.blocks:  # Scenic's default: the spatial attention copied, the temporal LN at its init
        for name, value in block.attn.state_dict().items():
            assert torch.equal(block.temporal_attn.state_dict()[name], value)
    fresh = FactorisedSelfAttentionViViT(5, **TINY)
    initialise(fresh, path, temporal_init="copy")
    assert torch.equal(fresh.blocks[0].temporal_norm1.weight, torch.ones(32))
    assert torch.equal(fresh.blocks[0].temporal_norm1.bias, torch.zeros(32))


# -- the other image sources ---------------------------------------------------------------------------------------
def write_vit_npz(vit: nn.Module, path) -> str:
    """The original JAX ViT layout (google-research/vision_transformer, read by timm's _load_weights)."""
    sd = {k: v.detach().numpy() for k, v in vit.state_dict().items()}
    dim, heads, hd = 32, 4, 8

    def ln(w, prefix, name):
        w[f"{prefix}/scale"], w[f"{prefix}/bias"] = sd[f"{name}.weight"], sd[f"{name}.bias"]

    def dense(w, prefix, name):
        w[f"{prefix}/kernel"], w[f"{prefix}/bias"] = sd[f"{name}.weight"].T, sd[f"{name}.bias"]

    w = {
        "embedding/kernel": sd["patch_embed.proj.weight"].transpose(2, 3, 1, 0),  # [h, w, c_in, c_out]
        "embedding/bias": sd["patch_embed.proj.bias"],
        "cls": sd["cls_token"],
        "Transformer/posembed_input/pos_embedding": sd["pos_embed"],
        "pre_logits/kernel": np.eye(dim, dtype=np.float32),
        "pre_logits/bias": np.zeros(dim, np.float32),
    }
    ln(w, "Transformer/encoder_norm", "norm")
    dense(w, "head", "head")
    for i in range(2):
        b, p = f"Transformer/encoderblock_{i}", f"blocks.{i}"
        ln(w, f"{b}/LayerNorm_0", f"{p}.norm1")
        ln(w, f"{b}/LayerNorm_2", f"{p}.norm2")
        qkv_w, qkv_b = sd[f"{p}.attn.qkv.weight"], sd[f"{p}.attn.qkv.bias"]
        for j, name in enumerate(("query", "key", "value")):
            rows = slice(j * dim, (j + 1) * dim)
            w[f"{b}/MultiHeadDotProductAttention_1/{name}/kernel"] = qkv_w[rows].T.reshape(dim, heads, hd)
            w[f"{b}/MultiHeadDotProductAttention_1/{name}/bias"] = qkv_b[rows].reshape(heads, hd)
        w[f"{b}/MultiHeadDotProductAttention_1/out/kernel"] = sd[f"{p}.attn.proj.weight"].T.reshape(heads, hd, dim)
        w[f"{b}/MultiHeadDotProductAttention_1/out/bias"] = sd[f"{p}.attn.proj.bias"]
        dense(w, f"{b}/MlpBlock_3/Dense_0", f"{p}.mlp.fc1")
        dense(w, f"{b}/MlpBlock_3/Dense_1", f"{p}.mlp.fc2")
    np.savez(path, **w)
    return str(path)


def big_vision_npz(vit_npz, path) -> str:
    """The big_vision layout: `params/` prefix, blocks stacked on a leading axis, sub-modules numbered 0/0/1,
    and `pos_embedding` for the patches only (big_vision adds no position to its CLS token)."""
    w = dict(np.load(vit_npz))
    out = {
        f"params/{k}": w[k]
        for k in (
            "embedding/kernel",
            "embedding/bias",
            "cls",
            "head/kernel",
            "head/bias",
            "Transformer/encoder_norm/scale",
            "Transformer/encoder_norm/bias",
        )
    }
    out["params/pos_embedding"] = w["Transformer/posembed_input/pos_embedding"][:, 1:]
    renames = {
        "MultiHeadDotProductAttention_1": "MultiHeadDotProductAttention_0",
        "LayerNorm_2": "LayerNorm_1",
        "MlpBlock_3": "MlpBlock_0",
    }
    for key in (k for k in w if k.startswith("Transformer/encoderblock_0/")):
        tail = key.removeprefix("Transformer/encoderblock_0/")
        for old, new in renames.items():
            tail = tail.replace(old, new)
        layers = [w[key.replace("encoderblock_0/", f"encoderblock_{i}/")] for i in range(2)]
        out[f"params/Transformer/encoderblock/{tail}"] = np.stack(layers)
    np.savez(path, **out)
    return str(path)


def test_jax_npz_and_pytorch_files_give_the_same_initialisation(vit_file, tmp_path):
    vit, path = vit_file
    from_npz, from_pth, from_module = vivit("st"), vivit("st"), vivit("st")
    npz = write_vit_npz(vit, tmp_path / "ViT-tiny.npz")
    initialise(from_npz, npz)
    initialise(from_pth, save(vit, tmp_path / "vit.pth"))
    initialise(from_module, vit)
    for name, value in from_pth.state_dict().items():
        torch.testing.assert_close(from_npz.state_dict()[name], value, atol=1e-6, rtol=0, msg=name)
        assert torch.equal(from_module.state_dict()[name], value), name
    assert torch.equal(from_pth.blocks[1].attn.qkv.weight, vit.blocks[1].attn.qkv.weight)

    from_big_vision = vivit("st")
    initialise(from_big_vision, big_vision_npz(npz, tmp_path / "big_vision.npz"))
    for name, value in from_pth.state_dict().items():
        expected = value.clone()
        if name == "pos_embed":
            expected[:, 0] = 0  # its CLS token has no position: a zero row keeps the token as the ViT sees it
        torch.testing.assert_close(from_big_vision.state_dict()[name], expected, atol=1e-6, rtol=0, msg=name)


def test_timm_name_with_a_local_weights_file(tmp_path):
    """The hub path, offline: the named architecture, its weights from a file via pretrained_cfg_overlay."""
    vit = randomise(timm.create_model("vit_tiny_patch16_224", pretrained=False))  # 192 wide, 12 blocks, 3 heads
    weights = save(vit, tmp_path / "vit_tiny.safetensors")
    model = SpatioTemporalViViT(
        5, img_size=32, num_frames=2, tubelet_size=(2, 16, 16), embed_dim=192, depth=12, num_heads=3
    )
    report = initialise(model, "vit_tiny_patch16_224.augreg_in21k", weights=weights)
    assert "with weights" in report.source
    assert torch.equal(model.blocks[11].mlp.fc2.weight, vit.blocks[11].mlp.fc2.weight)
    old = vit.pos_embed[0, 1:].reshape(14, 14, 192)
    new = model.pos_embed[0, 1:].reshape(2, 2, 192)  # 14x14 -> 2x2 with aligned corners: the four corners
    torch.testing.assert_close(new, old[::13, ::13])


def test_hugging_face_vit_state_dict(tmp_path):
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=16, patch_size=4
    )
    hf = randomise(ViTModel(config))  # with its pooler, which ViViT does not use
    state = {k: v.contiguous() for k, v in hf.state_dict().items()}
    save_file(state, tmp_path / "model.safetensors")
    model = vivit("st")
    initialise(model, tmp_path / "model.safetensors")
    layer = hf.layers[1] if hasattr(hf, "layers") else hf.encoder.layer[1]
    attention = layer.attention
    q = getattr(attention, "q_proj", None) or attention.attention.query
    assert torch.equal(model.blocks[1].attn.qkv.weight[:32], q.weight)
    assert torch.equal(model.cls_token, hf.embeddings.cls_token)
    assert torch.equal(model.norm.weight, hf.layernorm.weight)


# -- video checkpoints ---------------------------------------------------------------------------------------------
def video_checkpoint(model: nn.Module, path, **config) -> str:
    """A train.py-style checkpoint: `net.*` weights and the run's resolved model config."""
    cfg = {
        "_target_": f"vivit.models.{type(model).__name__}",
        "num_classes": model.num_classes,
        **TINY,
        "classifier": model.classifier,
        **config,
    }
    checkpoint = {
        "state_dict": {f"net.{k}": v for k, v in model.state_dict().items()},
        "vivit_config": {"source": {"model": cfg}, "resolved": {"model": cfg}},
        "epoch": 30,
    }
    torch.save(checkpoint, path)
    return str(path)


def test_kinetics_initialisation_of_model_2_resizes_time_and_replaces_the_head(tmp_path):
    source = vivit("fe", num_classes=5)  # K400-like: 4 time steps
    path = video_checkpoint(source, tmp_path / "k400.ckpt", temporal_depth=2)
    model = vivit("fe", num_classes=7, num_frames=16, seed=3)  # EPIC-like: 8 time steps, other classes
    report = initialise(model, path)
    for name, value in source.state_dict().items():
        if not name.startswith(("head.", "temporal_pos_embed")):
            assert torch.equal(model.state_dict()[name], value), name
    assert not model.head.weight.any() and not model.head.bias.any() and model.head.weight.shape[0] == 7
    old, new = source.temporal_pos_embed[0], model.temporal_pos_embed[0]
    assert torch.equal(new[0], old[0])  # CLS row
    for j in range(8):  # linear over time with aligned ends: target step j sits at source step j * 3 / 7
        x = j * 3 / 7
        lo = min(int(math.floor(x)), 2)
        expected = (1 - (x - lo)) * old[1 + lo] + (x - lo) * old[2 + lo]
        torch.testing.assert_close(new[1 + j], expected)
    assert "temporal_pos_embed" in report.adapted


def test_model_1_checkpoint_on_a_larger_grid_and_head_loading(tmp_path):
    source = vivit("st", num_classes=5)
    path = video_checkpoint(source, tmp_path / "run.ckpt")
    model = vivit("st", num_classes=5, img_size=28, num_frames=16, seed=3)  # 8 x 7 x 7 tokens from 4 x 4 x 4
    initialise(model, path)
    old = source.pos_embed[0, 1:].reshape(4, 4, 4, 32)
    new = model.pos_embed[0, 1:].reshape(8, 7, 7, 32)
    assert torch.equal(new[0, 0, 0], old[0, 0, 0]) and torch.equal(model.pos_embed[0, 0], source.pos_embed[0, 0])
    torch.testing.assert_close(new[-1, -1, -1], old[-1, -1, -1])
    torch.testing.assert_close(new[0, 2, 0], old[0, 1, 0])

    same = vivit("st", num_classes=5, seed=4)  # a converted .pt works the same; the head is kept on request
    converted = tmp_path / "converted.pt"
    save_checkpoint(converted, source.state_dict(), {"classifier": "token"}, {**TINY, "classifier": "token"})
    initialise(same, converted, load_head=True)
    for name, value in source.state_dict().items():
        assert torch.equal(same.state_dict()[name], value), name
    with pytest.raises(ValueError, match=r"head\.weight: model \(9, 32\), source \(5, 32\)"):
        initialise(vivit("st", num_classes=9), path, load_head=True)


# -- errors -------------------------------------------------------------------------------------------
def test_mismatches_are_reported_by_name(vit_file, tmp_path):
    vit, path = vit_file
    with pytest.raises(ValueError) as error:
        initialise(vivit("st", depth=3), path)
    assert "missing from the source: blocks.2.attn.proj.bias" in str(error.value)
    with pytest.raises(ValueError) as error:
        initialise(vivit("fdp", tubelet_size=(2, 8, 8)), path)
    assert "patch_embed.proj.weight: model (32, 3, 2, 8, 8), source (32, 3, 2, 4, 4)" in str(error.value)
    npz = write_vit_npz(vit, tmp_path / "vit.npz")
    with pytest.raises(ValueError, match="has 4 attention heads, the model 8"):
        initialise(vivit("st", num_heads=8), npz)
    with pytest.raises(ValueError, match="neither an existing file nor a timm model name"):
        initialise(vivit("st"), "no_such_vit_model")
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        initialise(vivit("st"), tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="tubelet_init='centre'"):
        initialise(vivit("st"), path, tubelet_init="centre")

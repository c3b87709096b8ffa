"""Hugging Face ViViT (and ViT) checkpoints: their files, their parameter names, and the geometry of their config.

`VivitForVideoClassification` is the paper's Model 1 with timm-like blocks under other names, in the layout of
transformers < 5.9 (`encoder.layer.N.attention.attention.query`) or >= 5.9 (`layers.N.attention.q_proj`);
`rename_hf` maps both to this project's names (q, k and v fused into `qkv`). vivit.weights.convert uses it for
video checkpoints, vivit.weights.pretrained for image ViTs saved by transformers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import snapshot_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

from .checkpoint import read_state_dict

Origins = dict[str, list[tuple[str, tuple[int, ...]]]]  # our parameter -> [(source name, source shape)]

_LAYER = r"^(?:encoder\.layer|layers)\.(\d+)\."
HF_RULES = [  # (old or new Hugging Face name, timm-style name); q/k/v are fused afterwards
    (r"^embeddings\.cls_token$", "cls_token"),
    (r"^embeddings\.position_embeddings$", "pos_embed"),
    (r"^embeddings\.patch_embeddings\.projection\.(weight|bias)$", r"patch_embed.proj.\1"),
    (_LAYER + r"layernorm_before\.(weight|bias)$", r"blocks.\1.norm1.\2"),
    (_LAYER + r"attention\.(?:attention\.query|q_proj)\.(weight|bias)$", r"blocks.\1.attn.q.\2"),
    (_LAYER + r"attention\.(?:attention\.key|k_proj)\.(weight|bias)$", r"blocks.\1.attn.k.\2"),
    (_LAYER + r"attention\.(?:attention\.value|v_proj)\.(weight|bias)$", r"blocks.\1.attn.v.\2"),
    (_LAYER + r"attention\.(?:output\.dense|o_proj)\.(weight|bias)$", r"blocks.\1.attn.proj.\2"),
    (_LAYER + r"layernorm_after\.(weight|bias)$", r"blocks.\1.norm2.\2"),
    (_LAYER + r"(?:intermediate\.dense|mlp\.fc1)\.(weight|bias)$", r"blocks.\1.mlp.fc1.\2"),
    (_LAYER + r"(?:output\.dense|mlp\.fc2)\.(weight|bias)$", r"blocks.\1.mlp.fc2.\2"),
    (r"^layernorm\.(weight|bias)$", r"norm.\1"),
    (r"^classifier\.(weight|bias)$", r"head.\1"),
]
HF_UNUSED = r"^pooler\."  # VivitModel's pooler: not part of the classification model
TANH_GELUS = ("gelu_fast", "gelu_new", "gelu_pytorch_tanh")  # all 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))


def rename_hf(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str], Origins]:
    """Hugging Face ViViT (or ViT) names -> ours: (renamed state, dropped names, origins).

    Names no rule knows are kept as they are, so the strict load that follows reports them.
    """
    renamed: dict[str, torch.Tensor] = {}
    origins: Origins = {}
    dropped = []
    for key, value in state.items():
        name = re.sub(r"^(vivit|vit)\.", "", key)
        if re.match(HF_UNUSED, name):
            dropped.append(key)
            continue
        for pattern, replacement in HF_RULES:
            if re.match(pattern, name):
                name = re.sub(pattern, replacement, name)
                break
        renamed[name] = value
        origins[name] = [(key, tuple(value.shape))]
    # HF keeps query, key and value as three Linear layers; ours is one `qkv` with rows [q; k; v].
    for name in [n for n in renamed if re.search(r"\.attn\.q\.(weight|bias)$", n)]:
        parts = [name.replace(".attn.q.", f".attn.{x}.") for x in "qkv"]
        if all(p in renamed for p in parts):
            fused = name.replace(".attn.q.", ".attn.qkv.")
            renamed[fused] = torch.cat([renamed.pop(p) for p in parts])
            origins[fused] = [o for p in parts for o in origins.pop(p)]
    return renamed, dropped, origins


def read_hf(src: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Weights and config.json (None if there is none) of a Hugging Face directory or weights file."""
    src = Path(src)
    if src.is_dir():
        candidates = [
            "model.safetensors",
            "model.safetensors.index.json",
            "pytorch_model.bin",
            "pytorch_model.bin.index.json",
        ]
        files = [src / c for c in candidates if (src / c).is_file()]
        if not files:
            raise FileNotFoundError(f"'{src}' has none of {candidates}: not a Hugging Face model directory.")
        weights, config_file = files[0], src / "config.json"
    elif src.is_file():
        weights, config_file = src, src.parent / "config.json"
    else:
        raise FileNotFoundError(f"No Hugging Face model at '{src}' (expected a directory or a weights file).")
    if weights.name.endswith(".index.json"):  # sharded: load every shard
        shards = sorted(set(json.loads(weights.read_text())["weight_map"].values()))
        state = {k: v for shard in shards for k, v in read_state_dict(weights.parent / shard).items()}
    else:
        state = read_state_dict(weights)
    config = json.loads(config_file.read_text()) if config_file.is_file() else None
    return state, config


def hf_overrides(config: Mapping[str, Any], where: str) -> list[str]:
    """Model-config overrides (Hydra syntax) that give our Model 1 the geometry of a Hugging Face ViViT."""
    act = config.get("hidden_act", "gelu_fast")
    if act not in TANH_GELUS:
        raise ValueError(
            f"{where}: hidden_act={act!r}; the ViViT models use the tanh GELU of Flax "
            f"({', '.join(TANH_GELUS)}), so the converted model would not give the same outputs."
        )
    eps = config.get("layer_norm_eps", 1e-6)
    if eps != 1e-6:
        raise ValueError(
            f"{where}: layer_norm_eps={eps}; the ViViT models use Flax's 1e-6, so the converted model "
            "would not give the same outputs."
        )
    size = config.get("image_size", 224)
    if isinstance(size, Sequence):
        if len(set(size)) != 1:
            raise ValueError(f"{where}: image_size={list(size)} is not square; the ViViT models take square crops.")
        size = size[0]
    hidden = config.get("hidden_size", 768)
    overrides = {
        "img_size": size,
        "num_frames": config.get("num_frames", 32),
        "tubelet_size": list(config.get("tubelet_size", [2, 16, 16])),
        "in_chans": config.get("num_channels", 3),
        "embed_dim": hidden,
        "depth": config.get("num_hidden_layers", 12),
        "num_heads": config.get("num_attention_heads", 12),
        "mlp_ratio": config.get("intermediate_size", 3072) / hidden,
        "qkv_bias": config.get("qkv_bias", True),
        "classifier": "token",
        "dropout": config.get("hidden_dropout_prob", 0.0),
        "attn_dropout": config.get("attention_probs_dropout_prob", 0.0),
    }
    labels = config.get("id2label") or {}
    if labels or "num_labels" in config:
        overrides["num_classes"] = len(labels) or config["num_labels"]
    return [f"{k}={json.dumps(v)}" for k, v in overrides.items()]


HUB_NAME = re.compile(r"^[\w.-]+/[\w.-]+$")  # org/name, e.g. google/vivit-b-16x2-kinetics400
HUB_FILES = ["config.json", "*.safetensors", "*.safetensors.index.json", "pytorch_model.bin*"]


def hub_snapshot(src: str | Path) -> Path:
    """A local path as it is; a hub name (org/name, not an existing path) as its snapshot folder.

    huggingface_hub downloads the files when online and reads its cache (HF_HUB_CACHE) when offline
    (HF_HUB_OFFLINE=1), so a model downloaded once converts without network.
    """
    if Path(src).exists() or not HUB_NAME.match(str(src)):
        return Path(src)
    try:
        return Path(snapshot_download(str(src), allow_patterns=HUB_FILES))
    except LocalEntryNotFoundError as error:
        raise FileNotFoundError(
            f"'{src}' is not a local folder and is not in the Hugging Face cache, and the hub "
            "cannot be reached (offline, or HF_HUB_OFFLINE=1): download it once online, or "
            "pass the model's folder."
        ) from error
    except HfHubHTTPError as error:
        raise FileNotFoundError(
            f"'{src}': the Hugging Face hub answered {error}; check the model name "
            "(e.g. google/vivit-b-16x2-kinetics400) or your token (`hf auth login`)."
        ) from error


def hf_classes(config: Mapping[str, Any], where: str) -> list[str] | None:
    """config.json's `id2label` as a list in label order (None when it has none)."""
    labels = config.get("id2label")
    if not labels:
        return None
    ids = sorted(int(i) for i in labels)
    if ids != list(range(len(ids))):
        raise ValueError(f"{where}: id2label keys must be 0..{len(ids) - 1} without gaps, got {ids[:5]}...")
    return [labels[str(i)] if str(i) in labels else labels[i] for i in ids]

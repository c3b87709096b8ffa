"""`python -m vivit.export`: torch.export and ONNX programs of a checkpoint give the eager logits, any batch."""

from __future__ import annotations

import pytest
import torch

from vivit.export import main
from vivit.models import build_model
from vivit.weights.checkpoint import save_checkpoint
from vivit.weights.export import example_clip, onnx_outputs

MODEL = {
    "_target_": "vivit.models.FactorisedEncoderViViT",
    "num_classes": 5,
    "img_size": 16,
    "num_frames": 8,
    "tubelet_size": [2, 4, 4],
    "embed_dim": 32,
    "depth": 1,
    "temporal_depth": 1,
    "num_heads": 4,
    "mlp_ratio": 2.0,
}


@pytest.mark.parametrize("heads", [{"verb": 3, "noun": 4}])  # a dict of heads: the general case
def test_exports_match_eager_with_a_dynamic_batch(heads, tmp_path, capsys):
    torch.manual_seed(0)
    cfg = {**MODEL, "num_classes": heads}
    model = build_model(cfg).eval()
    for p in model.parameters():  # random weights everywhere (the head starts at zero)
        torch.nn.init.normal_(p, std=0.2)
    save_checkpoint(tmp_path / "model.pt", model.state_dict(), cfg, cfg)
    main([str(tmp_path / "model.pt"), str(tmp_path / "model.pt2"), "--onnx", str(tmp_path / "model.onnx")])
    assert capsys.readouterr().out.count("max |logit difference| from eager") == 2

    clip = example_clip(model, batch=4, seed=3)  # neither the traced batch (2) nor the checked one (3)
    with torch.no_grad():
        eager = model(clip)
    eager = list(eager.values()) if isinstance(eager, dict) else [eager]
    assert eager[0].std() > 0.1
    program = torch.export.load(str(tmp_path / "model.pt2")).module()
    exported = program(clip)
    exported = list(exported.values()) if isinstance(exported, dict) else [exported]
    for e, x, o in zip(eager, exported, onnx_outputs(tmp_path / "model.onnx", clip)):
        assert x.shape == o.shape == e.shape and e.shape[0] == 4
        assert (x - e).abs().max() < 1e-5 and (o - e).abs().max() < 1e-4


def test_onnx_without_its_packages_is_one_line_naming_the_requirements_file(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(SystemExit, match=r"--onnx needs onnxscript: pip install -r requirements-export.txt"):
        main([str(tmp_path / "absent.pt"), str(tmp_path / "m.pt2"), "--onnx", str(tmp_path / "m.onnx")])

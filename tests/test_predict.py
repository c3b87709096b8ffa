"""predict.py / vivit.predict: top-k class names per video, from a train.py checkpoint and a converted one."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
import torch

import vivit
from tests.conftest import ROOT, compose_config
from tests.fixtures.videos import write_video
from vivit.tasks.evaluate import evaluate
from vivit.tasks.predict import native_bf16


@pytest.fixture(scope="module")
def checkpoint(logged_run):
    """A real train.py checkpoint: one epoch on the small synthetic set (the session's shared run)."""
    return logged_run[1]["checkpoint"]


def test_predict_gives_the_probabilities_of_eval_with_the_checkpoint_names(checkpoint, tmp_path):
    """The same views of the same test videos: predict's probabilities are the softmax of eval's logits."""
    from vivit.datamodules.synthetic import CLASSES

    overrides = [f"ckpt_path={checkpoint}", "eval.save_predictions=true", "eval.views=2x1"]
    result = evaluate(compose_config("eval", [*overrides, "trainer.accelerator=cpu"], output_dir=tmp_path), overrides)
    saved = torch.load(result["predictions"])
    ids, logits = saved["ids"][:5], saved["logits"][""][:5]
    data = torch.load(checkpoint, weights_only=False)["vivit_config"]["resolved"]["data"]
    from tests.test_train import hydra_index

    path_of = {r.id: str(r.path) for r in hydra_index(data).records("test")}
    # fp32 like eval: on a CPU with native bf16 (this one has avx512_bf16) "auto" would pick bf16 autocast
    answers = vivit.predict(checkpoint, [path_of[i] for i in ids], topk=3, views="2x1", batch_size=2, precision="32")
    assert [a["video"] for a in answers] == [path_of[i] for i in ids]
    for answer, row in zip(answers, logits):
        expected = row.softmax(-1).topk(3)
        assert [e["label"] for e in answer["top"]] == [CLASSES[i] for i in expected.indices]
        assert [e["prob"] for e in answer["top"]] == pytest.approx(expected.values.tolist(), abs=1e-7)


def test_cli_on_a_folder_with_an_unreadable_file_writes_json_and_csv(checkpoint, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(3):
        write_video(videos / f"clip{i}.mp4", num_frames=20, height=32, width=32)
    (videos / "broken.mp4").write_bytes(b"not a video")
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "predict.py"),
            f"ckpt_path={checkpoint}",
            f"inputs={videos}",
            "topk=2",
            f"hydra.run.dir={out}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    answers = json.loads((out / "predictions.json").read_text())
    assert [a["video"].rsplit("/", 1)[1] for a in answers] == ["clip0.mp4", "clip1.mp4", "clip2.mp4"]
    assert all(len(a["top"]) == 2 and a["top"][0]["prob"] >= a["top"][1]["prob"] for a in answers)
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == 6 and rows[0]["label"] == answers[0]["top"][0]["label"]
    output = result.stdout + result.stderr
    assert "skipped" in output and "broken.mp4: it could not be decoded" in output
    assert "skipped 1 unreadable video" in output


def test_cli_names_missing_inputs_in_one_line(checkpoint, tmp_path, monkeypatch):
    """predict.py's own main, in this process (a second interpreter start saved): it exits with the message."""
    import runpy

    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "predict.py",
            f"ckpt_path={checkpoint}",
            f"inputs={tmp_path / 'nothing'}",
            f"hydra.run.dir={tmp_path / 'out'}",
        ],
    )
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(ROOT / "predict.py"), run_name="__main__")
    assert str(stopped.value).startswith("error: inputs: no video, folder or list at")  # printed, no traceback


def test_predict_from_a_converted_hf_checkpoint_uses_id2label(tmp_path):
    from transformers import VivitConfig, VivitForVideoClassification

    from vivit.convert import main

    labels = {i: f"action {i}" for i in range(5)}
    config = VivitConfig(
        image_size=16,
        num_frames=8,
        tubelet_size=[2, 4, 4],
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=5,
        id2label=labels,
    )
    torch.manual_seed(0)
    hf = VivitForVideoClassification._from_config(config, attn_implementation="eager")
    torch.nn.init.normal_(hf.classifier.weight, std=1.0)
    hf.save_pretrained(tmp_path / "hf")
    main(["hf", str(tmp_path / "hf"), str(tmp_path / "converted.pt")])
    video = write_video(tmp_path / "a.mp4", num_frames=24, height=20, width=28)
    (tmp_path / "list.txt").write_text("a.mp4\n")
    [answer] = vivit.predict(tmp_path / "converted.pt", tmp_path / "list.txt", topk=5)
    assert answer["video"] == str(video)
    assert sorted(e["label"] for e in answer["top"]) == [f"action {i}" for i in range(5)]
    assert sum(e["prob"] for e in answer["top"]) == pytest.approx(1.0, abs=1e-4)  # all 5 classes
    assert answer["top"][0]["prob"] > 0.2  # random normal weights: not a uniform answer


def test_native_bf16_is_read_from_the_cpu_flags():
    assert native_bf16("processor: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_tile\n")
    assert native_bf16("flags : fpu amx_bf16 amx_tile\n")
    assert not native_bf16("flags : fpu sse avx2 avx512f avx512_vnni\nbugs : avx512_bf16\n")


def test_auto_precision_uses_bf16_autocast_only_on_a_cpu_with_native_bf16(monkeypatch):
    from vivit.tasks import predict as inference

    cpu = torch.device("cpu")
    monkeypatch.setattr(inference, "native_bf16", lambda cpuinfo=None: True)
    assert inference.autocast_dtype("auto", cpu) == torch.bfloat16
    assert inference.autocast_dtype("32", cpu) is None  # asked for fp32: fp32
    monkeypatch.setattr(inference, "native_bf16", lambda cpuinfo=None: False)
    assert inference.autocast_dtype("auto", cpu) is None  # emulated bf16 would be slower than fp32
    assert inference.autocast_dtype("bf16", cpu) == torch.bfloat16  # asked for: given
    with pytest.raises(ValueError, match="precision='fp16' is not one of 'auto', '32', 'bf16'"):
        inference.autocast_dtype("fp16", cpu)

"""Between the jobs of an in-process sweep the process is as it was; TF32 as the config asks (issue 18, item 8)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT
from vivit.runtime.process import apply_tf32, tf32_wanted


def test_the_second_job_of_a_sweep_finds_the_process_as_the_first_found_it(tmp_path):
    env = {**os.environ, "PROBE_DIR": str(tmp_path), "PROBE_REMOVED": "kept", "PYTHONPATH": str(ROOT)}
    env.pop("OMP_NUM_THREADS", None)
    env.pop("MASTER_PORT", None)
    command = [sys.executable, str(ROOT / "tests" / "sweep_job_probe.py"), "-m", "seed=0,1", "logger=none"]
    result = subprocess.run(
        [*command, f"hydra.sweep.dir={tmp_path}/sweep"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads((tmp_path / "found.json").read_text())
    assert found["env"] == {"OMP_NUM_THREADS": None, "MASTER_PORT": None, "PROBE_ADDED": None, "PROBE_REMOVED": "kept"}
    before = int((tmp_path / "threads_before").read_text())
    assert found["threads"] == before and found["matmul"] == "highest"
    assert found["process_group"] is False


@pytest.mark.parametrize(
    ("setting", "precision", "wanted"),
    [(None, "bf16-mixed", True), (None, "32-true", False), (False, "bf16-mixed", False), (True, "32-true", True)],
)
def test_tf32_follows_the_key_and_bf16_by_default(setting, precision, wanted):
    assert tf32_wanted(setting, precision) is wanted


def test_tf32_is_set_on_ampere_only_and_recorded(monkeypatch):
    assert (
        apply_tf32(None, "bf16-mixed")
        == {"requested": None, "precision": "bf16-mixed", "enabled": False, "why": "no CUDA GPU"}
        or torch.cuda.is_available()
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda: (7, 0))  # V100
    assert apply_tf32(True, "32-true")["enabled"] is False and torch.get_float32_matmul_precision() == "highest"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda: (9, 0))  # H100
    try:
        record = apply_tf32(None, "bf16-mixed")
        assert record["enabled"] and torch.get_float32_matmul_precision() == "high" and torch.backends.cudnn.allow_tf32
        assert not apply_tf32(False, "bf16-mixed")["enabled"] and torch.get_float32_matmul_precision() == "highest"
        assert not torch.backends.cudnn.allow_tf32
    finally:
        torch.set_float32_matmul_precision("highest")
        torch.backends.cudnn.allow_tf32 = True

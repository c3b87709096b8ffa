"""The process a job runs in: TF32 matmuls as the config asks, and the process left as found for the next job.

A sweep on Hydra's basic launcher runs its jobs one after the other in one process, so whatever a job changes in
the process is the next job's starting point: the environment (Lightning sets OMP_NUM_THREADS for DDP, the DDP
variables, anything a callback sets), torch's thread count and float32 matmul precision, the job's objects still
in memory (its model, its CUDA cache). `fresh_process()` around a job puts all of it back.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

AMPERE = 8  # CUDA compute capability from which matmuls and convolutions have TF32 tensor cores


def tf32_wanted(setting: bool | None, precision: Any) -> bool:
    """`tf32: true|false`, or for null: on for bf16 precision (its matmuls are bf16 already; TF32 then only
    speeds up what runs in float32, as scenic's default on TPUs and JAX's on GPUs), off otherwise."""
    return str(precision).startswith("bf16") if setting is None else bool(setting)


def apply_tf32(setting: bool | None, precision: Any) -> dict[str, Any]:
    """Set TF32 for float32 matmuls and cuDNN convolutions on an Ampere+ GPU; what was set, for the run's record."""
    wanted = tf32_wanted(setting, precision)
    record: dict[str, Any] = {"requested": setting, "precision": str(precision)}
    if not torch.cuda.is_available():
        return {**record, "enabled": False, "why": "no CUDA GPU"}
    capability = torch.cuda.get_device_capability()
    if capability[0] < AMPERE:
        return {**record, "enabled": False, "why": f"GPU capability {capability[0]}.{capability[1]} < 8.0 (no TF32)"}
    # the legacy switches only: torch refuses to report a precision set through both its APIs (Lightning asks)
    torch.set_float32_matmul_precision("high" if wanted else "highest")
    torch.backends.cudnn.allow_tf32 = wanted
    why = "tf32=" + ("null and bf16 precision" if setting is None and wanted else str(setting).lower())
    return {**record, "enabled": wanted, "why": why}


@contextmanager
def fresh_process() -> Iterator[None]:
    """Around one job: afterwards the environment, torch's threads and float32 precision are as before it, and
    the job's memory is freed (its objects collected, the CUDA cache emptied)."""
    environ = dict(os.environ)
    threads, matmul = torch.get_num_threads(), torch.get_float32_matmul_precision()
    cudnn_tf32 = torch.backends.cudnn.allow_tf32
    try:
        yield
    finally:
        restore_environment(environ)
        torch.set_num_threads(threads)
        torch.set_float32_matmul_precision(matmul)
        torch.backends.cudnn.allow_tf32 = cudnn_tf32
        gc.collect()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()


def restore_environment(saved: dict[str, str]) -> None:
    """`os.environ` as `saved`: what was added removed, what was changed or removed put back."""
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value

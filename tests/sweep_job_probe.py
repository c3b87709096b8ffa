"""A two-job in-process sweep through the real entry point (`run_command`, `hydra_job`) whose first job changes
the process as a DDP job does; the second job writes what it found to $PROBE_DIR/found.json
(tests/test_process.py). Usage: python tests/sweep_job_probe.py -m seed=0,1 hydra.sweep.dir=..."""

import json
import os

import torch
import torch.distributed as dist
from hydra.core.hydra_config import HydraConfig

from vivit.tasks.command import hydra_job, run_command

KEYS = ("OMP_NUM_THREADS", "MASTER_PORT", "PROBE_ADDED", "PROBE_REMOVED")


def probe(cfg):
    folder = os.environ["PROBE_DIR"]
    if HydraConfig.get().job.num == 0:  # what a DDP job leaves behind
        with open(f"{folder}/threads_before", "w") as f:
            f.write(str(torch.get_num_threads()))
        os.environ.update(OMP_NUM_THREADS="1", MASTER_PORT="29999", PROBE_ADDED="1")
        del os.environ["PROBE_REMOVED"]
        torch.set_num_threads(torch.get_num_threads() + 1)
        torch.set_float32_matmul_precision("medium")
        dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=0, world_size=1)
        return
    found = {
        "env": {key: os.environ.get(key) for key in KEYS},
        "threads": torch.get_num_threads(),
        "matmul": torch.get_float32_matmul_precision(),
        "process_group": dist.is_initialized(),
    }
    with open(f"{folder}/found.json", "w") as f:
        json.dump(found, f)


if __name__ == "__main__":
    run_command("train", hydra_job(probe))

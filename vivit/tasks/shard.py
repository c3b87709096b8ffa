"""`python -m vivit.tasks.shard data=<release> data.root=/path shards.out=/path/shards`: a release as shards.

Any data config (k400 ... mit, folder, synthetic) is indexed as for training (`data.fps`, the split files), and
every split is written as WebDataset shards with a manifest (vivit.datamodules.shard_writer): parallel over
`shards.workers` processes, resumable (run it again after a kill: finished shards are kept), with a progress bar
and a summary of the unreadable videos it skipped. On a cluster the same command is a SLURM array, one job per
part (`hydra/launcher=slurm_cpu`, docs/data.md):

    python -m vivit.tasks.shard -m hydra/launcher=slurm_cpu data=k400 data.root=/data/k400 model=vivit_b_fe \\
        shards.out=/data/k400-shards shards.parts=16 'shards.part=range(16)'

Train from them with `data.format=shards data.root=/data/k400-shards` (or an s3:// URL after uploading them).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from vivit.datamodules.shard_writer import write_shards
from vivit.runtime.errors import ConfigError, reported_as

from .build import instantiate
from .command import hydra_job, run_command

log = logging.getLogger(__name__)
LAUNCHER = "slurm_cpu"  # conf/hydra/launcher/slurm_cpu.yaml: one CPU job per part


def shard(cfg: DictConfig) -> dict[str, Any]:
    """Write (or finish) the shards of `cfg.data` into `cfg.shards.out`; returns the writer's summary."""
    if OmegaConf.is_missing(cfg.shards, "out"):
        raise ConfigError(
            "shards.out: missing. Usage: python -m vivit.tasks.shard data=k400 data.root=... shards.out=DIR"
        )
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.runtime.choices.get("hydra/launcher") == LAUNCHER and hydra_cfg.mode != RunMode.MULTIRUN:
            raise ConfigError(f"hydra/launcher={LAUNCHER} submits sweeps only: add -m, e.g. 'shards.part=range(16)'")
    datamodule = instantiate(cfg.data, "data")
    options = OmegaConf.to_container(cfg.shards, resolve=True)
    out = Path(options.pop("out"))
    with reported_as("shards"):
        summary = write_shards(datamodule, out, progress=sys.stderr.isatty(), **options)
    report(summary)
    return summary


def report(summary: dict[str, Any]) -> None:
    """The summary in a few lines; every skipped video in <out>/skipped.json."""
    print(
        f"{summary['shards']} shards: {summary['written']} written ({summary['samples_written']} samples), "
        f"{summary['already_done']} already done, {summary['other_parts']} left to other parts; "
        f"{len(summary['skipped'])} unreadable videos skipped"
    )
    if summary["skipped"]:
        path = Path(summary["out"]) / "skipped.json"
        path.write_text(json.dumps(summary["skipped"], indent=1))
        for entry in summary["skipped"][:5]:
            print(f"  skipped {entry['path']}: {entry['error']}")
        print(f"  (all of them: {path})")
    if summary["manifest"]:
        print(f"manifest: {summary['manifest']}; train from it with data.format=shards data.root={summary['out']}")
    else:
        print("the manifest is written when every part is done (run the command again to finish)")


job = hydra_job(shard)  # what Hydra runs for each job (a SLURM array's launcher pickles it)


def main(root: str | Path | None = None) -> Any:
    """The command: `python -m vivit.tasks.shard` (vivit.tasks.command)."""
    return run_command("shard", job, root)


if __name__ == "__main__":
    main()

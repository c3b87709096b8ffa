"""Turn a Hydra multirun folder into a results table, beside the paper's numbers.

    python -m vivit.experiments.collect outputs/paper/table2_variants-k400-<time> --paper table2
    python -m vivit.experiments.collect outputs/demo_variants/multiruns/<time> --paper table2 --metric val/top1

One row per job: the swept overrides, validation and test top-1/top-5 (EPIC-Kitchens: action, verb and noun
top-1), the tested (final) checkpoint, and with `--paper tableN` the paper's number for the job's row and the
difference in points (`--paper fig7|fig8|fig9` for the figures). The title says when a job's "test" split is the
validation set (K600, MiT, EPIC-KITCHENS-100, SSv2: as in the paper, their test labels are not public).
Printed with rich and written into the multirun folder as results.csv (every metric), results.md and results.png
(a bar per job, named by its swept values, e.g. `seed=1`; the paper's number as a second bar).

Every multirun of the project's commands ends with this table: `SweepSummary` is a Hydra callback
(conf/hydra/default.yaml) that collects the sweep folder when the last job is done and prints the command that
collects it again (with `--paper tableN` for a paper preset).

The sweep is read back from Hydra's own records: `multirun.yaml` (the sweep's parameters and command line, expanded
into the jobs in launch order by Hydra's BasicSweeper) and each job's `.hydra/` folder (`overrides.yaml`,
`config.yaml`, `hydra.yaml`) and `metrics.json` (written by vivit.tasks.train when a job ends). Nothing is dropped:
a job with a folder but no metrics.json is listed as failed (it stopped, or it is still running), a job of the sweep
without a folder as missing (the sweep stopped before it).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from .paper import TABLES, VALIDATION_AS_TEST, PaperTable, config_value

log = logging.getLogger(__name__)

OK, FAILED, MISSING = "ok", "failed", "missing"
SHOWN_METRICS = ("top1", "top5", "action_top1", "verb_top1", "noun_top1")  # per split, when any job has them


@dataclass
class Job:
    """One job of a multirun, as far as it got."""

    num: int
    overrides: list[str]
    status: str  # ok | failed | missing
    folder: Path | None = None
    config: DictConfig | None = None  # .hydra/config.yaml (unresolved)
    dataset: str | None = None  # the data config's name (hydra.runtime.choices.data)
    metrics: dict[str, float] = field(default_factory=dict)  # "val/top1": 0.8, ...
    checkpoint: str | None = None
    failure: str | None = None  # why a failed job stopped, where its folder says (failure.json: a rank died)

    def override(self, key: str) -> str | None:
        """The value this job's command line gave `key` (None if it did not)."""
        return dict(_split(o) for o in self.overrides).get(key)


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key, value


# ----------------------------------------------------------------------------------------------------- reading
def sweep_jobs(multirun_dir: Path) -> tuple[list[list[str]], list[str]] | None:
    """The jobs of the sweep (their override lists, in launch order) and the swept keys, from multirun.yaml.

    This is what Hydra's BasicSweeper launched: `hydra.sweeper.params` then the command line, later values of a key
    replacing earlier ones, expanded as a Cartesian product. None when there is no multirun.yaml or another sweeper
    (e.g. Optuna) chose the jobs.
    """
    path = multirun_dir / "multirun.yaml"
    if not path.is_file():
        return None
    hydra_cfg = OmegaConf.load(path).hydra
    if not str(hydra_cfg.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    params = [f"{k}={v}" for k, v in (hydra_cfg.sweeper.get("params") or {}).items()]
    arguments = list(OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False))  # as typed: ${...} kept
    try:
        overrides = OverridesParser.create().parse_overrides(params + arguments)
        jobs = [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
    except HydraException as error:  # e.g. glob(), which needs the config repository to expand
        log.warning("Cannot expand the sweep of %s (%s): listing the job folders only.", path, error)
        return None
    swept = list(dict.fromkeys(o.get_key_element() for o in overrides if o.is_sweep_override()))
    return jobs, swept


def read_job(folder: Path) -> Job:
    """A job folder: its overrides, config and dataset, and metrics.json when the job finished."""
    hydra_dir = folder / ".hydra"
    overrides = list(OmegaConf.load(hydra_dir / "overrides.yaml")) if (hydra_dir / "overrides.yaml").is_file() else []
    config = OmegaConf.load(hydra_dir / "config.yaml") if (hydra_dir / "config.yaml").is_file() else None
    num = int(folder.name) if folder.name.isdigit() else -1  # Hydra's default sweep.subdir is the job number
    dataset = None
    if (hydra_dir / "hydra.yaml").is_file():
        hydra_cfg = OmegaConf.load(hydra_dir / "hydra.yaml").hydra
        num = int(config_value(hydra_cfg, "job.num", num))
        dataset = config_value(hydra_cfg, "runtime.choices.data")
    job = Job(
        num=num, overrides=[str(o) for o in overrides], status=FAILED, folder=folder, config=config, dataset=dataset
    )
    failure_file = folder / "failure.json"  # vivit.runtime.ranks.one_job: the job's ranks that died, and why
    if failure_file.is_file():
        dead = json.loads(failure_file.read_text()).get("dead_ranks") or {}
        job.failure = "; ".join(f"rank {rank} {why}" for rank, why in dead.items()) or None
    metrics_file = folder / "metrics.json"
    if metrics_file.is_file():
        summary = json.loads(metrics_file.read_text())
        job.status = OK
        job.metrics = {k: float(v) for split in ("val", "test") for k, v in (summary.get(split) or {}).items()}
        job.checkpoint = summary.get("checkpoint")
        if config is not None and summary.get("init"):  # the weights the job started from, as it resolved them
            OmegaConf.update(config, "model.init", summary["init"])
    return job


def read_multirun(multirun_dir: Path) -> tuple[list[Job], list[str]]:
    """Every job of the multirun (found, failed or missing) in launch order, and the swept override keys."""
    if (multirun_dir / ".hydra").is_dir():  # a single run's folder: one job
        return [read_job(multirun_dir)], []
    found = {job.num: job for job in map(read_job, sorted(p.parent for p in multirun_dir.glob("*/.hydra")))}
    expected = sweep_jobs(multirun_dir)
    if expected is None:
        jobs = sorted(found.values(), key=lambda j: j.num)
        return jobs, _varying_keys(jobs)
    grid, swept = expected
    jobs = [
        found.pop(num, None) or Job(num=num, overrides=overrides, status=MISSING) for num, overrides in enumerate(grid)
    ]
    for job in jobs:
        if job.status != MISSING and sorted(job.overrides) != sorted(grid[job.num]):
            log.warning("Job %d ran %s, but the sweep in multirun.yaml says %s.", job.num, job.overrides, grid[job.num])
    jobs += sorted(found.values(), key=lambda j: j.num)  # folders beyond the sweep (a reused sweep dir)
    return jobs, swept


def _varying_keys(jobs: Sequence[Job]) -> list[str]:
    """Override keys whose value differs between jobs (the swept keys when multirun.yaml cannot say)."""
    keys = list(dict.fromkeys(_split(o)[0] for job in jobs for o in job.overrides))
    return [k for k in keys if len({job.override(k) for job in jobs}) > 1]


# ----------------------------------------------------------------------------------------------------- the table
@dataclass
class Comparison:
    """What `--paper` adds: the table, the metric compared, and per job the paper's row (or None)."""

    table: PaperTable
    metric: str
    rows: dict[int, Any]  # job num -> Row | None
    datasets: dict[int, str]  # job num -> the paper column used
    notes: list[str]
    stand_in: set[int] = field(default_factory=set)  # jobs on a dataset the table lacks (no difference shown)


def compare(jobs: Sequence[Job], table: PaperTable, metric: str | None, dataset: str | None) -> Comparison:
    """Match every job to its row of `table` and pick the paper column (the job's dataset, or `dataset`)."""
    if dataset is not None and dataset not in table.datasets:
        raise ValueError(f"--dataset {dataset}: the paper's {table.name} has numbers for {', '.join(table.datasets)}.")
    notes: list[str] = []
    datasets: dict[int, str] = {}
    stand_in: set[int] = set()
    for job in jobs:
        column = dataset or job.dataset
        if column not in table.datasets:
            column = table.datasets[0]
            stand_in.add(job.num)
            if job.dataset is not None and dataset is None:
                notes.append(
                    f"The paper's {table.name} has no {job.dataset} numbers: its {column} column is shown "
                    f"for the pattern, without a difference."
                )
        datasets[job.num] = column
    notes = list(dict.fromkeys(notes))
    if metric is None:
        wanted = {table.metric(d) for d in datasets.values()}
        metric = wanted.pop() if len(wanted) == 1 else "test/top1"
        if not any(metric in job.metrics for job in jobs) and any(
            metric.replace("test/", "val/") in job.metrics for job in jobs
        ):
            notes.append(
                f"No job has {metric} (the paper's protocol): compared with {metric.replace('test/', 'val/')} instead."
            )
            metric = metric.replace("test/", "val/")
    rows = {
        job.num: table.row(table.row_key(job.config, job.dataset)) if job.config is not None else None for job in jobs
    }
    unmatched = [
        row.label
        for row in table.rows
        if row not in rows.values() and any(d in row.top1 for d in set(datasets.values()))
    ]
    if unmatched:
        notes.append(f"Paper rows without a job: {', '.join(unmatched)}.")
    return Comparison(table, metric, rows, datasets, notes, stand_in)


def shown_metrics(jobs: Sequence[Job]) -> list[str]:
    """The accuracy columns of the printed table: val then test, top-1/top-5 (or EK's action/verb/noun top-1)."""
    present = {k for job in jobs for k in job.metrics}
    return [f"{split}/{m}" for split in ("val", "test") for m in SHOWN_METRICS if f"{split}/{m}" in present]


def column_name(key: str) -> str:
    """A swept key as a column title: a config group's last part (`experiment/paper/table4_rows` -> `table4_rows`)."""
    return key.lstrip("+~").rsplit("/", 1)[-1]


def job_label(job: Job, swept: Sequence[str]) -> str:
    """A job by its swept values, `key=value` (`seed=1`, `model=vivit_b_fe, seed=0`), else its number."""
    values = [f"{column_name(k)}={job.override(k)}" for k in swept if job.override(k) is not None]
    return ", ".join(values) or f"job {job.num}"


def percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def build_table(
    jobs: Sequence[Job], swept: Sequence[str], metrics: Sequence[str], comparison: Comparison | None
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the results table, as strings (accuracies in percent)."""
    header = ["job", "status", *map(column_name, swept), *metrics]
    if comparison:
        header += ["paper row", f"paper ({comparison.metric})", "diff"]
    header.append("checkpoint")
    body = []
    for job in jobs:
        line = [str(job.num), job.status, *[job.override(k) or "" for k in swept]]
        line += [percent(job.metrics.get(m)) for m in metrics]
        if comparison:
            row = comparison.rows.get(job.num)
            paper = row.top1.get(comparison.datasets[job.num]) if row else None
            ours = job.metrics.get(comparison.metric)
            shown = paper is not None and ours is not None and job.num not in comparison.stand_in
            line += [
                row.label if row else "",
                "" if paper is None else f"{paper:.1f}",
                f"{100 * ours - paper:+.2f}" if shown else "",
            ]
        line.append(_short_path(job.checkpoint, job.folder))
        body.append(line)
    return header, body


def _short_path(path: str | None, folder: Path | None) -> str:
    """A checkpoint path relative to the multirun folder when it lies in the job's folder (CSV keeps it whole)."""
    if not path:
        return ""
    if folder is not None and Path(path).resolve().is_relative_to(folder.resolve()):
        return str(Path(folder.name) / Path(path).resolve().relative_to(folder.resolve()))
    return path


# ----------------------------------------------------------------------------------------------------- outputs
def write_csv(path: Path, jobs: Sequence[Job], swept: Sequence[str], comparison: Comparison | None) -> None:
    """Every metric of every job (fractions, as in metrics.json), the full override keys, the paper's numbers."""
    metric_keys = sorted({k for job in jobs for k in job.metrics}, key=lambda k: (not k.startswith("val/"), k))
    header = ["job", "status", *swept, "dataset", *metric_keys, "checkpoint", "folder"]
    if comparison:
        header += ["paper_table", "paper_row", "paper_metric", "paper_dataset", "paper_value"]
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for job in jobs:
            line = [
                job.num,
                job.status,
                *[job.override(k) or "" for k in swept],
                job.dataset or "",
                *[job.metrics.get(k, "") for k in metric_keys],
                job.checkpoint or "",
                job.folder or "",
            ]
            if comparison:
                row = comparison.rows.get(job.num)
                column = comparison.datasets[job.num]
                line += [
                    comparison.table.name,
                    row.label if row else "",
                    comparison.metric,
                    column,
                    row.top1.get(column, "") if row else "",
                ]
            writer.writerow(line)


def markdown(title: str, header: Sequence[str], body: Sequence[Sequence[str]], notes: Sequence[str]) -> str:
    escape = lambda cell: str(cell).replace("|", "\\|")  # noqa: E731
    lines = [f"# {title}", "", "| " + " | ".join(map(escape, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(escape, row)) + " |" for row in body]
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def plot(
    path: Path, jobs: Sequence[Job], swept: Sequence[str], metric: str, comparison: Comparison | None, title: str
) -> None:
    """One bar per job (its `metric` in percent; failed and missing jobs are named, with no bar) and the paper's."""
    labels, ours, paper = [], [], []
    for job in jobs:
        row = comparison.rows.get(job.num) if comparison else None
        label = row.label if row else job_label(job, swept)
        labels.append(label if job.status == OK else f"{label}\n({job.status})")
        value = job.metrics.get(metric)
        ours.append(0.0 if value is None else 100 * value)
        paper.append(row.top1.get(comparison.datasets[job.num]) if row else None)
    width = 0.4 if comparison else 0.7
    x = range(len(jobs))
    fig = Figure(figsize=(max(6.0, 1.1 * len(jobs) + 2), 4.5))
    ax = fig.subplots()
    bars = ax.bar([i - width / 2 if comparison else i for i in x], ours, width, label=f"this sweep ({metric})")
    ax.bar_label(
        bars,
        labels=[f"{v:.1f}" if job.metrics.get(metric) is not None else "" for v, job in zip(ours, jobs)],
        fontsize=8,
    )
    if comparison:
        shown = [(i, p) for i, p in zip(x, paper) if p is not None]
        if shown:
            columns = ", ".join(sorted(set(comparison.datasets.values())))
            pbars = ax.bar(
                [i + width / 2 for i, _ in shown],
                [p for _, p in shown],
                width,
                color="0.65",
                label=f"paper {comparison.table.name} ({columns})",
            )
            ax.bar_label(pbars, labels=[f"{p:.1f}" for _, p in shown], fontsize=8)
    ax.set_xticks(
        list(x), labels, rotation=30 if len(jobs) > 4 else 0, ha="right" if len(jobs) > 4 else "center", fontsize=8
    )
    ax.set_ylabel(f"{metric} (%)")
    ax.set_ylim(0, 108)
    ax.set_title(title, fontsize=10, pad=24)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def print_table(title: str, header: Sequence[str], body: Sequence[Sequence[str]], notes: Sequence[str]) -> None:
    table = Table(title=title)
    for name in header:
        left = name in ("status", "paper row", "checkpoint")
        table.add_column(name, justify="left" if left else "right", overflow="fold", no_wrap=name != "checkpoint")
    styles = {OK: None, FAILED: "red", MISSING: "yellow"}
    for row in body:
        table.add_row(*row, style=styles.get(row[1]))
    console = Console()
    if not console.is_terminal:  # a log file or a pipe: do not squeeze the table into 80 columns
        console = Console(width=250)
    console.print(table)
    for note in notes:
        console.print(f"- {note}")


# ----------------------------------------------------------------------------------------------------- main
def collect(
    multirun_dir: Path,
    paper: str | None = None,
    metric: str | None = None,
    dataset: str | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Read the multirun, print its table and write results.{csv,md,png} into it. Returns what was found."""
    if not multirun_dir.is_dir():
        raise FileNotFoundError(f"No multirun folder at '{multirun_dir}' (expected outputs/.../multiruns/<time>).")
    jobs, swept = read_multirun(multirun_dir)
    if not jobs:
        raise FileNotFoundError(f"'{multirun_dir}' holds no Hydra job folders (<num>/.hydra/) and no multirun.yaml.")
    comparison = compare(jobs, TABLES[paper], metric, dataset) if paper else None
    if comparison:
        metric = comparison.metric
    elif metric is None:
        candidates = ("test/top1", "val/top1", "test/action_top1", "val/action_top1")
        metric = next((m for m in candidates if any(m in job.metrics for job in jobs)), "val/top1")
    metrics = shown_metrics(jobs)
    header, body = build_table(jobs, swept, metrics, comparison)

    counts = {s: sum(j.status == s for j in jobs) for s in (OK, FAILED, MISSING)}
    notes = list(comparison.notes) if comparison else []
    if counts[FAILED]:
        notes.append(
            f"{counts[FAILED]} job(s) failed: a folder without metrics.json (the job stopped, or is still "
            f"running): {', '.join(str(j.num) for j in jobs if j.status == FAILED)}."
        )
        notes += [f"job {j.num}: {j.failure}." for j in jobs if j.status == FAILED and j.failure]
    if counts[MISSING]:
        notes.append(
            f"{counts[MISSING]} job(s) missing: in the sweep but never started (the sweep stopped "
            f"before them): {', '.join(str(j.num) for j in jobs if j.status == MISSING)}."
        )
    title = f"{multirun_dir.name}: {counts[OK]}/{len(jobs)} jobs finished"
    validation = [d for d in VALIDATION_AS_TEST if any(job.dataset == d for job in jobs)]
    if validation:  # the paper reports these datasets' validation sets as "test", and so does this project
        title += f"; test = the validation split of {', '.join(validation)}"
        notes.append(
            "test/* is the validation split for "
            + ", ".join(VALIDATION_AS_TEST[d] for d in validation)
            + ", as in the paper."
        )
    if comparison:
        notes.insert(0, " ".join(filter(None, [f"Paper: {comparison.table.title}.", comparison.table.note])))

    write_csv(multirun_dir / "results.csv", jobs, swept, comparison)
    (multirun_dir / "results.md").write_text(markdown(title, header, body, notes))
    plot(multirun_dir / "results.png", jobs, swept, metric, comparison, title)
    if not quiet:
        print_table(title, header, body, notes)
        print(f"wrote {multirun_dir / 'results.csv'}, results.md, results.png")
    return {
        "jobs": jobs,
        "swept": swept,
        "header": header,
        "rows": body,
        "notes": notes,
        "metric": metric,
        "counts": counts,
    }


def paper_table_of(experiment: str | None) -> str | None:
    """The paper table a preset reproduces (`paper/table2_variants` -> `table2`), else None."""
    name = (experiment or "").removeprefix("paper/")
    table = name.split("_", 1)[0]
    return table if experiment and experiment.startswith("paper/") and table in TABLES else None


def collect_command(multirun_dir: Path, paper: str | None = None) -> str:
    return f"python -m vivit.experiments.collect {multirun_dir}" + (f" --paper {paper}" if paper else "")


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, one table of all its jobs (their swept values and metrics, as
    `collect` prints and writes it) and the command that collects the folder again. A sweep it cannot read (no
    job folder yet) is one warning: the jobs' own results stand. A job that fails stops Hydra's basic sweeper
    before its end: the failure prints the command that collects what the sweep has so far."""

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status == JobStatus.FAILED and config.hydra.mode == RunMode.MULTIRUN:
            folder = Path(str(config.hydra.sweep.dir))
            print(f"job {config.hydra.job.num} failed; the sweep's table so far: {collect_command(folder)}", flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        folder = Path(str(config.hydra.sweep.dir))
        paper = paper_table_of(OmegaConf.select(config, "hydra.runtime.choices.experiment"))
        try:
            collect(folder, paper)
        except (FileNotFoundError, ValueError) as error:
            log.warning("sweep table of %s: %s", folder, error)
            return
        print(f"collect it again: {collect_command(folder, paper)}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vivit.experiments.collect", description=__doc__.split("\n\n")[0])
    parser.add_argument("multirun_dir", type=Path, help="a multirun folder, e.g. outputs/train/multiruns/<time>")
    parser.add_argument("--paper", choices=sorted(TABLES), help="add the paper's number of each job's row")
    parser.add_argument(
        "--metric",
        help="the metric compared and plotted (default: the paper's protocol, e.g. "
        "test/top1; without --paper test/top1, else val/top1)",
    )
    parser.add_argument("--dataset", help="the paper column to compare with (default: each job's data config)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        collect(args.multirun_dir, args.paper, args.metric, args.dataset)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

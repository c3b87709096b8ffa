"""Logs that continue: a run resumed in its folder keeps what its CSV and TensorBoard logs held before the
checkpoint it resumes from, and drops what the interrupted run logged after it (the resumed run logs it again)."""

from __future__ import annotations

import csv
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only


def continue_logs(loggers: list[Logger], step: int) -> None:
    """Resuming in the same run folder at global step `step`: the CSV and TensorBoard logs keep what was logged
    before that step and drop what the interrupted run logged after its checkpoint (the resumed run logs it
    again). Call before the loggers write anything."""
    if rank_zero_only.rank != 0:  # DDP's other ranks do not write these logs
        return
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger) and logger._experiment is None:
            logger._kwargs["purge_step"] = step  # SummaryWriter hides the events at and after it
        elif isinstance(logger, CSVLogger):
            _keep_csv_rows_before(logger, step)


def _keep_csv_rows_before(logger: CSVLogger, step: int) -> None:
    """Lightning's CSV writer deletes an existing metrics.csv when it starts: keep its rows before `step`."""
    path = Path(logger.log_dir) / "metrics.csv"
    if not path.is_file():
        return
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        header, rows = list(reader.fieldnames or []), [r for r in reader if r.get("step") and int(r["step"]) < step]
    writer = logger.experiment  # deletes the file
    writer.metrics_keys = sorted(header)  # so the first save appends under this header (or widens it)
    with path.open("w", newline="") as file:
        out = csv.DictWriter(file, fieldnames=writer.metrics_keys)
        out.writeheader()
        out.writerows(rows)

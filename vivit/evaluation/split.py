"""The whole-split evaluation: what a split says once every video of it has been scored, on every rank at once.

`SplitEvaluation` is a callback. During `trainer.validate` and `trainer.test` (not the validation passes of a
fit) it keeps the per-video outputs the LightningModule's evaluation steps return (views averaged; `index`,
`valid`, `logits` per head), gathers them from every rank when the split ends (each rank scored a different share
of the videos) and then:

- logs the whole-split metrics through Lightning's `log`, so they reach every logger (W&B included) and the results
  that `trainer.validate/test` return (metrics.json) from this one place: mean per-class top-1/top-5 per head, and
  the accuracies of the dataset's own subsets (`index.evaluation_subsets`, e.g. EPIC-KITCHENS' unseen
  participants and tail classes) under `<split>/<subset>/<head>_top<k>`;
- on rank 0 writes the per-class CSVs, the worst classes, the confusion PNGs and a few sample clips into the run
  folder, and hands them to W&B (vivit.tracking.dashboards);
- on an unlabelled split writes the dataset's challenge submission (`index.submission`), and with
  `save_predictions` the per-video logits of the split (`predictions_<split>.pt`, keyed by record id).

Datasets take part through optional attributes of their index, so nothing here names a dataset:
`combined_heads` (pairs of heads scored jointly, EPIC's action = noun x verb), `evaluation_subsets(split, records)`,
and `submission(ids, logits, options)` with `submission_file` (and `submission_archive_member`: the name of the
JSON inside a zip archive, EPIC's `test.json`, or None for a plain JSON file).
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor

from vivit.common.files import atomic_path, write_atomically
from vivit.datamodules.reader import READ_ERRORS
from vivit.datamodules.sampling import centre_indices
from vivit.tracking.dashboards import log_test_outputs

from . import reports
from .metrics import correct_at, joint_topk_correct

log = logging.getLogger(__name__)
Subset = Tensor | Mapping[str, Tensor]  # one mask of videos, or one per head (and combined head)


def settle_logged(trainer: L.Trainer) -> None:
    """Reduce the epoch's logged values over the ranks now, on every rank. Lightning reduces them lazily, on the first
    call that asks for them: on rank 0 the progress bar asks in its own epoch-end hook (before the callbacks that
    vivit.tasks.build appends), the other ranks later. A callback that starts a collective of its own at an epoch's
    end calls this first, so every rank runs the same collectives in the same order; otherwise rank 0's reduction
    meets another rank's gather and both wait forever."""
    _ = trainer.callback_metrics


def gathered(outputs: list[Any], trainer: L.Trainer) -> list[Any]:
    """Every rank's list of outputs, concatenated, on every rank."""
    if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        shares: list[Any] = [None] * trainer.world_size
        torch.distributed.all_gather_object(shares, outputs)
        return [item for share in shares for item in share]
    return outputs


def labels_of(records: Sequence[Any], heads: Sequence[str]) -> dict[str, Tensor]:
    """Per head, the label of each record (-1: unlabelled); a single head is named ""."""

    def label(record: Any, head: str) -> int:
        if record.label is None:
            return -1
        return int(record.label[head]) if head else int(record.label)

    return {head: torch.tensor([label(r, head) for r in records], dtype=torch.long) for head in heads}


def subset_accuracies(
    logits: Mapping[str, Tensor],
    labels: Mapping[str, Tensor],
    valid: Tensor,
    subsets: Mapping[str, Subset],
    combined_heads: Mapping[str, Sequence[str]],
    split: str,
) -> dict[str, float]:
    """Micro top-1/top-5 of every head and combined head on each subset of the split's videos; a subset given per
    head uses each head's own mask (EPIC's tail classes: a verb's metric on segments of a tail verb)."""
    correct: dict[str, Tensor] = {}
    for k in (1, 5):
        for head, head_logits in logits.items():
            correct[f"{head}_top{k}"] = correct_at(head_logits, labels[head], valid, k)
        for name, (first, second) in combined_heads.items():
            joint = joint_topk_correct(logits[first], logits[second], labels[first], labels[second], k)
            correct[f"{name}_top{k}"] = joint & valid
    metrics = {}
    for subset, masks in subsets.items():
        for name, hits in correct.items():
            mask = masks[name.rsplit("_top", 1)[0]] if isinstance(masks, Mapping) else masks
            if mask.any():
                metrics[f"{split}/{subset}/{name}"] = float(hits[mask].double().mean())
    return metrics


@dataclass
class Scored:
    """Every video of a split once, gathered from every rank: what the whole-split evaluation computes from."""

    index: Tensor  # each video's position in the split's dataset
    records: list[Any]
    valid: Tensor  # False: the video could not be read (it counts as wrong)
    logits: dict[str, Tensor]  # per head, views averaged
    labels: dict[str, Tensor]  # per head, -1 where unlabelled

    @classmethod
    def of(cls, batches: list[dict[str, Any]], records: Sequence[Any]) -> Scored:
        index = torch.cat([b["index"] for b in batches])
        chosen = [records[i] for i in index.tolist()]
        logits = {head: torch.cat([b["logits"][head] for b in batches]) for head in batches[0]["logits"]}
        return cls(index, chosen, torch.cat([b["valid"] for b in batches]), logits, labels_of(chosen, list(logits)))

    @property
    def labelled(self) -> Tensor:
        """Per video: labelled in every head."""
        return torch.stack([y >= 0 for y in self.labels.values()]).all(0)


class SplitEvaluation(L.Callback):
    """See the module docstring.

    Args:
        output_dir: the run folder, where the files go.
        save_predictions: also write `predictions_<split>.pt` (every video of the split once).
        submission: the options of a dataset's challenge submission (EPIC: the supervision levels), or None.
        samples: how many sample clips to draw (the model's most confident mistakes first).
    """

    def __init__(
        self,
        output_dir: str | Path,
        save_predictions: bool = False,
        submission: Mapping[str, Any] | None = None,
        samples: int = 8,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.save_predictions = save_predictions
        self.submission_options = dict(submission or {})
        self.samples = samples
        self.files: list[str] = []  # written by the evaluations of this run, for metrics.json
        self.predictions: dict[str, str] = {}  # split -> predictions file
        self._outputs: list[dict[str, Any]] = []
        self._writes_files = True

    @contextmanager
    def metrics_only(self) -> Iterator[None]:
        """Evaluations inside the block log their metrics but write no files (the best-by-val checkpoint's test:
        the run's files describe the final model)."""
        self._writes_files = False
        try:
            yield
        finally:
            self._writes_files = True

    # -- collecting ----------------------------------------------------------------------------------------------
    @staticmethod
    def _evaluating(trainer: L.Trainer) -> bool:
        return trainer.state.fn in (TrainerFn.VALIDATING, TrainerFn.TESTING) and not trainer.sanity_checking

    def _start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._outputs = []

    on_validation_epoch_start = on_test_epoch_start = _start

    def _keep(self, trainer: L.Trainer, outputs: Mapping[str, Any]) -> None:
        if self._evaluating(trainer):
            self._outputs.append(
                {
                    "index": outputs["index"].cpu(),
                    "valid": outputs["valid"].cpu(),
                    "logits": {k: v.float().cpu() for k, v in outputs["logits"].items()},
                }
            )

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, *_: Any
    ) -> None:
        self._keep(trainer, outputs)

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, *_: Any
    ) -> None:
        self._keep(trainer, outputs)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._evaluating(trainer):
            self._evaluate(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._evaluating(trainer):
            self._evaluate(trainer, pl_module, "test")

    # -- evaluating ----------------------------------------------------------------------------------------------
    def _evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule, split: str) -> None:
        settle_logged(trainer)
        batches = gathered(self._outputs, trainer)
        self._outputs = []
        if not batches:
            return
        datamodule = trainer.datamodule
        dataset, data_index = datamodule.datasets[split], datamodule.index
        scored = Scored.of(batches, dataset.records)
        for name, value in self._metrics(split, scored, data_index).items():
            # the same on every rank (gathered): "max" is the value, and Lightning's DDP hint stays quiet
            pl_module.log(name, value, sync_dist=True, reduce_fx="max")
        if not trainer.is_global_zero or not self._writes_files:
            return
        classes = data_index.classes if isinstance(data_index.classes, Mapping) else {"": data_index.classes}
        self.output_dir.mkdir(parents=True, exist_ok=True)
        files = reports.write_outputs(self.output_dir, split, scored.logits, scored.labels, classes, scored.valid)
        samples = self._sample_clips(dataset, scored, classes)
        if samples:
            strips, captions = [s["frames"] for s in samples], [s["caption"] for s in samples]
            files.append(str(reports.plot_samples(self.output_dir / f"samples_{split}.png", strips, captions)))
        log_test_outputs(trainer.loggers, split, files, samples)
        if not scored.labelled.any() and hasattr(data_index, "submission"):
            files.append(str(self._write_submission(data_index, split, scored)))
        if self.save_predictions:
            self.predictions[split] = str(self._write_predictions(split, scored))
        self.files += files

    def _metrics(self, split: str, scored: Scored, data_index: Any) -> dict[str, float]:
        """Mean per-class accuracy per head, and the accuracies of the dataset's subsets of the split."""
        if not scored.labelled.any():  # an unlabelled split (a benchmark's hidden test set): predictions only
            return {}
        metrics = reports.mean_class_metrics(split, scored.logits, scored.labels, scored.valid)
        subsets_of = getattr(data_index, "evaluation_subsets", None)
        if subsets_of is not None:
            try:
                subsets = subsets_of(split, scored.records)
            except FileNotFoundError as error:  # e.g. an annotations folder without the breakdown files
                log.warning("%s breakdown skipped: %s", type(data_index).__name__, error)
                subsets = {}
            combined = getattr(data_index, "combined_heads", {})
            metrics.update(subset_accuracies(scored.logits, scored.labels, scored.valid, subsets, combined, split))
        return metrics

    def _sample_clips(self, dataset: Any, scored: Scored, classes: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
        """A few videos to look at (chosen on the first head: its most confident mistakes and successes), each as a
        strip of its centre clip's decoded frames with the true and predicted class names."""
        first = next(iter(scored.logits))
        labels = torch.where(scored.labelled, scored.labels[first], -1)
        samples = []
        for position in reports.choose_samples(scored.logits[first], labels, scored.valid, self.samples):
            i = int(scored.index[position])
            try:
                frames = dataset.frames(i, centre_indices(dataset.length(i), dataset.num_frames, dataset.stride))
            except READ_ERRORS as error:  # it was read for the evaluation; a file changed since is only skipped
                log.warning("sample clip %s skipped: %s", dataset.records[i].path, error)
                continue
            caption = {
                "video": str(dataset.records[i].id or dataset.records[i].path),
                **reports.sample_caption(position, scored.logits, scored.labels, classes),
            }
            samples.append({"frames": reports.frame_strip(frames), "caption": caption})
        return samples

    def _write_submission(self, data_index: Any, split: str, scored: Scored) -> Path:
        """The challenge file, ready to upload: the JSON, or a zip archive holding it (EPIC's `test.json`)."""
        content = data_index.submission([r.id for r in scored.records], scored.logits, self.submission_options)
        path = self.output_dir / data_index.submission_file.format(split=split)
        member = getattr(data_index, "submission_archive_member", None)
        if member is None:
            return write_atomically(path, json.dumps(content))
        with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(member, json.dumps(content))
        return path

    def _write_predictions(self, split: str, scored: Scored) -> Path:
        """Per-video logits (averaged over views) keyed by the records' ids, e.g. for a benchmark submission."""
        path = self.output_dir / f"predictions_{split}.pt"
        torch.save({"ids": [r.id for r in scored.records], "logits": scored.logits}, path)
        return path

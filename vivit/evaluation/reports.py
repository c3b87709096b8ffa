"""What a reproduction reports besides top-1/top-5, from the per-video logits of a split (views averaged): mean
per-class accuracy, a per-class CSV, the worst classes, a confusion figure, and sample clips with their true and
predicted labels.

Plain functions of tensors and class names (no Lightning): the whole-split evaluation (vivit.evaluation.split)
calls `write_outputs`, and any logger can upload the files whose paths it returns.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from .metrics import confusion_matrix, mean_class_accuracy, most_confused_pairs, per_class


def write_per_class_csv(
    path: Path, logits: Tensor, labels: Tensor, class_names: Sequence[str], valid: Tensor | None = None
) -> Path:
    """class, name, count, top1, top5 (fractions), one row per class in index order."""
    rows = per_class(logits, labels, valid)
    with Path(path).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "name", "count", "top1", "top5"])
        for c, name in enumerate(class_names):
            count = int(rows["count"][c])
            cells = ["" if count == 0 else f"{float(rows[f'top{k}'][c]):.6f}" for k in (1, 5)]
            writer.writerow([c, name, count, *cells])
    return Path(path)


def plot_confusion(
    path: Path,
    logits: Tensor,
    labels: Tensor,
    class_names: Sequence[str],
    max_classes: int = 30,
    num_pairs: int = 30,
    valid: Tensor | None = None,
) -> Path:
    """The full row-normalised confusion matrix for up to `max_classes` classes; for more (Kinetics' hundreds)
    a bar chart of the `num_pairs` most confused (true -> predicted) pairs. Unreadable videos (valid False) are
    left out: the network never saw them, so their "prediction" would show as a confusion that is not one
    (they count as wrong in the accuracies and are reported as `<split>/unreadable`)."""
    if valid is not None:
        logits, labels = logits[valid], labels[valid]
    matrix = confusion_matrix(logits, labels)
    k = matrix.shape[0]
    if k <= max_classes:
        fig = Figure(figsize=(2 + 0.35 * k, 1.5 + 0.35 * k))
        ax = fig.subplots()
        rows = matrix.double() / matrix.sum(1, keepdim=True).clamp(min=1)
        image = ax.imshow(rows.numpy(), cmap="Blues", vmin=0, vmax=1)
        ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true", title="confusion (row-normalised)")
        ax.set_xticklabels(class_names, rotation=90, fontsize=7)
        ax.set_yticklabels(class_names, fontsize=7)
        fig.colorbar(image, ax=ax, fraction=0.04)
    else:
        pairs = most_confused_pairs(matrix, num_pairs)
        fig = Figure(figsize=(9, 1 + 0.3 * max(len(pairs), 1)))
        ax = fig.subplots()
        ax.barh(range(len(pairs)), [c for _, _, c in pairs])
        ax.set_yticks(range(len(pairs)))
        ax.set_yticklabels([f"{class_names[t]} -> {class_names[p]}" for t, p, _ in pairs], fontsize=7)
        ax.invert_yaxis()
        ax.set(xlabel="videos", title=f"the {len(pairs)} most confused pairs (true -> predicted) of {k} classes")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)


def worst_classes(
    logits: Tensor, labels: Tensor, class_names: Sequence[str], valid: Tensor | None = None, n: int = 10
) -> list[dict[str, object]]:
    """The `n` classes of the split with the lowest top-1 (ties: more videos first), each with the class its
    videos are most often predicted as instead (top-1, empty when none is wrong)."""
    rows = per_class(logits, labels, valid)
    matrix = confusion_matrix(logits, labels)
    present = [c for c in range(len(class_names)) if rows["count"][c] > 0]
    order = sorted(present, key=lambda c: (float(rows["top1"][c]), -int(rows["count"][c]), c))[:n]
    worst = []
    for c in order:
        wrong = matrix[c].clone()
        wrong[c] = 0
        other = int(wrong.argmax())
        worst.append(
            {
                "class": c,
                "name": class_names[c],
                "count": int(rows["count"][c]),
                "top1": round(float(rows["top1"][c]), 6),
                "confused_with": class_names[other] if wrong[other] > 0 else "",
                "confused_count": int(wrong[other]),
            }
        )
    return worst


def write_rows_csv(path: Path, rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> Path:
    with Path(path).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


WORST_COLUMNS = ("class", "name", "count", "top1", "confused_with", "confused_count")


def choose_samples(logits: Tensor, labels: Tensor, valid: Tensor | None = None, n: int = 8) -> list[int]:
    """Positions of up to `n` readable, labelled videos to show, spread over the true classes and the model's
    mistakes first: in rounds, each class gets one more video per round (its most confident mistake, else its most
    confident correct video), so 8 samples of 8 classes show every class once. Mistakes are listed first."""
    confidence, predicted = (t[:, 0] for t in logits.float().softmax(-1).topk(1, dim=-1))  # as the metric picks
    usable = labels >= 0 if valid is None else (labels >= 0) & valid
    order = [int(i) for i in confidence.argsort(descending=True) if usable[i]]
    wrong = [i for i in order if predicted[i] != labels[i]]
    candidates = wrong + [i for i in order if predicted[i] == labels[i]]
    chosen: list[int] = []
    shown: Counter[int] = Counter()
    for round_ in range(n):
        for i in candidates:
            if len(chosen) == n:
                break
            if shown[int(labels[i])] == round_ and i not in chosen:
                chosen.append(i)
                shown[int(labels[i])] += 1
        if len(chosen) in (n, len(candidates)):
            break
    mistakes = set(wrong)
    return [i for i in chosen if i in mistakes] + [i for i in chosen if i not in mistakes]


def sample_caption(
    position: int, logits: Mapping[str, Tensor], labels: Mapping[str, Tensor], classes: Mapping[str, Sequence[str]]
) -> dict[str, str]:
    """True and predicted (top-1, with its probability) class names of one video, per head."""
    caption = {}
    for head, head_logits in logits.items():
        p, c = (t[0] for t in head_logits[position].float().softmax(-1).topk(1))
        names = classes[head]
        prefix = f"{head}_" if head else ""
        caption[f"{prefix}true"] = names[int(labels[head][position])]
        caption[f"{prefix}predicted"] = f"{names[int(c)]} ({100 * float(p):.0f}%)"
    return caption


def frame_strip(frames: np.ndarray, max_frames: int = 8) -> np.ndarray:
    """Up to `max_frames` evenly spaced frames of a (T, H, W, 3) uint8 clip side by side: (H, n * W, 3)."""
    keep = np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int)
    return np.concatenate(list(frames[keep]), axis=1)


def plot_samples(path: Path, strips: Sequence[np.ndarray], captions: Sequence[Mapping[str, str]]) -> Path:
    """One row per sample clip: its frame strip under a title with the true and predicted labels."""
    fig = Figure(figsize=(8, 1.6 * len(strips)))
    axes = fig.subplots(len(strips), 1, squeeze=False)
    for ax, strip, caption in zip(axes[:, 0], strips, captions):
        ax.imshow(strip, interpolation="nearest")
        ax.set_title("   ".join(f"{k}: {v}" for k, v in caption.items()), fontsize=8, loc="left")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return Path(path)


def mean_class_metrics(
    split: str, logits: Mapping[str, Tensor], labels: Mapping[str, Tensor], valid: Tensor | None = None
) -> dict[str, float]:
    """Mean per-class accuracy per head, `<split>/[<head>_]mean_class_top1|top5`, over the labelled videos."""
    labelled = torch.stack([y >= 0 for y in labels.values()]).all(0)
    if not labelled.any():
        return {}
    ok = None if valid is None else valid[labelled]
    metrics: dict[str, float] = {}
    for head, head_logits in logits.items():
        x, y = head_logits[labelled], labels[head][labelled]
        prefix = f"{split}/{head}_" if head else f"{split}/"
        metrics[f"{prefix}mean_class_top1"] = mean_class_accuracy(x, y, ok, 1)
        if x.shape[-1] > 5:
            metrics[f"{prefix}mean_class_top5"] = mean_class_accuracy(x, y, ok, 5)
    return metrics


def write_outputs(
    output_dir: Path,
    split: str,
    logits: Mapping[str, Tensor],
    labels: Mapping[str, Tensor],
    classes: Mapping[str, Sequence[str]],
    valid: Tensor | None = None,
) -> list[str]:
    """Per head, a per-class CSV, the worst classes (CSV) and a confusion PNG in `output_dir`, over the labelled
    videos (an unlabelled split writes nothing). Returns the paths written."""
    output_dir = Path(output_dir)
    labelled = torch.stack([y >= 0 for y in labels.values()]).all(0)
    files: list[str] = []
    if not labelled.any():
        return files
    ok = None if valid is None else valid[labelled]
    for head, head_logits in logits.items():
        x, y = head_logits[labelled], labels[head][labelled]
        suffix = f"_{head}" if head else ""
        files.append(str(write_per_class_csv(output_dir / f"per_class_{split}{suffix}.csv", x, y, classes[head], ok)))
        files.append(
            str(
                write_rows_csv(
                    output_dir / f"worst_classes_{split}{suffix}.csv",
                    worst_classes(x, y, classes[head], ok),
                    WORST_COLUMNS,
                )
            )
        )
        files.append(str(plot_confusion(output_dir / f"confusion_{split}{suffix}.png", x, y, classes[head], valid=ok)))
    return files

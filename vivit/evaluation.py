"""What a reproduction reports besides top-1/top-5, from the per-video logits of a test (views averaged):
mean per-class accuracy, a per-class CSV, the worst classes, a confusion figure, sample clips with their true and
predicted labels, EPIC-KITCHENS-100's official breakdowns and its challenge submission file.

Plain functions of tensors and class names (no Lightning): `eval.py` and `train.py`'s final test call
`write_outputs`, and any logger can upload the files whose paths it returns.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Mapping, Sequence

import torch
from torch import Tensor

from vivit.module import action_topk_correct, topk_correct


def correct_at(logits: Tensor, labels: Tensor, valid: Tensor | None, k: int) -> Tensor:
    """Per-video bool: label among the top k; an unreadable video (valid False) is wrong, as in the metrics."""
    correct = topk_correct(logits, labels, k)
    return correct & valid if valid is not None else correct


def per_class(logits: Tensor, labels: Tensor, valid: Tensor | None = None) -> dict[str, Tensor]:
    """Per class: number of labelled videos, top-1 and top-5 accuracy (NaN for a class with no video)."""
    num_classes = logits.shape[-1]
    count = torch.bincount(labels, minlength=num_classes).double()
    rows = {"count": count}
    for k in (1, 5):
        hits = torch.bincount(labels, weights=correct_at(logits, labels, valid, k).double(), minlength=num_classes)
        rows[f"top{k}"] = hits / count  # 0/0 = NaN: the class is not in this split
    return rows


def mean_class_accuracy(logits: Tensor, labels: Tensor, valid: Tensor | None = None, k: int = 1) -> float:
    """Mean over the classes present of their top-k accuracy (each class weighs the same)."""
    accuracy = per_class(logits, labels, valid)[f"top{k}"]
    return float(accuracy[~accuracy.isnan()].mean())


def write_per_class_csv(path: Path, logits: Tensor, labels: Tensor, class_names: Sequence[str],
                        valid: Tensor | None = None) -> Path:
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


def confusion_matrix(logits: Tensor, labels: Tensor) -> Tensor:
    """(K, K) counts: row = true class, column = predicted (top-1) class, picked as the top-1 metric picks it
    (`topk`; argmax may break a tie otherwise, and the diagonal would disagree with per-class top-1)."""
    k = logits.shape[-1]
    return torch.bincount(labels * k + logits.topk(1, dim=-1).indices[:, 0], minlength=k * k).view(k, k)


def most_confused_pairs(matrix: Tensor, n: int) -> list[tuple[int, int, int]]:
    """The `n` largest off-diagonal cells as (true, predicted, count), count > 0, largest first."""
    off = matrix.clone()
    off.fill_diagonal_(0)
    counts, flat = off.flatten().sort(descending=True)
    k = matrix.shape[0]
    return [(int(i) // k, int(i) % k, int(c)) for c, i in zip(counts[:n], flat[:n]) if c > 0]


def plot_confusion(path: Path, logits: Tensor, labels: Tensor, class_names: Sequence[str],
                   max_classes: int = 30, num_pairs: int = 30, valid: Tensor | None = None) -> Path:
    """The full row-normalised confusion matrix for up to `max_classes` classes; for more (Kinetics' hundreds)
    a bar chart of the `num_pairs` most confused (true -> predicted) pairs. Unreadable videos (valid False) are
    left out: the network never saw them, so their "prediction" would show as a confusion that is not one
    (they count as wrong in the accuracies and are reported as `<split>/unreadable`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if valid is not None:
        logits, labels = logits[valid], labels[valid]
    matrix = confusion_matrix(logits, labels)
    k = matrix.shape[0]
    if k <= max_classes:
        fig, ax = plt.subplots(figsize=(2 + 0.35 * k, 1.5 + 0.35 * k))
        rows = matrix.double() / matrix.sum(1, keepdim=True).clamp(min=1)
        image = ax.imshow(rows.numpy(), cmap="Blues", vmin=0, vmax=1)
        ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true", title="confusion (row-normalised)")
        ax.set_xticklabels(class_names, rotation=90, fontsize=7)
        ax.set_yticklabels(class_names, fontsize=7)
        fig.colorbar(image, ax=ax, fraction=0.04)
    else:
        pairs = most_confused_pairs(matrix, num_pairs)
        fig, ax = plt.subplots(figsize=(9, 1 + 0.3 * max(len(pairs), 1)))
        ax.barh(range(len(pairs)), [c for _, _, c in pairs])
        ax.set_yticks(range(len(pairs)))
        ax.set_yticklabels([f"{class_names[t]} -> {class_names[p]}" for t, p, _ in pairs], fontsize=7)
        ax.invert_yaxis()
        ax.set(xlabel="videos", title=f"the {len(pairs)} most confused pairs (true -> predicted) of {k} classes")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def worst_classes(logits: Tensor, labels: Tensor, class_names: Sequence[str], valid: Tensor | None = None,
                  n: int = 10) -> list[dict[str, object]]:
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
        worst.append({"class": c, "name": class_names[c], "count": int(rows["count"][c]),
                      "top1": round(float(rows["top1"][c]), 6),
                      "confused_with": class_names[other] if wrong[other] > 0 else "",
                      "confused_count": int(wrong[other])})
    return worst


def write_rows_csv(path: Path, rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> Path:
    with Path(path).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


WORST_COLUMNS = ("class", "name", "count", "top1", "confused_with", "confused_count")


def choose_samples(logits: Tensor, labels: Tensor, valid: Tensor | None = None, n: int = 8) -> list[int]:
    """Positions of up to `n` readable, labelled videos to show: the most confident mistakes first (what a model
    gets wrong is the interesting part), then the most confident correct ones, half and half when both exist."""
    confidence, predicted = (t[:, 0] for t in logits.float().softmax(-1).topk(1, dim=-1))  # as the metric picks
    usable = labels >= 0 if valid is None else (labels >= 0) & valid
    wrong = [int(i) for i in confidence.argsort(descending=True) if usable[i] and predicted[i] != labels[i]]
    right = [int(i) for i in confidence.argsort(descending=True) if usable[i] and predicted[i] == labels[i]]
    n_wrong = min(len(wrong), max(n - len(right), n // 2))
    return wrong[:n_wrong] + right[:n - n_wrong]


def sample_caption(position: int, logits: Mapping[str, Tensor], labels: Mapping[str, Tensor],
                   classes: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """True and predicted (top-1, with its probability) class names of one video, per head."""
    caption = {}
    for head, head_logits in logits.items():
        p, c = (t[0] for t in head_logits[position].float().softmax(-1).topk(1))
        names = classes[head]
        prefix = f"{head}_" if head else ""
        caption[f"{prefix}true"] = names[int(labels[head][position])]
        caption[f"{prefix}predicted"] = f"{names[int(c)]} ({100 * float(p):.0f}%)"
    return caption


def frame_strip(frames: "np.ndarray", max_frames: int = 8) -> "np.ndarray":
    """Up to `max_frames` evenly spaced frames of a (T, H, W, 3) uint8 clip side by side: (H, n * W, 3)."""
    import numpy as np

    keep = np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int)
    return np.concatenate(list(frames[keep]), axis=1)


def plot_samples(path: Path, strips: Sequence["np.ndarray"], captions: Sequence[Mapping[str, str]]) -> Path:
    """One row per sample clip: its frame strip under a title with the true and predicted labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(strips), 1, figsize=(8, 1.6 * len(strips)), squeeze=False)
    for ax, strip, caption in zip(axes[:, 0], strips, captions):
        ax.imshow(strip, interpolation="nearest")
        ax.set_title("   ".join(f"{k}: {v}" for k, v in caption.items()), fontsize=8, loc="left")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def write_outputs(output_dir: Path, split: str, logits: Mapping[str, Tensor], labels: Mapping[str, Tensor],
                  classes: Mapping[str, Sequence[str]], valid: Tensor | None = None) -> dict[str, object]:
    """Mean per-class accuracy (metrics `<split>/[<head>_]mean_class_top1|top5`), and per head a per-class CSV,
    the worst classes (CSV) and a confusion PNG in `output_dir`. Only labelled videos count (an unlabelled split
    writes nothing). Returns {"metrics": {...}, "files": [paths]}."""
    output_dir = Path(output_dir)
    labelled = torch.stack([y >= 0 for y in labels.values()]).all(0)
    metrics: dict[str, float] = {}
    files: list[str] = []
    if not labelled.any():
        return {"metrics": metrics, "files": files}
    ok = None if valid is None else valid[labelled]
    for head, head_logits in logits.items():
        x, y = head_logits[labelled], labels[head][labelled]
        prefix = f"{split}/{head}_" if head else f"{split}/"
        suffix = f"_{head}" if head else ""
        metrics[f"{prefix}mean_class_top1"] = mean_class_accuracy(x, y, ok, 1)
        if x.shape[-1] > 5:
            metrics[f"{prefix}mean_class_top5"] = mean_class_accuracy(x, y, ok, 5)
        files.append(str(write_per_class_csv(output_dir / f"per_class_{split}{suffix}.csv", x, y, classes[head], ok)))
        files.append(str(write_rows_csv(output_dir / f"worst_classes_{split}{suffix}.csv",
                                        worst_classes(x, y, classes[head], ok), WORST_COLUMNS)))
        files.append(str(plot_confusion(output_dir / f"confusion_{split}{suffix}.png", x, y, classes[head],
                                            valid=ok)))
    return {"metrics": metrics, "files": files}


# -------------------------------------------------------------------------------------- EPIC-KITCHENS-100
def read_class_column(path: Path, column: str) -> list[int]:
    with Path(path).open(newline="", encoding="utf-8") as f:
        return [int(row[column]) for row in csv.DictReader(f)]


def epic_breakdown(noun: Tensor, verb: Tensor, noun_labels: Tensor, verb_labels: Tensor,
                   participants: Sequence[str], unseen: set[str], tail_nouns: set[int], tail_verbs: set[int],
                   split: str, valid: Tensor | None = None) -> dict[str, float]:
    """The official action-recognition table: verb, noun and action top-1/top-5 for all segments (overall),
    segments of unseen participants, and tail classes (verb: segments of a tail verb; noun: of a tail noun;
    action: of a tail verb or a tail noun, as the official evaluation script masks them). Micro accuracies,
    actions ranked by the product of the verb and noun softmaxes."""
    correct = {}
    for k in (1, 5):
        correct[f"verb_top{k}"] = correct_at(verb, verb_labels, valid, k)
        correct[f"noun_top{k}"] = correct_at(noun, noun_labels, valid, k)
        action = action_topk_correct(noun, verb, noun_labels, verb_labels, k)
        correct[f"action_top{k}"] = action & valid if valid is not None else action
    tail_verb = torch.tensor([int(v) in tail_verbs for v in verb_labels.tolist()], dtype=torch.bool)
    tail_noun = torch.tensor([int(n) in tail_nouns for n in noun_labels.tolist()], dtype=torch.bool)
    masks = {
        "overall": torch.ones_like(tail_verb),
        "unseen": torch.tensor([p in unseen for p in participants], dtype=torch.bool),
        "tail": None,  # per head, below
    }
    metrics = {}
    for subset, mask in masks.items():
        for name, hits in correct.items():
            if subset == "tail":
                mask = tail_verb if name.startswith("verb") else tail_noun if name.startswith("noun") else tail_verb | tail_noun
            if mask.any():
                metrics[f"{split}/epic_{subset}/{name}"] = float(hits[mask].double().mean())
    return metrics


def epic_submission(ids: Sequence[str], noun: Tensor, verb: Tensor, sls_pt: int, sls_tl: int, sls_td: int,
                    top_actions: int = 100) -> dict:
    """The EPIC-KITCHENS-100 action-recognition challenge JSON (version 0.2): per narration id the softmax scores
    of every verb and noun class, and the `top_actions` best "verb,noun" pairs by the product of the two."""
    for name, level in (("sls_pt", sls_pt), ("sls_tl", sls_tl), ("sls_td", sls_td)):
        if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 5:
            raise ValueError(f"eval.submission.{name}={level!r}: the supervision levels are integers 0-5 "
                             "(see the EPIC-KITCHENS challenge guidelines)")
    if len(set(ids)) != len(ids):
        raise ValueError("every narration id must appear once in a submission")
    p_noun, p_verb = noun.double().softmax(-1), verb.double().softmax(-1)
    results = {}
    for i, narration in enumerate(ids):
        joint = p_verb[i][:, None] * p_noun[i][None, :]  # (verbs, nouns)
        scores, flat = joint.flatten().topk(min(top_actions, joint.numel()))
        n_nouns = joint.shape[1]
        results[narration] = {
            "verb": {str(c): float(s) for c, s in enumerate(p_verb[i].tolist())},
            "noun": {str(c): float(s) for c, s in enumerate(p_noun[i].tolist())},
            "action": {f"{int(f) // n_nouns},{int(f) % n_nouns}": float(s) for s, f in zip(scores, flat)},
        }
    return {"version": "0.2", "challenge": "action_recognition", "sls_pt": sls_pt, "sls_tl": sls_tl,
            "sls_td": sls_td, "results": results}


def write_json(path: Path, value: dict) -> Path:
    from vivit.atomic import write_atomically

    return write_atomically(path, json.dumps(value))

"""Accuracies from logits, as plain tensor functions: top-k per example, the joint top-k of two heads (EPIC's
actions), per-class and mean per-class accuracy, the confusion matrix. Used by the LightningModule's running
metrics and by the whole-split evaluation alike, so the two count the same way."""

from __future__ import annotations

import torch
from torch import Tensor


def topk_correct(logits: Tensor, labels: Tensor, k: int) -> Tensor:
    """Per-example bool: is the label among the k highest logits."""
    k = min(k, logits.shape[-1])
    return (logits.topk(k, dim=-1).indices == labels[:, None]).any(dim=-1)


def joint_topk_correct(first: Tensor, second: Tensor, first_labels: Tensor, second_labels: Tensor, k: int) -> Tensor:
    """Per-example bool for a pair of heads (EPIC-KITCHENS' action = noun x verb): rank the (first, second) pairs by
    the product of the two softmaxes. Top-1 equals "both argmaxes right"; top-5 needs the joint ranking (the
    official EPIC evaluation)."""
    joint = first.float().softmax(-1)[:, :, None] * second.float().softmax(-1)[:, None, :]
    pair_labels = first_labels * second.shape[-1] + second_labels
    return topk_correct(joint.flatten(1), pair_labels, k)


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

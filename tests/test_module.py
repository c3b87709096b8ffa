"""The LightningModule's loss, metrics, mixup, schedule and multi-view averaging, against references."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional.classification import multiclass_accuracy

from vivit.evaluation.metrics import joint_topk_correct as action_topk_correct
from vivit.evaluation.metrics import topk_correct
from vivit.training.module import VideoClassifier, mixup, warmup_cosine

EPIC_HEADS = {"action": ("noun", "verb")}  # what the EPIC-KITCHENS index declares (combined_heads)


class LinearVideoNet(nn.Module):
    """A tiny stand-in backbone: mean over time and space, then a linear layer per head."""

    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = num_classes
        sizes = num_classes if isinstance(num_classes, dict) else {"": num_classes}
        self.heads = nn.ModuleDict({name or "single": nn.Linear(3, k) for name, k in sizes.items()})

    def forward(self, video):
        features = video.mean(dim=(2, 3, 4))
        out = {name: head(features) for name, head in self.heads.items()}
        return out if isinstance(self.num_classes, dict) else out["single"]


def make_module(num_classes=10, **kwargs):
    return VideoClassifier(
        LinearVideoNet(num_classes), optimizer=lambda params: torch.optim.SGD(params, lr=0.1), **kwargs
    )


def test_warmup_cosine_matches_scenic_formula():
    warmup, total = 10, 110
    assert warmup_cosine(0, warmup, total) == 0.0
    assert warmup_cosine(5, warmup, total) == pytest.approx(0.5)
    assert warmup_cosine(10, warmup, total) == pytest.approx(1.0)
    assert warmup_cosine(60, warmup, total) == pytest.approx(0.5)  # half-way through the cosine
    assert warmup_cosine(110, warmup, total) == pytest.approx(0.0, abs=1e-12)
    s = 37
    expected = 0.5 * (1 + math.cos(math.pi * (s - warmup) / (total - warmup)))
    assert warmup_cosine(s, warmup, total) == pytest.approx(expected)


@pytest.mark.parametrize("k", [1, 5])
def test_topk_correct_equals_torchmetrics_micro_accuracy(k):
    torch.manual_seed(0)
    logits, labels = torch.randn(200, 12), torch.randint(0, 12, (200,))
    ours = topk_correct(logits, labels, k).float().mean()
    reference = multiclass_accuracy(logits, labels, num_classes=12, top_k=k, average="micro")
    assert ours.item() == pytest.approx(reference.item())


def test_action_top1_is_both_heads_right_and_top5_uses_joint_ranking():
    torch.manual_seed(0)
    noun, verb = torch.randn(300, 7), torch.randn(300, 5)
    noun_y, verb_y = torch.randint(0, 7, (300,)), torch.randint(0, 5, (300,))
    both = (noun.argmax(1) == noun_y) & (verb.argmax(1) == verb_y)
    assert torch.equal(action_topk_correct(noun, verb, noun_y, verb_y, 1), both)
    # top-5 by brute force over the 35 pairs
    joint = noun.softmax(1)[:, :, None] * verb.softmax(1)[:, None, :]
    top5 = joint.flatten(1).topk(5).indices
    pairs = torch.stack([top5 // 5, top5 % 5], -1)
    expected = ((pairs[..., 0] == noun_y[:, None]) & (pairs[..., 1] == verb_y[:, None])).any(1)
    assert torch.equal(action_topk_correct(noun, verb, noun_y, verb_y, 5), expected)


def test_mixup_pairs_example_i_with_reversed_batch_and_same_lambda_for_every_head():
    torch.manual_seed(0)
    video = torch.randn(4, 3, 2, 4, 4)
    targets = {
        "noun": F.one_hot(torch.tensor([0, 1, 2, 3]), 5).float(),
        "verb": F.one_hot(torch.tensor([1, 1, 0, 0]), 2).float(),
    }
    mixed, mixed_targets = mixup(video, targets, alpha=0.3)
    lam = mixed_targets["noun"][0, 0].item()  # example 0 (class 0) mixed with example 3 (class 3)
    assert torch.allclose(mixed, lam * video + (1 - lam) * video.flip(0))
    assert mixed_targets["noun"][0, 3].item() == pytest.approx(1 - lam)
    assert mixed_targets["verb"][0, 1].item() == pytest.approx(lam)  # verb 1 (own) vs verb 0 (partner)
    assert torch.allclose(mixed_targets["verb"].sum(1), torch.ones(4))


def test_loss_is_soft_cross_entropy_with_label_smoothing_mean_over_heads():
    torch.manual_seed(0)
    module = make_module({"noun": 6, "verb": 4}, label_smoothing=0.2)
    logits = {"noun": torch.randn(8, 6), "verb": torch.randn(8, 4)}
    labels = {"noun": torch.randint(0, 6, (8,)), "verb": torch.randint(0, 4, (8,))}
    loss = module._loss(logits, module._targets(labels))
    expected = (
        F.cross_entropy(logits["noun"], labels["noun"], label_smoothing=0.2)
        + F.cross_entropy(logits["verb"], labels["verb"], label_smoothing=0.2)
    ) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_multi_view_test_averages_raw_logits_over_views():
    torch.manual_seed(0)
    module = make_module(10, views_per_forward=2)  # 6 views in 3 chunks
    video = torch.randn(3, 6, 3, 2, 4, 4)
    averaged = module.forward_views(video)[""]
    per_view = torch.stack([module(video[:, v])[""] for v in range(6)], 1)
    assert torch.allclose(averaged, per_view.mean(1), atol=1e-6)


def test_unreadable_videos_count_as_wrong_not_dropped():
    module = make_module(3)
    logits = {"": torch.tensor([[5.0, 0, 0], [5.0, 0, 0], [5.0, 0, 0], [0, 5.0, 0]])}
    labels = {"": torch.tensor([0, 0, 0, 0])}
    valid = torch.tensor([True, True, False, True])
    module._update_metrics = VideoClassifier._update_metrics.__get__(module)
    module.log = lambda *a, **k: None
    module._update_metrics("test", logits, labels, valid)
    assert module.metrics["test_top1"].compute().item() == pytest.approx(0.5)  # 2 right of 4, not 2 of 3


def test_metric_names_single_and_epic_heads():
    assert make_module(10)._metric_names() == ["top1", "top5"]
    assert make_module(4)._metric_names() == ["top1"]  # no top-5 with <= 5 classes, as scenic
    names = make_module({"noun": 300, "verb": 97}, combined_heads=EPIC_HEADS)._metric_names()
    assert names == ["noun_top1", "noun_top5", "verb_top1", "verb_top5", "action_top1", "action_top5", "top1"]


def test_headline_top1_of_several_heads_is_all_heads_right_and_equals_action_top1():
    torch.manual_seed(0)
    module = make_module({"noun": 7, "verb": 6}, combined_heads=EPIC_HEADS)
    logits = {"noun": torch.randn(64, 7), "verb": torch.randn(64, 6)}
    labels = {"noun": torch.randint(0, 7, (64,)), "verb": torch.randint(0, 6, (64,))}
    correct = module._correct(logits, labels)
    assert torch.equal(correct["top1"], correct["action_top1"])
    assert torch.equal(correct["top1"], correct["noun_top1"] & correct["verb_top1"])

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


# ------------------------------------------------------------------------------------------------- gradient clipping
CLIP = 0.5


def clip_batches(rank: int) -> list[dict]:
    """Four micro-batches of two clips for one rank, bright enough that every gradient is longer than CLIP."""
    gen = torch.Generator().manual_seed(rank)
    return [
        {"video": 4 * torch.randn(2, 3, 2, 2, 2, generator=gen), "label": torch.randint(0, 10, (2,), generator=gen)}
        for _ in range(4)
    ]


def clipped_run(batches: list[dict], scope: str, devices: int = 1) -> nn.Module:
    """One optimiser step of a 2-micro-batch accumulation through Lightning; returns the backbone after it."""
    import lightning as L

    torch.manual_seed(0)
    module = make_module(warmup_epochs=0.0, grad_clip_scope=scope)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        max_steps=1,
        accumulate_grad_batches=2,
        gradient_clip_val=CLIP,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    return module.net


def reference_step(rank_batches: list[list[dict]], scope: str) -> dict[str, torch.Tensor]:
    """SGD (lr 0.1) on the mean over ranks and micro-batches of the gradients, each micro-batch's gradient clipped
    to CLIP first (device_batch, scenic's order) or their mean clipped once (global)."""
    torch.manual_seed(0)
    net = make_module().net
    grads = []
    for batches in rank_batches:
        for batch in batches[:2]:  # the first optimiser step accumulates two micro-batches
            net.zero_grad()
            F.cross_entropy(net(batch["video"]), batch["label"]).backward()
            grads.append([p.grad.clone() for p in net.parameters()])
    if scope == "device_batch":
        grads = [
            [g * min(1.0, CLIP / (torch.cat([x.flatten() for x in gs]).norm() + 1e-6)) for g in gs] for gs in grads
        ]
    mean = [torch.stack(gs).mean(0) for gs in zip(*grads)]
    if scope == "global":
        mean = [g * min(1.0, CLIP / (torch.cat([x.flatten() for x in mean]).norm() + 1e-6)) for g in mean]
    return {name: p.detach() - 0.1 * g for (name, p), g in zip(net.named_parameters(), mean)}


@pytest.mark.parametrize("scope", ["global", "device_batch"])
def test_gradient_clipping_scope_on_one_device(scope):
    batches = clip_batches(0)
    trained = dict(clipped_run(batches, scope).named_parameters())
    expected = reference_step([batches], scope)
    other = reference_step([batches], "global" if scope == "device_batch" else "device_batch")
    for name, value in expected.items():
        torch.testing.assert_close(trained[name], value, rtol=1e-5, atol=1e-6)
    assert any(not torch.allclose(expected[n], other[n]) for n in expected)  # the two scopes differ here


def _ddp_rank(rank: int, port: int, out: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", LOCAL_RANK=str(rank))
    os.environ.update(NODE_RANK="0", RANK=str(rank))
    torch.set_num_threads(1)
    net = clipped_run(clip_batches(rank), "device_batch", devices=2)
    if rank == 0:
        torch.save({k: v.detach() for k, v in net.state_dict().items()}, out)


def test_device_batch_clipping_under_ddp_clips_before_the_mean_over_ranks(tmp_path):
    """2 CPU processes (gloo): each rank's micro-batches are clipped before DDP's mean, which the module does once
    the clipping is done (DDP's own all-reduce is held back by a no-op communication hook)."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # fork: the ranks share this process's imports (spawning two fresh interpreters costs 15-30 s here)
    mp.start_processes(_ddp_rank, args=(port, str(tmp_path / "net.pt")), nprocs=2, start_method="fork")
    trained = torch.load(tmp_path / "net.pt", weights_only=True)
    expected = reference_step([clip_batches(0), clip_batches(1)], "device_batch")
    for name, value in expected.items():
        torch.testing.assert_close(trained[name], value, rtol=1e-5, atol=1e-6)

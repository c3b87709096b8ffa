"""The LightningModule: loss, mixup, running metrics, optimiser/schedule and the multi-view test forward.

Everything model-specific lives in the backbone (`vivit.models`); this module only trains and evaluates it. It
handles one head (logits `(B, K)`) and several named heads (a dict of logits, e.g. EPIC-KITCHENS noun and verb)
with the same code path: a single head is treated as the head named "" internally. Heads the dataset scores
jointly (`combined_heads`, EPIC's action = noun x verb) get their own metrics.

What is not training stays out: the evaluation steps return each video's logits for the whole-split evaluation
(vivit.evaluation.split), unreadable videos are counted by vivit.training.callbacks.UnreadableVideos, and the
run's config reaches checkpoints through vivit.weights.lightning.SelfDescribingCheckpoints.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributed.algorithms.ddp_comm_hooks.debugging_hooks import noop_hook
from torch.distributed.fsdp import FullyShardedDataParallel
from torch.nn.parallel import DistributedDataParallel
from torchmetrics import MeanMetric

from vivit.common.checks import check_choice
from vivit.evaluation.metrics import joint_topk_correct, topk_correct

Logits = dict[str, Tensor]
Labels = dict[str, Tensor]
# Metric names use "top1"/"top5"; several heads add "<head>_top1", ... (EPIC: "action_top1"), and "top1" is always
# the headline metric (several heads: all heads right), so checkpointing can monitor `val/top1` for any dataset.
STAGES = ("train", "val", "test")
# Where the gradient is clipped to trainer.gradient_clip_val: `global`, the step's gradient (after the mean over
# devices and accumulated micro-batches, Lightning's); `device_batch`, each forward pass's gradient before that mean,
# as scenic clips each device's gradient before its pmean (scenic/projects/vivit/train_utils.py, train_step). A
# forward pass holds data.batch_size clips, one scenic device's batch, so the arithmetic does not depend on how
# many devices share the global batch.
GRAD_CLIP_SCOPES = ("global", "device_batch")


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Scenic's 'constant * cosine_decay * linear_warmup' factor: 0 at step 0, 1 after warmup, 0 at the end."""
    warmup = min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0
    progress = min(1.0, max(0.0, step - warmup_steps) / max(1, total_steps - warmup_steps))
    return warmup * 0.5 * (1.0 + math.cos(math.pi * progress))


def as_head_dict(x: Tensor | Mapping[str, Tensor]) -> dict[str, Tensor]:
    return dict(x) if isinstance(x, Mapping) else {"": x}


def mixup(video: Tensor, targets: dict[str, Tensor], alpha: float) -> tuple[Tensor, dict[str, Tensor]]:
    """Scenic's mixup: one lambda ~ Beta(alpha, alpha) per batch, example i mixed with example B-1-i.

    `targets` are (soft) one-hot per head; every head is mixed with the same lambda.
    """
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    mixed = lam * video + (1 - lam) * video.flip(0)
    return mixed, {name: lam * t + (1 - lam) * t.flip(0) for name, t in targets.items()}


def _unwrapped(name: str) -> str:
    """A parameter's name without the wrappers' parts (DDP's `module.`, FSDP's and activation checkpointing's)."""
    for part in ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module."):
        name = name.replace(part, "")
    return name.removeprefix("module.")


class VideoClassifier(L.LightningModule):
    """Trains a video backbone with cross-entropy (label smoothing, mixup) and reports micro top-1/top-5.

    Args:
        net: the backbone, `(B, C, T, H, W) -> logits` or a dict of logits per head.
        optimizer: a partial optimiser (Hydra `_partial_: true`), called with the parameters.
        warmup_epochs: linear warmup length (scenic: 2.5 epochs), then per-step cosine decay to 0.
        label_smoothing: `y * (1 - ls) + ls / K`, per head (scenic applies it after mixup).
        mixup_alpha: mixup with Beta(alpha, alpha); 0 disables it.
        views_per_forward: how many test views go through the network at once (bounds memory in multi-view test).
        compile: wrap the backbone in `torch.compile`.
        combined_heads: pairs of heads scored jointly, name -> (head, head) (the dataset's `combined_heads`).
        grad_clip_scope: `global` | `device_batch`: which gradient trainer.gradient_clip_val clips (`GRAD_CLIP_SCOPES`).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        warmup_epochs: float = 2.5,
        label_smoothing: float = 0.0,
        mixup_alpha: float = 0.0,
        views_per_forward: int = 8,
        compile: bool = False,
        combined_heads: Mapping[str, Sequence[str]] | None = None,
        grad_clip_scope: str = "global",
    ) -> None:
        super().__init__()
        check_choice("optim.grad_clip_scope", grad_clip_scope, GRAD_CLIP_SCOPES)
        combined_heads = {str(k): list(v) for k, v in (combined_heads or {}).items()}  # plain, for the hparams
        self.save_hyperparameters(ignore=["net", "optimizer"], logger=False)
        self.net = net
        self.optimizer = optimizer
        self.num_classes = self._head_sizes(net.num_classes)
        self.combined_heads = {
            name: pair for name, pair in combined_heads.items() if set(pair) <= set(self.num_classes)
        }
        # one running mean of per-example correctness per stage and metric ("val_top1", ...): micro accuracy
        self.metrics = nn.ModuleDict(
            {f"{stage}_{name}": MeanMetric() for stage in STAGES for name in self._metric_names()}
        )
        # the evaluation loss as a mean over videos, summed over DDP ranks like the accuracies (exact on any count)
        self.losses = nn.ModuleDict({stage: MeanMetric() for stage in ("val", "test")})
        # each parameter's rank before any wrapping: FSDP (use_orig_params) exposes the sharded ones as 1-D views
        self._param_ndim = {name: p.ndim for name, p in self.named_parameters()}
        self._earlier_gradients: list[Tensor | None] = []  # device_batch clipping: the micro-batches before this one

    @staticmethod
    def _head_sizes(num_classes: int | Mapping[str, int]) -> dict[str, int]:
        if isinstance(num_classes, Mapping):
            return {str(k): int(v) for k, v in num_classes.items()}
        return {"": int(num_classes)}

    def _metric_names(self) -> list[str]:
        names = []
        for head, k in self.num_classes.items():
            prefix = f"{head}_" if head else ""
            names.append(f"{prefix}top1")
            if k > 5:
                names.append(f"{prefix}top5")
        for name in self.combined_heads:
            names += [f"{name}_top1", f"{name}_top5"]
        if len(self.num_classes) > 1:
            names.append("top1")  # every head right (EPIC: = action top-1): one headline metric to monitor
        return names

    # ----------------------------------------------------------------------------------------------- forward
    def forward(self, video: Tensor) -> dict[str, Tensor]:
        return as_head_dict(self.net(video))

    def forward_views(self, video: Tensor) -> dict[str, Tensor]:
        """Multi-view test: `(B, V, C, T, H, W)` -> logits averaged over the V views (raw logits, as scenic)."""
        b, v = video.shape[:2]
        flat = video.flatten(0, 1)
        chunks = [self(chunk) for chunk in flat.split(self.hparams.views_per_forward * b)]
        return {name: torch.cat([c[name] for c in chunks]).view(b, v, -1).mean(1) for name in chunks[0]}

    # ----------------------------------------------------------------------------------------------- loss
    def _targets(self, labels: Labels) -> dict[str, Tensor]:
        # unlabelled examples (label -1, e.g. a benchmark's hidden test split) get an all-zero target: no loss
        return {
            name: F.one_hot(labels[name].clamp(min=0), k).float() * (labels[name] >= 0)[:, None]
            for name, k in self.num_classes.items()
        }

    def _loss(self, logits: Logits, targets: dict[str, Tensor]) -> Tensor:
        """Mean over heads of soft-target cross-entropy with label smoothing (scenic's multi-head loss)."""
        ls = self.hparams.label_smoothing
        losses = []
        for name, t in targets.items():
            labelled = t.sum(-1) > 0
            t = (t * (1 - ls) + ls / t.shape[-1])[labelled]
            log_p = F.log_softmax(logits[name][labelled].float(), dim=-1)
            losses.append(torch.sum(-t * log_p, dim=-1).mean() if labelled.any() else log_p.sum() * 0)
        return torch.stack(losses).mean()

    # ----------------------------------------------------------------------------------------------- metrics
    def _correct(self, logits: Logits, labels: Labels) -> dict[str, Tensor]:
        correct = {}
        for head, k in self.num_classes.items():
            prefix = f"{head}_" if head else ""
            correct[f"{prefix}top1"] = topk_correct(logits[head], labels[head], 1)
            if k > 5:
                correct[f"{prefix}top5"] = topk_correct(logits[head], labels[head], 5)
        for name, (first, second) in self.combined_heads.items():
            for k in (1, 5):
                correct[f"{name}_top{k}"] = joint_topk_correct(
                    logits[first], logits[second], labels[first], labels[second], k
                )
        if len(self.num_classes) > 1:
            correct["top1"] = torch.stack([correct[f"{head}_top1"] for head in self.num_classes]).all(0)
        return correct

    def _update_metrics(self, stage: str, logits: Logits, labels: Labels, valid: Tensor | None = None) -> None:
        labelled = torch.stack([y >= 0 for y in labels.values()]).all(0)
        if not labelled.any():  # an unlabelled split (e.g. EPIC's test set): predictions only
            return
        for name, correct in self._correct(logits, labels).items():
            if valid is not None:  # an unreadable video counts as wrong: it stays in the denominator
                correct = correct & valid
            metric = self.metrics[f"{stage}_{name}"]
            metric.update(correct[labelled].float())
            self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, prog_bar=name.endswith("top1"))

    def _labels(self, batch: Mapping[str, Any]) -> Labels:
        return as_head_dict(batch["label"])

    # ----------------------------------------------------------------------------------------------- steps
    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        video, labels = batch["video"], self._labels(batch)
        labelled = torch.stack([y >= 0 for y in labels.values()]).all(0)
        if labelled.any() and not labelled.all():  # unlabelled rows take no part: not in the loss, not mixed in
            video, labels = video[labelled], {name: y[labelled] for name, y in labels.items()}
        targets = self._targets(labels)
        if self.hparams.mixup_alpha > 0:
            video, targets = mixup(video, targets, self.hparams.mixup_alpha)
        logits = self(video)
        loss = self._loss(logits, targets)
        # sync_dist: the logged loss is the mean over ranks (every rank trains on an equal share of a batch)
        self.log(
            "train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=video.shape[0], sync_dist=True
        )
        with torch.no_grad():
            self._update_metrics("train", logits, labels)
        return loss

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step("val", batch)

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, Any]:
        return self._eval_step("test", batch)

    def _eval_step(self, stage: str, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Loss and running metrics; returns each video's logits (views averaged) for the whole-split evaluation."""
        video, labels = batch["video"], self._labels(batch)
        logits = self.forward_views(video) if video.ndim == 6 else self(video)
        loss = self._loss(logits, self._targets(labels))
        self.losses[stage].update(loss, weight=video.shape[0])
        self.log(f"{stage}/loss", self.losses[stage], on_step=False, on_epoch=True)
        valid = batch.get("valid", torch.ones(video.shape[0], dtype=torch.bool, device=video.device))
        self._update_metrics(stage, logits, labels, valid)
        return {"index": batch["index"], "valid": valid, "logits": logits}

    # ----------------------------------------------------------------------------------------------- optim
    def parameter_groups(self) -> list[dict[str, Any]]:
        """timm's weight-decay convention: no decay for 1-D parameters (biases, norm scales and shifts) and the
        backbone's `no_weight_decay()` names (position embeddings, CLS tokens); the optimiser's own
        weight_decay for the rest. (The paper's SGD recipe has no weight decay, so this only changes AdamW.)"""
        named = getattr(self.net, "no_weight_decay", None)
        skip = tuple(f".{name}" for name in (named() if named else ()))  # names relative to the backbone
        model = self.trainer.model if self._trainer is not None else self  # the strategy's wrapper, if any
        decay, no_decay = [], []
        for name, param in model.named_parameters():
            if param.requires_grad:
                ndim = self._param_ndim.get(_unwrapped(name), param.ndim)
                (no_decay if ndim <= 1 or f".{name}".endswith(skip) else decay).append(param)
        return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]

    # ----------------------------------------------------------------------------------------------- clipping
    @property
    def _clips_each_device_batch(self) -> bool:
        return self.hparams.get("grad_clip_scope") == "device_batch" and bool(self.trainer.gradient_clip_val)

    def on_fit_start(self) -> None:
        if not self._clips_each_device_batch:
            return
        # (FSDP's sharded and fp16's scaled gradients cannot be clipped this way: vivit.runtime.preflight refuses them)
        model = self.trainer.strategy.model
        if isinstance(model, DistributedDataParallel):
            # DDP's backward hands each bucket to this hook instead of averaging it: the gradients stay local
            # until they are clipped, and on_before_optimizer_step averages them over the ranks
            model.register_comm_hook(None, noop_hook)

    def on_before_backward(self, loss: Tensor) -> None:
        if self._clips_each_device_batch:  # set the earlier micro-batches' (clipped) gradients aside
            self._earlier_gradients = [p.grad for p in self.parameters()]
            for p in self.parameters():
                p.grad = None

    def on_after_backward(self) -> None:
        """device_batch: clip this micro-batch's gradient, then add the earlier ones back. Lightning divided the
        loss by the accumulation A, so the micro-batch's own gradient is A times this one: its norm is clipped to
        gradient_clip_val / A here."""
        if not self._clips_each_device_batch:
            return
        params = [p for p in self.parameters() if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, self.trainer.gradient_clip_val / self.trainer.accumulate_grad_batches)
        for p, earlier in zip(self.parameters(), self._earlier_gradients):
            if earlier is not None:
                p.grad = earlier if p.grad is None else p.grad.add_(earlier)
        self._earlier_gradients = []

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """device_batch under DDP: the mean over ranks of the clipped gradients (DDP's all-reduce was held back)."""
        if not self._clips_each_device_batch or self.trainer.world_size == 1:
            return
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        flat /= self.trainer.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """device_batch: already clipped, micro-batch by micro-batch (on_after_backward). Under FSDP the gradients
        are sharded: the root FSDP module clips by the norm over all shards (Lightning's FSDP precision plugin
        refuses norm clipping, and per-shard clipping would be wrong)."""
        if self._clips_each_device_batch:
            return
        model = self.trainer.strategy.model
        by_norm = gradient_clip_algorithm in (None, "norm")
        if gradient_clip_val and by_norm and isinstance(model, FullyShardedDataParallel):
            model.clip_grad_norm_(gradient_clip_val)
            return
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.optimizer(params=self.parameter_groups())
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        max_epochs = self.trainer.max_epochs if self.trainer.max_epochs and self.trainer.max_epochs > 0 else 1
        warmup_steps = round(self.hparams.warmup_epochs * total_steps / max_epochs)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, warmup_steps, total_steps)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # ----------------------------------------------------------------------------------------------- setup
    def configure_model(self) -> None:
        # nn.Module.compile() compiles in place, so checkpoint keys stay free of `_orig_mod.` prefixes.
        if self.hparams.compile and not getattr(self, "_compiled", False):
            self.net.compile()
            self._compiled = True

"""Evaluation on ranks with uneven shares (issue 18, item 4): every rank runs the same number of batches (padding,
marked and dropped), so FSDP's forward and per-step collectives never wait for a finished rank, and every video is
scored exactly once. 5 test videos on 2 gloo ranks, test_batch_size=1, 4x3 views."""

from __future__ import annotations

import multiprocessing
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from vivit.datamodules.datamodule import PADDING, PaddedDistributedSampler, VideoDataset
from vivit.datamodules.records import VideoRecord
from vivit.datamodules.transforms import EvalTransform
from vivit.evaluation.split import Scored
from vivit.models import block_classes, build_model

VIDEOS, VIEWS = 5, (4, 3)
TINY = dict(num_classes=4, img_size=32, num_frames=8, tubelet_size=(2, 8, 8), embed_dim=32, depth=1, num_heads=2)


class Frames:
    """Frames from memory (a VideoDataset `source`): 16 grey 36x48 frames per video, shade = the video's number."""

    def length(self, i: int) -> int:
        return 16

    def frames(self, i: int, indices: np.ndarray) -> np.ndarray:
        return np.full((len(indices), 36, 48, 3), 10 * i, dtype=np.uint8)


def test_dataset(heads=None) -> VideoDataset:
    records = [
        VideoRecord(Path(f"v{i}.mp4"), i % 4 if heads is None else dict.fromkeys(heads, i % 4), f"v{i}")
        for i in range(VIDEOS)
    ]
    transform = EvalTransform(32, VIEWS[1], (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    return VideoDataset(records, "test", 8, 1, 36, transform, VIEWS, heads, source=Frames())


test_dataset.__test__ = False  # a helper, not a test


@pytest.mark.parametrize(("items", "world"), [(5, 2), (5, 4), (3, 4), (8, 2), (1, 2)])
def test_every_rank_gets_as_many_items_and_every_item_is_once_on_one_rank(items, world):
    dataset = list(range(items))
    shares = [list(PaddedDistributedSampler(dataset, world, rank)) for rank in range(world)]
    assert {len(share) for share in shares} == {-(-items // world)}
    assert sorted(i for share in shares for i in share if i != PADDING) == list(range(items))


@pytest.mark.parametrize("heads", [None, ("verb", "noun")])
def test_a_padding_item_is_blank_unlabelled_and_marked(heads):
    item = test_dataset(heads)[PADDING]
    assert item["index"] == PADDING and item["valid"] and not item["video"].any()
    assert item["video"].shape == test_dataset(heads)[4]["video"].shape == (12, 3, 8, 32, 32)
    assert item["label"] == (-1 if heads is None else dict.fromkeys(heads, -1))  # no loss, no metric


def test_the_split_evaluation_drops_the_padding():
    batches = [
        {"index": torch.tensor([0, 2]), "valid": torch.tensor([True, False]), "logits": {"": torch.eye(4)[:2]}},
        {"index": torch.tensor([1, PADDING]), "valid": torch.tensor([True, True]), "logits": {"": torch.eye(4)[2:]}},
    ]
    records = [VideoRecord(Path(f"v{i}.mp4"), i, f"v{i}") for i in range(3)]
    scored = Scored.of(batches, records)
    assert scored.index.tolist() == [0, 2, 1] and scored.valid.tolist() == [True, False, True]
    assert [r.path.name for r in scored.records] == ["v0.mp4", "v2.mp4", "v1.mp4"]
    assert torch.equal(scored.logits[""], torch.eye(4)[:3])


def _rank(rank: int, folder: str, queue) -> None:
    """One gloo rank: the whole test split through FSDP and through DDP (each step also all-reduces, as a logged
    `sync_dist` value does); a rank left waiting fails after 20 s instead of 30 minutes."""
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy
    from torch.nn.parallel import DistributedDataParallel as DDP

    try:
        torch.set_num_threads(1)
        torch.distributed.init_process_group(
            "gloo", init_method=f"file://{folder}/pg", rank=rank, world_size=2, timeout=timedelta(seconds=20)
        )
        dataset = test_dataset()
        loader = DataLoader(dataset, batch_size=1, sampler=PaddedDistributedSampler(dataset, 2, rank))
        seen = {}
        for name in ("fsdp", "ddp"):
            torch.manual_seed(0)
            net = build_model({"_target_": "vivit.models.FactorisedEncoderViViT", **TINY, "temporal_depth": 1})
            if name == "fsdp":
                model = FSDP(net, auto_wrap_policy=ModuleWrapPolicy(block_classes()), device_id=torch.device("cpu"))
            else:
                model = DDP(net)
            indices = []
            with torch.no_grad():
                for batch in loader:
                    model(batch["video"].flatten(0, 1))
                    torch.distributed.all_reduce(torch.ones(1))
                    indices += [i for i in batch["index"].tolist() if i != PADDING]
            every = [None, None]
            torch.distributed.all_gather_object(every, indices)
            seen[name] = sorted(i for share in every for i in share)
        queue.put((rank, "ok", seen))
    except Exception as error:  # noqa: BLE001 - reported to the test, which fails with it
        queue.put((rank, "error", f"{type(error).__name__}: {error}"))
        raise
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def test_fsdp_and_ddp_evaluate_five_videos_on_two_ranks_once_each_without_a_deadlock(tmp_path):
    context = multiprocessing.get_context("fork")  # no re-import per rank; gloo needs no CUDA
    queue = context.Queue()
    procs = [context.Process(target=_rank, args=(rank, str(tmp_path), queue)) for rank in range(2)]
    for proc in procs:
        proc.start()
    answers = sorted(queue.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
    assert [a[1] for a in answers] == ["ok", "ok"], answers
    for _, _, seen in answers:
        assert seen == {"fsdp": list(range(VIDEOS)), "ddp": list(range(VIDEOS))}

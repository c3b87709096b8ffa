"""trainer=fsdp (conf/trainer/fsdp.yaml). Lightning runs FSDPStrategy on CUDA only ("The strategy `fsdp` requires a
GPU accelerator"), so a training run with it is GPU-only and unmeasured here. On the CPU, these tests check the
configuration (every block class of the four variants is a wrapping and checkpointing unit, bf16, full state dict)
and the checkpoint path: the strategy from the config wraps the model on 2 gloo ranks with torch's FSDP, takes
training steps, and its full state dict is one file that eval.py's reader and `vivit.load_checkpoint` take."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from tests.conftest import compose_config
from vivit.models import VARIANTS, block_classes, build_model

TINY = ["model.img_size=32", "model.num_frames=8", "model.tubelet_size=[2,8,8]", "model.depth=2"]


def block_types(net: nn.Module) -> set[type]:
    """The classes of the transformer blocks: the members of the model's block lists."""
    return {type(block) for module in net.modules() if isinstance(module, nn.ModuleList) for block in module}


def wrap_classes(policy) -> set[type]:
    return set(policy._module_classes)  # torch's ModuleWrapPolicy keeps its classes here


def test_fsdp_config_wraps_and_checkpoints_every_block_class_of_the_four_variants(tmp_path):
    cfg = compose_config("train", ["trainer=fsdp", "model=vivit_ti_fe"], output_dir=tmp_path)
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.strategy.state_dict_type == "full"
    strategy = instantiate(cfg.trainer.strategy)
    assert type(strategy).__name__ == "FSDPStrategy"
    wrapped = wrap_classes(strategy.kwargs["auto_wrap_policy"])
    checkpointed = wrap_classes(strategy._activation_checkpointing_kwargs["auto_wrap_policy"])
    seen: set[type] = set()
    for variant, model_class in ((name, v.model_class) for name, v in VARIANTS.items()):
        small = dict(
            num_classes=8, img_size=32, num_frames=8, tubelet_size=(2, 8, 8), embed_dim=32, depth=2, num_heads=2
        )
        blocks = block_types(model_class(**small, **({"classifier": "gap"} if variant == "fsa" else {})))
        assert blocks and blocks <= wrapped and blocks <= checkpointed, (variant, blocks)
        seen |= blocks
    assert seen == wrapped == checkpointed == block_classes()  # and nothing else (not a whole encoder)


CLIP = 1e-3  # trainer.gradient_clip_val for the test: small enough that every step is clipped


def global_grad_norm(model) -> float:
    """The gradient norm over all ranks' shards."""
    local = sum(float(p.grad.float().pow(2).sum()) for p in model.parameters() if p.grad is not None)
    total = torch.tensor([local])
    torch.distributed.all_reduce(total)
    return float(total.sqrt())


def _rank(rank: int, world: int, folder: str, queue) -> None:
    """One gloo rank: the config's FSDPStrategy wraps the tiny model, two SGD steps, the full state dict."""
    try:
        torch.set_num_threads(1)
        from lightning.fabric.plugins.environments import LightningEnvironment
        from lightning.pytorch.plugins.precision import FSDPPrecision
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        from vivit.training.module import VideoClassifier
        from vivit.weights.lightning import run_config

        os.environ.update(LOCAL_RANK=str(rank), NODE_RANK="0", WORLD_SIZE=str(world))
        torch.distributed.init_process_group("gloo", init_method=f"file://{folder}/pg", rank=rank, world_size=world)
        cfg = compose_config(
            "train", ["trainer=fsdp", "model=vivit_ti_fe", *TINY, "data.num_classes=8"], output_dir=Path(folder)
        )
        strategy = instantiate(cfg.trainer.strategy)
        # what Lightning's FSDPStrategy.setup does, on CPU devices (Lightning itself refuses FSDP on the CPU)
        strategy.parallel_devices = [torch.device("cpu")] * world
        strategy.cluster_environment = LightningEnvironment()
        strategy.set_world_ranks()
        strategy.precision_plugin = FSDPPrecision(cfg.trainer.precision)
        torch.manual_seed(0)
        model_config = {**OmegaConf.to_container(cfg.model, resolve=True), "num_classes": 8}
        module = VideoClassifier(net=build_model(model_config), optimizer=None, warmup_epochs=0)
        vivit_config = run_config(cfg, 8, "1x1")  # what train.py puts in its checkpoints
        # Lightning's FSDPStrategy._setup_model, with device_id=cpu (it passes the device index, None on the CPU)
        from lightning.fabric.strategies.fsdp import _setup_activation_checkpointing

        model = FSDP(
            module,
            mixed_precision=strategy.mixed_precision_config,
            sharding_strategy=strategy.sharding_strategy,
            device_id=torch.device("cpu"),
            **strategy.kwargs,
        )
        _setup_activation_checkpointing(model, strategy._activation_checkpointing_kwargs)
        strategy.model = model
        torch.manual_seed(rank)  # each rank its own batch, as under DDP
        video = torch.randn(2, 3, 8, 32, 32)
        # what the trainer gives the module: its FSDP-wrapped self (parameter groups, gradient clipping)
        module._trainer = SimpleNamespace(
            model=model,
            strategy=strategy,
            precision_plugin=strategy.precision_plugin,
            gradient_clip_val=CLIP,
            gradient_clip_algorithm="norm",
        )
        groups = module.parameter_groups()
        optimizer = torch.optim.SGD(groups, lr=0.5)
        norms = []
        for _ in range(2):  # the head starts at zero (scenic's init): the first step moves only the head
            logits = model(video)
            loss = sum(v.float().logsumexp(-1).mean() for v in logits.values())
            loss.backward()
            before = global_grad_norm(model)
            module.configure_gradient_clipping(optimizer, CLIP, "norm")  # what Lightning calls before the step
            norms.append((before, global_grad_norm(model)))
            optimizer.step()
            optimizer.zero_grad()
        state = strategy.lightning_module_state_dict()
        with FSDP.summon_full_params(model, writeback=False, rank0_only=False):
            full = {
                n.replace("_fsdp_wrapped_module.", "").replace("_checkpoint_wrapped_module.", ""): p.detach().clone()
                for n, p in model.named_parameters()
            }
        if rank == 0:
            torch.save(
                {"norms": norms, "decay": len(groups[0]["params"]), "no_decay": len(groups[1]["params"])},
                f"{folder}/step_info.pt",
            )
            checkpoint = {"state_dict": state, "vivit_config": vivit_config}
            torch.save(checkpoint, f"{folder}/fsdp.ckpt")
            torch.save(full, f"{folder}/full_params.pt")
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
        queue.put((rank, "ok"))
    except Exception as error:  # reported to the test, which fails with it (and re-raised)
        queue.put((rank, repr(error)))
        raise


def test_fsdp_checkpoint_is_one_full_state_dict_for_eval_and_load_checkpoint(tmp_path):
    from vivit import load_checkpoint
    from vivit.runtime.preflight import read_checkpoint_argument as read_run_checkpoint
    from vivit.training.module import VideoClassifier

    ctx = multiprocessing.get_context("fork")  # no re-import per rank; gloo needs no CUDA
    queue = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(rank, 2, str(tmp_path), queue)) for rank in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    results = dict(queue.get(timeout=5) for _ in procs)
    assert results == {0: "ok", 1: "ok"}, results

    saved = torch.load(tmp_path / "fsdp.ckpt", map_location="cpu", weights_only=False)
    full = torch.load(tmp_path / "full_params.pt", map_location="cpu")
    torch.manual_seed(0)
    reference = build_model(saved["vivit_config"]["resolved"]["model"]).state_dict()  # the ranks' initial weights
    # one full state dict: the plain model's keys and shapes, no FSDP or checkpoint-wrapper names, no shards
    assert set(saved["state_dict"]) == {f"net.{k}" for k in reference}
    assert all(saved["state_dict"][f"net.{k}"].shape == v.shape for k, v in reference.items())
    # bf16 is the compute type only: the saved weights are fp32
    assert {v.dtype for v in saved["state_dict"].values() if v.is_floating_point()} == {torch.float32}
    weights, config = read_run_checkpoint(str(tmp_path / "fsdp.ckpt"))  # what eval.py reads
    assert config["resolved"]["model"]["_target_"].endswith("FactorisedEncoderViViT")
    net = load_checkpoint(tmp_path / "fsdp.ckpt")
    for name, param in net.named_parameters():  # the trained (stepped) parameters, gathered from both ranks
        torch.testing.assert_close(param, full[f"net.{name}"].to(param.dtype), msg=name)
    # gradient clipping by the norm over all shards (Lightning's FSDP plugin refuses norm clipping)
    info = torch.load(tmp_path / "step_info.pt")
    assert all(before > 2 * CLIP and after == pytest.approx(CLIP, rel=1e-3) for before, after in info["norms"]), info
    # weight decay groups by the parameters' own rank, not by the 1-D views of FSDP's shards
    plain = VideoClassifier(
        net=build_model(saved["vivit_config"]["resolved"]["model"]), optimizer=None
    ).parameter_groups()
    assert (info["decay"], info["no_decay"]) == (len(plain[0]["params"]), len(plain[1]["params"])) and info["decay"]
    stepped = [name for name, param in net.named_parameters() if not torch.equal(param, reference[name])]
    assert len(stepped) > len(reference) // 2  # the file holds the weights after the step, not the initial ones

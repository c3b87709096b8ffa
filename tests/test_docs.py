"""Every command of README.md and docs/*.md is run here, in smoke mode, or listed in NOT_RUN with why it is not
(a GPU, a dataset, the network, ...): a command that is neither fails the test, so the docs cannot drift again.

The commands are the lines of the docs' bash blocks (continuation lines joined, `a && b` split, comments dropped)
and the lines that start with a command in other blocks (`$ python ...` transcripts included); a shell script (a
block with `if`/`for`) is one command, named by its first line. Runs go through the same `main` functions as
`python train.py`, `eval.py`, `predict.py` and `python -m vivit.<tool>`, in this process, in a folder of their
own (VIVIT_ROOT), one after another, so later commands find the run folders of earlier ones: `<time>` (or a
written-out time) becomes the newest folder of its parent, `ckpt_path=...` the newest run's last.ckpt,
`/data/mine` a small generated folder set and `my_videos/` two clips. Smoke mode adds small overrides (SMOKE: one
epoch of two batches, no logger, the small synthetic set). A command that is not run but composes (train.py and
eval.py on a dataset or a GPU) is composed, each job of a sweep with its own values, so its keys and groups exist.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser

from tests.conftest import CONF, ROOT
from tests.fixtures.own_videos import make_own_videos
from tests.test_train import SMALL_DATA
from vivit import flops
from vivit.evaluation import reports
from vivit.experiments import collect
from vivit.runtime.schema import check_keys, check_target_arguments
from vivit.tasks import evaluate, predict, train
from vivit.training import callbacks

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"bash", "sh", "shell", "console"}
PLAIN = {"", "text"}  # blocks whose lines starting with a command are commands (code blocks of a language are not)
COMMAND = re.compile(r"(python|pip|vivit-|pytest|ruff|hf|huggingface-cli|kill|wait|wandb|torchrun|srun|sbatch)\b")
SCRIPT = re.compile(r"(if|for|while|case)\b")

TASKS = {"train.py": train, "eval.py": evaluate, "predict.py": predict}
TOOLS = {"vivit.flops": flops.main, "vivit.experiments.collect": collect.main}
SMOKE = [
    "logger=none",
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=2",
    "++trainer.limit_val_batches=1",
    "++trainer.limit_test_batches=1",
    "++trainer.num_sanity_val_steps=0",
    "data.num_workers=0",
]

GPU = "needs GPUs"
DATASET = "needs a dataset release on disk (data.root=/data/...)"
NETWORK = "downloads weights (network)"
INSTALL = "installs packages: CI (.ci/run) runs the README's install and test lines in a fresh venv"
SLURM = "needs a SLURM cluster: tests/test_slurm.py submits the sweep to a fake sbatch"
SLURM_ARRAY = "needs a SLURM cluster: tests/test_shards.py runs the array's sbatch script and its parts"
CONVERTED = "needs checkpoints/vivit_b_k400.pt, converted from the Hugging Face hub (network)"
SAME = "the same command as one that is run, with other values: composed"
INSTALLED = "the installed command: .ci/run runs vivit-* from the wheel; here its `python` form runs"

# command -> why it is not run. Everything else in the docs is run below.
NOT_RUN = {
    # README.md
    "pip install -r requirements.txt": INSTALL,
    "pip install torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cpu": INSTALL,
    "pip install torch==2.14.1 torchvision==0.29.1": INSTALL,
    "pip install -r requirements-dev.txt": INSTALL,
    "pip install .": INSTALL + "; tests/test_packaging.py builds the wheel",
    "pip install -r requirements-slurm.txt": INSTALL,
    "pytest": "runs this test suite",
    "ruff check .": "lint: CI (.ci/run)",
    "ruff format --check .": "lint: CI (.ci/run)",
    "cd /anywhere": "a shell step of the install example",
    "vivit-predict ckpt_path=best.ckpt inputs=my_videos/": INSTALLED,
    "vivit-predict ckpt_path=best.ckpt inputs=[a.mp4,b.mp4]": INSTALLED,
    "python train.py experiment=own_videos data.root=my_videos": NETWORK
    + " (ViT-B) and trains ViViT-B; tests/test_own_videos.py runs the preset at a CPU size from a local ViT file",
    "python train.py experiment=own_videos data.root=my_videos data.hflip=false": NETWORK + " (ViT-B)",
    "python train.py experiment=own_videos data.root=/data/mine": NETWORK + " (ViT-B)",
    "python predict.py ckpt_path=outputs/own_videos/runs/<time>/checkpoints/last.ckpt inputs=new_videos/ topk=3": (
        "needs the own_videos run above (network)"
    ),
    "python train.py model=vivit_l_fe data=epic100 data.root=/data/EPIC-KITCHENS regularisation=epic100 "
    "model.init=vit_large_patch16_224.orig_in21k trainer=ddp trainer.devices=8": GPU,
    "python train.py experiment=paper/table2_variants data.root=/data/kinetics400": DATASET,
    "python -m vivit.experiments.collect outputs/paper/table2_variants-k400-<time> --paper table2": DATASET,
    "python -m vivit.convert hf google/vivit-b-16x2-kinetics400 checkpoints/vivit_b_k400.pt": NETWORK
    + "; tests/test_convert.py converts a local copy",
    "python predict.py ckpt_path=checkpoints/vivit_b_k400.pt inputs=my_videos/ topk=5": CONVERTED,
    "python train.py -m seed=0,1,2 trainer=ddp trainer.devices=8": GPU,
    "python train.py experiment=paper/table2_variants data.root=/data/k400 trainer=ddp trainer.devices=8": GPU,
    "python train.py -m hydra/launcher=slurm experiment=paper/table2_variants data.root=/data/k400 trainer=ddp "
    "trainer.devices=8 trainer.num_nodes=2 hydra.launcher.partition=gpu hydra.launcher.account=me": SLURM,
    "python train.py trainer=fsdp trainer.devices=8 model=vivit_l_fe data=k400 data.root=/data/k400": GPU,
    "python train.py experiment=paper/table2_epic roots.k400=/data/k400 roots.epic100=/data/EPIC-KITCHENS": DATASET,
    "python train.py experiment=paper/table2_variants data.root=/data/k400 protocol=scenic": DATASET
    + "; tests/test_experiments.py composes every recipe under both protocols",
    # shards and torchcodec (README.md, docs/data.md)
    "pip install .[shards]": INSTALL,
    "pip install .[torchcodec]": INSTALL,
    "apt-get install libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 libavdevice59 "
    "libavfilter8": INSTALL + " (Debian's FFmpeg)",
    "python -m vivit.tasks.shard data=k400 data.root=/data/k400 model=vivit_b_fe shards.out=/data/k400-shards "
    "shards.workers=32": DATASET + "; tests/test_shards.py writes the shards of every release layout",
    "python -m vivit.tasks.shard -m hydra/launcher=slurm_cpu data=k400 data.root=/data/k400 model=vivit_b_fe "
    "shards.out=/data/k400-shards shards.parts=16 'shards.part=range(16)'": SLURM_ARRAY,
    "python -m vivit.tasks.shard -m hydra/launcher=slurm_cpu data=k400 data.root=/data/k400 model=vivit_b_fe "
    "shards.out=/data/k400-shards shards.workers=32 shards.parts=16 'shards.part=range(16)' "
    "hydra.launcher.partition=cpu hydra.launcher.account=me": SLURM_ARRAY,
    "python train.py data=k400 data.format=shards data.root=/data/k400-shards model=vivit_b_fe": DATASET
    + "; tests/test_shards.py trains from shards",
    "python train.py data=k400 data.root=/data/k400 data.decoder=torchcodec": DATASET
    + "; tests/test_torchcodec.py decodes with it",
    "python train.py ... data.decoder=torchcodec data.decoder_device=cuda data.num_workers=0": GPU,
    "aws s3 sync /data/k400-shards s3://my-bucket/k400-shards": "needs an S3 bucket (network)",
    "python train.py data=k400 data.format=shards data.root=s3://my-bucket/k400-shards model=vivit_b_fe": (
        "needs an S3 bucket (network); tests/test_shards.py trains from a local S3 server"
    ),
    "python eval.py ckpt_path=... data.format=shards data.root=s3://my-bucket/k400-shards eval.views=4x3": (
        "needs an S3 bucket (network)"
    ),
    # docs/trust.md: transcripts of refusals
    "python eval.py ckpt_path=downloaded/last.ckpt": "shows the refusal of a downloaded checkpoint: "
    "tests/test_trust.py checks that error",
    "python train.py resume=outputs/train/runs/2026-12-04_10-00-00": "shows the refusal of a tampered run folder: "
    "tests/test_trust.py checks that error",
    "python predict.py ckpt_path=downloaded/model.pt inputs=clip.mp4": "a downloaded checkpoint: tests/test_trust.py",
    "kill -TERM <pid>": "a signal to a running job: tests/test_resume.py sends SIGTERM and SIGUSR1",
    # docs/configs.md
    "python train.py model=vivit_b_fe data=k400 data.root=/data/kinetics400 trainer.devices=8": GPU,
    "python train.py experiment=paper/table2_variants debug=smoke": "5 jobs; tests/test_experiments.py runs one "
    "job of each preset with debug=smoke (test_debug_smoke_runs_a_paper_job_end_to_end)",
    "python train.py -m model.temporal_depth=1,2,4 seed=0,1,2": "9 jobs: " + SAME + " (python train.py -m seed=1,2)",
    "python train.py model.depth=4 optim.optimizer.lr=1e-3 trainer.max_epochs=10": SAME + " (python train.py)",
    "python train.py experiment=demo_avgpool_control": SAME + " (python train.py), the model of the control",
    "python train.py debug=fdr": "tests/test_train.py::test_fast_dev_run_trains_validates_and_tests runs it",
    # docs/data.md, docs/datasets.md
    **{
        f"python train.py data={data} data.root=/data/{root} model={model} regularisation={reg}": DATASET
        for data, root, model, reg in (
            ("k400", "kinetics400", "vivit_b_fe", "kinetics"),
            ("k600", "kinetics600", "vivit_l_fe", "kinetics"),
            ("k700", "k700-2020", "vivit_l_fe", "kinetics"),
            ("ssv2", "ssv2", "vivit_l_fe", "ssv2"),
            ("epic100", "EPIC-KITCHENS", "vivit_l_fe", "epic100"),
            ("mit", "Moments_in_Time_Raw", "vivit_l_fe", "kinetics"),
        )
    },
    "python eval.py ckpt_path=.../last.ckpt data.root=/data/kinetics400": DATASET,
    "python -m vivit.datamodules.prepare /data/kinetics400 /data/kinetics400_256 --short-side 256 --workers 16 "
    "--gop 16": DATASET + "; tests/test_datasets_prepare.py re-encodes a miniature release",
    "python train.py data=k400 data.root=/data/kinetics400_256 ...": DATASET,
    # docs/evaluation.md, docs/pretrained.md, docs/predict_and_export.md
    "python eval.py ckpt_path=outputs/train/runs/<time>/checkpoints/last.ckpt": SAME + " (eval.views=4x3)",
    "python eval.py ckpt_path=checkpoints/vivit_b_k400.pt data=k400 data.root=/data/k400 eval.views=4x3": DATASET,
    "python eval.py ckpt_path=... data=epic100 data.root=/data/epic eval.save_predictions=true": DATASET,
    "python train.py model=vivit_b_fe data=epic100 data.root=/data/EPIC-KITCHENS "
    "model.init=vit_base_patch16_224.orig_in21k": DATASET,
    "python train.py model=vivit_b_fe data=ssv2 data.root=/data/ssv2 "
    "model.init=checkpoints/vivit_b_fe_k400.pt": DATASET,
    "python train.py model=vivit_b_st model.init=vit_base_patch16_224.orig_in21k "
    "model.init_options.tubelet_init=inflate": NETWORK + "; tests/test_pretrained.py initialises from local ViTs",
    "hf download google/vivit-b-16x2-kinetics400 --local-dir vivit-b-k400": NETWORK,
    "python -m vivit.convert hf vivit-b-k400 checkpoints/vivit_b_k400.pt": CONVERTED,
    "python -m vivit.convert scenic kinetics_400/vivit_base_16x2_unfactorized/checkpoint checkpoints/b_st.pt "
    "--model vivit_b_st": "needs scenic's released checkpoint (network); tests/test_convert.py converts a made one",
    "python -m vivit.convert scenic kinetics_400/vivit_large_16x2_fe/checkpoint checkpoints/l_fe.pt "
    "--model vivit_l_fe": "needs scenic's released checkpoint (network)",
    "python -m vivit.convert scenic epic_kitchens/vivit_large_16x2_fe/checkpoint checkpoints/l_fe_ek.pt --model "
    'vivit_l_fe "num_classes={noun:300,verb:97}"': "needs scenic's released checkpoint (network)",
    "python predict.py ckpt_path=vivit_b_k400.pt inputs=list.txt views=4x3": CONVERTED,
    "python -m vivit.export checkpoints/vivit_b_k400.pt vivit_b_k400.pt2 --onnx vivit_b_k400.onnx": CONVERTED
    + "; tests/test_export.py exports a small model",
    # docs/flops_and_speed.md
    "python benchmarks/bench_models.py": "a benchmark of minutes; tests/test_flops.py runs its tiny preset",
    "python benchmarks/bench_models.py --threads 2 --iters 30": "a benchmark of minutes",
    "python benchmarks/bench_models.py --device cuda": GPU,
    "python benchmarks/bench_models.py --device cuda --peak-tflops 312": GPU,
    # docs/multi_gpu.md
    "python train.py trainer=ddp trainer.devices=8 data=k400 data.root=/data/kinetics400 model=vivit_b_fe": GPU,
    "python train.py experiment=demo_ddp threads=1": "2 DDP jobs of spawned processes; tests/test_distributed.py "
    "runs experiment=demo_ddp (test_sweep_declared_in_a_preset_changes_process_count_and_survives_a_dead_rank)",
    "python train.py -m hydra/launcher=slurm experiment=paper/table2_variants data.root=/data/k400 trainer=ddp "
    "trainer.devices=8 trainer.num_nodes=2 data.batch_size=4 hydra.launcher.partition=gpu "
    "hydra.launcher.account=myproject": SLURM,
    "python train.py -m seed=0,1 hydra/launcher=slurm trainer=ddp trainer.devices=4 trainer.num_nodes=2 "
    "hydra.launcher.partition=gpu hydra.launcher.account=vivit hydra.launcher.mem_gb=256 "
    "hydra.launcher.cpus_per_task=8 hydra.launcher.timeout_min=600": SLURM,
    "python train.py -m hydra/launcher=slurm trainer=fsdp trainer.devices=8 trainer.num_nodes=2 ...": SLURM,
    "torchrun --nproc-per-node 8 train.py trainer=ddp trainer.devices=8": GPU
    + "; tests/test_launchers.py runs torchrun with 2 CPU processes",
    "torchrun --nproc-per-node 8 train.py trainer=ddp trainer.devices=8 ...": GPU + " (see above)",
    "srun --ntasks-per-node 8 --gpus-per-node 8 python train.py trainer=ddp trainer.devices=8 ...": SLURM,
    "squeue --me": SLURM,
    "python train.py -m hydra/launcher=slurm trainer=ddp trainer.devices=1,2,4,8": SLURM
    + " (the sbatch script of each job size: tests/test_slurm.py)",
    "python train.py -m hydra/launcher=slurm trainer=ddp trainer.devices=1,2,4,8 hydra.launcher.partition=gpu": SLURM,
    "python train.py -m hydra/launcher=slurm trainer=ddp trainer.devices=8 trainer.num_nodes=1,2 "
    "slurm_resources.cpus_per_gpu=12 slurm_resources.mem_gb_per_gpu=100 slurm_resources.node_cpus=96": SLURM,
    "python train.py trainer=ddp trainer.devices=8 ...": GPU,
    "python train.py -m hydra/launcher=slurm trainer=ddp trainer.devices=8 ...": SLURM,
    "python train.py -m hydra/launcher=slurm experiment=paper/table2_variants data.root=/data/k400 trainer=ddp "
    "trainer.devices=8 hydra.launcher.partition=gpu hydra.launcher.account=me collective_timeout_s=600": SLURM,
    "python train.py resume=outputs/train/multiruns/<time>/<job>": SAME
    + " (python train.py resume=outputs/train/runs/<time>): a job folder of a cluster sweep",
    "scancel --signal=USR1 <job id>_<task>": SLURM + "; tests/test_preemption.py sends SIGUSR1 to a fake 2-task job",
    "bash benchmarks/gpu_check.sh": GPU + " (ran on an H200: benchmarks/results/gpu_check_h200.json; its --cpu form "
    "checks the script)",
    # docs/paper_experiments.md
    "python train.py experiment=paper/table2_variants data.root=/data/k400 model=vivit_b_fe": DATASET,
    "python train.py experiment=paper/table3_temporal_depth data.root=/data/k400 "
    "experiment/paper/table3_rows=lt1,lt12": DATASET,
    "python train.py experiment=paper/table2_variants data.root=/data/k400 debug=fdr model.init=none": DATASET,
    "python -m vivit.experiments.collect MULTIRUN_DIR [--paper table1..table6|fig7|fig8|fig9] [--metric test/top1] "
    "[--dataset k400]": "the collector's usage line, not a command",
    "python -m vivit.experiments.collect outputs/paper/<preset>-...-<time> --paper <table or figure>": (
        "the collector's usage for a paper preset's sweep (needs its dataset)"
    ),
    **{
        f"python train.py experiment=paper/{preset} data.root=/data/{root}": DATASET
        for preset, root in (
            ("table1_input_encoding", "kinetics400"),
            ("table3_temporal_depth", "kinetics400"),
            ("table5_resolution", "kinetics400"),
            ("fig7_backbone", "kinetics400"),
            ("fig8_tubelet_size", "kinetics400"),
            ("fig9_frames_views", "kinetics400"),
        )
    },
    "python train.py experiment=paper/table2_epic roots.k400=/data/kinetics400 roots.epic100=/data/EPIC-KITCHENS": (
        DATASET
    ),
    "python train.py experiment=paper/table4_regularisation data.root=/data/EPIC-KITCHENS "
    "k400_checkpoint=outputs/paper/table2_variants-k400-<time>": DATASET,
    "python train.py experiment=paper/table4_ssv2 data.root=/data/ssv2 "
    "k400_checkpoint=outputs/paper/table2_variants-k400-<time>": DATASET,
    "python train.py experiment=paper/table6_sota roots.k400=/data/kinetics400 roots.k600=/data/kinetics600 "
    "roots.mit=/data/Moments_in_Time_Raw roots.epic100=/data/EPIC-KITCHENS roots.ssv2=/data/ssv2": DATASET,
    "python train.py experiment=paper/table3_temporal_depth recipe=ssv2 data.root=/data/ssv2": DATASET,
    "python -m vivit.experiments.collect outputs/paper/table2_variants-synthetic-<time> --paper table2": (
        "collects the 5-job smoke sweep above (not run); the collector runs on outputs/train/multiruns/<time>"
    ),
    "python train.py experiment=demo_variants threads=1": "5 jobs of 15 full epochs (minutes); composed",
    "python -m vivit.experiments.collect outputs/demo_variants/multiruns/<time> --paper table2": (
        "collects the demo_variants sweep (not run); the collector runs on outputs/train/multiruns/<time>"
    ),
    # docs/resume.md
    "python train.py trainer.max_epochs=30 data.num_workers=8": SAME + " (python train.py)",
    "python train.py resume=outputs/train/runs/2026-12-03_10-43-51_2 trainer.max_epochs=60": SAME
    + " (python train.py resume=outputs/train/runs/<time>)",
    "python train.py trainer.max_epochs=30 &": "shell job control: tests/test_resume.py starts, kills and resumes",
    "wait $!; echo $?": "shell job control (see above)",
    "script: #!/bin/bash": SLURM,
    "python eval.py ckpt_path=outputs/train/runs/<time>/checkpoints/last.ckpt model.depth=2": (
        "shows an error on purpose: tests/test_preflight.py checks that error"
    ),
}


# ------------------------------------------------------------------------------------------------ reading the docs
def fenced_blocks(text: str) -> list[tuple[str, str]]:
    return re.findall(r"^```(\w*)[^\n]*\n(.*?)^```", text, re.M | re.S)


def block_commands(language: str, body: str) -> list[str]:
    """The commands of one fenced block (see the module docstring)."""
    lines = [line.strip() for line in re.sub(r"\\\n\s*", " ", body).splitlines()]
    if language in SHELL and any(SCRIPT.match(line) for line in lines):
        return ["script: " + next(line for line in lines if line)]
    commands = []
    for line in lines:
        prompt = line.startswith("$ ")
        line = line.removeprefix("$ ")
        is_command = language in SHELL or prompt or (language in PLAIN and COMMAND.match(line))
        if not line or line.startswith("#") or not is_command:
            continue
        line = re.split(r"\s+#", line, maxsplit=1)[0]
        commands += [" ".join(part.split()) for part in line.split(" && ")]
    return commands


def doc_commands() -> dict[str, list[str]]:
    """Every command of the docs -> the files it is in."""
    found: dict[str, list[str]] = {}
    for path in DOCS:
        for language, body in fenced_blocks(path.read_text()):
            for command in block_commands(language, body):
                found.setdefault(command, []).append(path.name)
    return found


def test_every_command_of_the_docs_is_run_or_says_why_not():
    commands = doc_commands()
    assert len(commands) > 50, "the docs' commands were not found"
    unknown = [c for c in commands if c not in NOT_RUN and how_to_run(c) is None]
    assert not unknown, f"commands neither run here nor listed in NOT_RUN with a reason: {unknown}"
    stale = [c for c in NOT_RUN if c not in commands]
    assert not stale, f"NOT_RUN lists commands no doc has any more: {stale}"


def how_to_run(command: str) -> tuple[str, list[str]] | None:
    """(entry point, arguments) of a command this test can run, else None."""
    argv = shlex.split(command)
    if len(argv) >= 2 and argv[0] == "python" and argv[1] in TASKS:
        return argv[1], argv[2:]
    if len(argv) >= 3 and argv[:2] == ["python", "-m"] and argv[2] in TOOLS:
        return argv[2], argv[3:]
    return None


# ------------------------------------------------------------------------------------------------ running them
def order(command: str) -> int:
    """Runs before what reads their folders: train runs, then sweeps, resumes, evaluations, tools."""
    entry, args = how_to_run(command)
    if entry == "train.py":
        return 2 if any(a.startswith("resume=") for a in args) else 1 if "-m" in args else 0
    return 3 if entry in TASKS else 4


def newest(parent: Path) -> Path:
    folders = sorted((p for p in parent.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    assert folders, f"{parent}: no run folder for the command's <time>"
    return folders[-1]


def substituted(args: list[str], places: dict[str, Path]) -> list[str]:
    """The docs' placeholders replaced by what the earlier commands made (see the module docstring)."""
    out = []
    for arg in args:
        match = re.search(r"(outputs/[\w/.-]+?)/(<time>|\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d(_\d+)?)", arg)
        if match:
            arg = arg.replace(match.group(0), str(newest(places["cwd"] / match.group(1))))
        if arg == "ckpt_path=...":
            arg = f"ckpt_path={newest(places['cwd'] / 'outputs/train/runs') / 'checkpoints' / 'last.ckpt'}"
        arg = arg.replace("/data/mine", str(places["own_videos"])).replace("my_videos/", f"{places['my_videos']}/")
        out.append(arg)
    return out


def smoke(entry: str, args: list[str], synthetic_root: Path) -> list[str]:
    """The small overrides that make a command a smoke run."""
    if entry == "eval.py":
        return ["++trainer.limit_val_batches=1", "++trainer.limit_test_batches=1"]
    if entry != "train.py":
        return []
    if any(a.startswith("resume=") for a in args):  # the run had one epoch: one more
        return ["trainer.max_epochs=2"]
    chooses_data = any(a.startswith(("data=", "experiment=own_videos")) for a in args)
    synthetic = [] if chooses_data else [f"data.root={synthetic_root}", *SMALL_DATA, "data.cache_decoded=false"]
    return [*SMOKE, *synthetic]


def run_in_process(entry: str, args: list[str]) -> int:
    """`entry`'s main with `args` as its command line, in this process; the exit status."""
    GlobalHydra.instance().clear()
    saved_argv, root_logger = sys.argv, logging.getLogger()
    handlers, level = list(root_logger.handlers), root_logger.level
    try:
        if entry in TOOLS:
            return int(TOOLS[entry](args) or 0)
        sys.argv = [str(ROOT / entry), *args]
        TASKS[entry].main()
        return 0
    except SystemExit as stop:  # Hydra and the tasks exit with a one-line error
        return stop.code if isinstance(stop.code, int) else 1
    finally:  # Hydra configured logging for the job (a console and a file handler): give pytest its own back
        sys.argv = saved_argv
        for handler in root_logger.handlers:
            if handler not in handlers:
                root_logger.removeHandler(handler)
                handler.close()
        root_logger.setLevel(level)
        GlobalHydra.instance().clear()


@pytest.fixture(scope="module")
def places(tmp_path_factory, synthetic_root):
    """The folder the commands run in, a small folder set for /data/mine and two clips for my_videos/."""
    cwd = tmp_path_factory.mktemp("docs")
    own = make_own_videos(cwd / "mine", {"train": 4, "val": 2, "test": 2})
    clips = cwd / "my_videos"
    clips.mkdir()
    for video in sorted((own / "test" / "red").glob("*.mp4")):
        shutil.copy(video, clips / video.name)
    return {"cwd": cwd, "own_videos": own, "my_videos": clips}


@pytest.fixture
def no_figures(monkeypatch):
    """The PNGs are tested elsewhere (tests/test_numbers.py, tests/test_experiments.py); drawing them is most of a
    smoke run."""
    for name in ("plot_samples", "plot_confusion"):
        monkeypatch.setattr(reports, name, lambda path, *args, **kwargs: Path(path))
    monkeypatch.setattr(callbacks, "plot_curves", lambda *args, **kwargs: None)
    monkeypatch.setattr(collect, "plot", lambda *args, **kwargs: None)


def test_the_docs_commands_run(places, synthetic_root, monkeypatch, capsys, no_figures):
    monkeypatch.chdir(places["cwd"])
    monkeypatch.setenv("VIVIT_ROOT", str(places["cwd"]))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    runnable = sorted((c for c in doc_commands() if c not in NOT_RUN), key=order)
    printed: dict[str, str] = {}
    ran: dict[tuple[str, ...], str] = {}  # two docs' forms of one command (`ckpt_path=...`) run once
    for command in runnable:
        entry, args = how_to_run(command)
        args = substituted(args, places)
        line = (entry, *args, *smoke(entry, args, synthetic_root))
        if line in ran:
            printed[command] = printed[ran[line]]
            continue
        status = run_in_process(entry, list(line[1:]))
        output = capsys.readouterr()
        printed[command], ran[line] = output.out + output.err, command
        assert status == 0, f"{command} exited with {status}:\n{printed[command][-3000:]}"
    # what these commands are in the docs for
    first = printed["python train.py"]
    assert "Results" in first and "views:      val 1x1 (the centre clip, centre crop), test 1x1" in first
    assert (
        "views:      val 1x1"
        in printed["python eval.py ckpt_path=outputs/train/runs/<time>/checkpoints/last.ckpt split=val"]
    )
    sweep = printed["python train.py -m seed=1,2"]
    assert re.search(r"^ *\d{4}-\d\d-\d\d_[\d_-]+: 2/2 jobs finished", sweep, re.M), sweep[-3000:]
    assert "collect it again: python -m vivit.experiments.collect" in sweep
    multirun = newest(places["cwd"] / "outputs" / "train" / "multiruns")  # each job in its own folder
    assert sorted(p.parent.name for p in multirun.glob("*/metrics.json")) == ["0", "1"]
    resumed = newest(places["cwd"] / "outputs" / "train" / "runs")
    assert [row["epoch"] for row in json.loads((resumed / "history.json").read_text())] == [0, 1]


def sweep_jobs(args: list[str]) -> list[list[str]]:
    """The overrides of a command's jobs: one job per value of its longest swept list, the other swept keys taking
    their values alongside (every value of every key is composed once)."""
    args = [re.sub(r"<(\w+)>", r"\1", a) for a in args if "=" in a]  # outputs/train/runs/<time>: any folder name
    parsed = OverridesParser.create().parse_overrides(args)
    swept = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()] for o in parsed if o.is_sweep_override()]
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    return [
        [*fixed, *(values[min(i, len(values) - 1)] for values in swept)] for i in range(max(map(len, swept), default=1))
    ]


def test_the_commands_that_are_not_run_compose():
    """train.py and eval.py commands on a dataset or GPUs: their config groups and keys exist, and pass the schema
    (vivit/runtime/schema.py) but for the hardware."""
    GlobalHydra.instance().clear()
    composed, seen = 0, set()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        for command in NOT_RUN:
            argv = shlex.split(command) if not command.startswith("script:") else []
            if argv[:1] == ["python"] and len(argv) > 1 and argv[1] in ("train.py", "eval.py"):
                for job in sweep_jobs(argv[2:]):
                    # commands that differ only in their folders (data.root=/data/k400 or /data/kinetics400)
                    # compose alike: once each
                    shape = (argv[1], *sorted(re.sub(r"=/.*", "=<path>", o) for o in job))
                    if shape in seen:
                        continue
                    seen.add(shape)
                    cfg = compose(argv[1].removesuffix(".py"), overrides=job, return_hydra_config=True)
                    HydraConfig.instance().set_config(cfg)  # ${hydra:runtime.choices.recipe} resolves
                    check_keys(cfg)  # and the schema's types and ranges (the hardware aside: GPUs)
                    check_target_arguments(cfg)
                    composed += 1
    GlobalHydra.instance().clear()
    assert composed > 30

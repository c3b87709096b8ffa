"""Shards (vivit.datamodules.shards, shard_writer; `python -m vivit.tasks.shard`): the same clips as the loose files,
frame for frame, on every release layout; disjoint samples per rank and worker; every video once in evaluation;
a damaged member counted and replaced; a killed writer resumed; training from a folder and from a local S3 server."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from tests.conftest import ROOT, compose_config
from tests.fixtures import releases
from tests.fixtures.videos import read_codes, write_video
from vivit.datamodules import reader
from vivit.datamodules.shards import ShardIndex, ShardSource, ShardStream, eval_plan, train_plan
from vivit.runtime.errors import ConfigError
from vivit.tasks.shard import shard


def make_folder(root: Path) -> releases.Release:
    """`data=folder`: CSVs of path,label around index-coded videos of two sizes (one odd-sized after resizing)."""
    root.mkdir(parents=True)
    for split, count in (("train", 4), ("val", 2), ("test", 2)):
        lines = ["path,label"]
        for i in range(count):
            write_video(root / f"{split}_{i}.mp4", 20 + 3 * i, 48, 66 if i % 2 else 64)
            lines.append(f"{split}_{i}.mp4,{'ab'[i % 2]}")
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return releases.Release(root, ["a", "b"])


RELEASES = {
    "k400": lambda root: releases.make_kinetics(root, 400),
    "ssv2": releases.make_ssv2,
    "epic100": releases.make_epic_frames,
    "mit": releases.make_mit,
    "folder": make_folder,
    "synthetic": None,
}
SYNTHETIC = ["data.index.num_train=24", "data.index.num_val=8", "data.index.num_test=8"]


def shard_config(name: str, source: Path, out: Path, *extra: str):
    cache = [] if name in ("folder", "synthetic") else [f"data.index.cache_dir={out.parent / 'cache'}"]
    overrides = [f"data={name}", f"data.root={source}", f"shards.out={out}", "shards.samples_per_shard=3", *cache]
    return compose_config("shard", [*overrides, *(SYNTHETIC if name == "synthetic" else []), *extra], out.parent)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict:
    """Every release layout written as shards by the task (video members; the folder also as JPEG frames)."""
    base = tmp_path_factory.mktemp("shards")
    result = {}
    for name, make in RELEASES.items():
        source = base / name
        if make is not None:
            make(source)
        cfg = shard_config(name, source, base / f"{name}-shards", "shards.workers=2")
        summary = shard(cfg)
        result[name] = (cfg, summary)
    cfg = shard_config("folder", base / "folder", base / "folder-frames", "shards.media=frames")
    result["folder-frames"] = (cfg, shard(cfg))
    return result


@pytest.mark.parametrize("name", [*RELEASES, "folder-frames"])
def test_shards_hold_the_loose_clips_frame_for_frame(written, name):
    cfg, summary = written[name]
    files = instantiate(cfg.data)  # the loose-file data module the shards were written from
    index = ShardIndex(summary["out"])
    assert summary["manifest"] and summary["skipped"] == [] and index.classes == files.index.classes
    for split in ("train", "val", "test"):
        loose = {r.id: r for r in files.records(split)}
        source = ShardSource(index, split, files.min_resize)
        stored = source.samples.records
        assert sorted(r.id for r in stored) == sorted(loose)  # every record once (train: shuffled across shards)
        if split != "train":
            assert [r.id for r in stored] == list(loose)  # evaluation keeps the index order
        for i, record in enumerate(stored):
            original = loose[record.id]
            assert (record.label, record.start, record.end) == (original.label, original.start, original.end)
            expected = reader.read_frames(original, range(reader.probe(original).num_frames), files.min_resize)
            frames = source.frames(i, range(source.length(i)))
            assert frames.shape == expected.shape, record.id
            if name != "synthetic":  # generated scenes carry no frame codes: the pixels below say it
                assert read_codes(frames) == read_codes(expected), record.id  # the same frames, in the same order
            assert np.abs(frames.astype(int) - expected).mean() < 8  # re-encoded (crf 23): close, not equal


def test_manifest_counts_and_checksums(written):
    _, summary = written["k400"]
    out = Path(summary["out"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "vivit-shards" and manifest["short_side"] == 37 and manifest["fps"] == 25
    for split, entry in manifest["splits"].items():
        assert entry["samples"] == sum(s["samples"] for s in entry["shards"]) == len(ShardIndex(out).records(split))
        for s in entry["shards"]:
            import hashlib

            data = (out / s["name"]).read_bytes()
            assert len(data) == s["bytes"] and hashlib.sha256(data).hexdigest() == s["sha256"]
    import webdataset  # any WebDataset reader opens the shards

    first_shard = str(out / manifest["splits"]["val"]["shards"][0]["name"])
    first = next(iter(webdataset.WebDataset(first_shard, shardshuffle=False)))
    meta = json.loads(first["json"])
    assert set(first) >= {"__key__", "mp4", "json"} and meta["id"] == ShardIndex(out).records("val")[0].id
    assert (meta["num_frames"], meta["height"], meta["width"]) == (40, 37, 49)  # 48x64 at short side 37


# ------------------------------------------------------------------------------------------------ plans


def test_training_plan_gives_each_rank_and_worker_its_own_shards_and_equal_batches():
    sizes = [3] * 9 + [2]  # 29 samples in 10 shards; 2 ranks x 2 workers, batches of 2
    starts = np.cumsum([0, *sizes])
    shard_of = {i: s for s in range(len(sizes)) for i in range(starts[s], starts[s + 1])}
    plans = {(r, w): train_plan(sizes, 7, r, 2, w, 2, 2) for r in range(2) for w in range(2)}
    assert {len(p) for p in plans.values()} == {6}  # 29 // 4 = 7 -> 3 whole batches each
    shards = {slot: {shard_of[i] for i in plan} for slot, plan in plans.items()}
    for a in plans:
        for b in plans:
            if a != b:
                assert not shards[a] & shards[b], (a, b)  # no shard is read by two slots
    assert train_plan(sizes, 8, 0, 2, 0, 2, 2) != plans[(0, 0)]  # another epoch, another order
    assert train_plan(sizes, 7, 0, 2, 0, 2, 2) == plans[(0, 0)]  # the same epoch, the same order (resume)
    few = {(r, w): set(train_plan([8], 0, r, 2, w, 2, 2)) for r in range(2) for w in range(2)}
    assert sum(len(s) for s in few.values()) == len(set().union(*few.values())) == 8  # one shard, cut in four


def test_evaluation_plan_covers_every_sample_once_in_order():
    plans = {(r, w): eval_plan(11, r, 2, w, 2, 2) for r in range(2) for w in range(2)}
    assert sorted(i for p in plans.values() for i in p) == list(range(11))
    assert plans[(0, 0)] == [0, 1, 4] and plans[(0, 1)] == [2, 3]  # rank 0: 0..4, batches dealt in turn


@pytest.fixture(scope="module")
def synthetic_shards(written):
    cfg, summary = written["synthetic"]
    return cfg, Path(summary["out"])


def datamodule(cfg, out: Path, *extra: str, **kwargs):
    train = compose_config(
        "train",
        [
            "data.format=shards",
            f"data.root={out}",
            "data.cache_decoded=false",
            "data.batch_size=2",
            "data.test_views=2x3",
            *extra,
        ],
    )
    return instantiate(train.data, **kwargs)


def loader_indices(dm, mode: str, rank: int, world: int, workers: int) -> list[dict]:
    dm.num_workers = workers
    dm.persistent_workers = False
    dm.trainer = type("Trainer", (), {"world_size": world, "global_rank": rank})()
    loader = {"train": dm.train_dataloader, "val": dm.val_dataloader, "test": dm.test_dataloader}[mode]()
    assert isinstance(loader.dataset, ShardStream)
    batches = list(loader)
    assert len(batches) == len(loader)  # the length Lightning plans with is what comes out
    return batches


def test_two_ranks_with_two_workers_read_disjoint_samples_and_evaluate_every_video_once(synthetic_shards):
    cfg, out = synthetic_shards
    dm = datamodule(cfg, out)
    dm.setup("fit")
    train = {rank: loader_indices(dm, "train", rank, 2, 2) for rank in range(2)}
    seen = {rank: [int(i) for b in batches for i in b["index"]] for rank, batches in train.items()}
    assert len(train[0]) == len(train[1]) == 6  # 24 samples / (2 ranks x 2 workers) = 3 batches of 2 per worker
    assert not set(seen[0]) & set(seen[1]) and len(set(seen[0])) == len(seen[0]) == 12
    stream = dm.datasets["train"]
    for rank in range(2):  # each rank's samples are its two workers' plans
        stream.configure(rank, 2, 2, 2)
        plans = [stream.plan(w) for w in range(2)]
        assert not set(plans[0]) & set(plans[1]) and sorted(seen[rank]) == sorted(plans[0] + plans[1])
    dm.setup("test")
    for mode in ("val", "test"):
        batches = [b for rank in range(2) for b in loader_indices(dm, mode, rank, 2, 2)]
        indices = sorted(int(i) for b in batches for i in b["index"])
        assert indices == list(range(8)) and all(b["valid"].all() for b in batches)
    assert batches[0]["video"].shape[1:3] == (6, 3)  # the multi-view test: 2 clips x 3 crops per video


def test_a_damaged_member_is_counted_and_replaced_in_training_and_invalid_in_evaluation(synthetic_shards, tmp_path):
    cfg, out = synthetic_shards
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    index = ShardIndex(damaged)
    for split, victim in (("train", 5), ("val", 3)):
        s = index.samples(split)
        path = damaged / s.shards[s.shard[victim]]
        data = bytearray(path.read_bytes())
        start = int(s.offset[victim]) + int(s.size[victim]) // 2
        data[start : start + 64] = bytes(64)  # zeros in the middle of the H.264 stream
        path.write_bytes(bytes(data))
    dm = datamodule(cfg, damaged)
    dm.setup("fit")
    batches = loader_indices(dm, "train", 0, 1, 1)
    indices = [int(i) for b in batches for i in b["index"]]
    assert sum(int(b["unreadable"].sum()) for b in batches) == 1 and 5 not in indices  # replaced by another sample
    assert len(indices) == 24
    val = loader_indices(dm, "val", 0, 1, 1)
    valid = {int(i): bool(v) for b in val for i, v in zip(b["index"], b["valid"])}
    assert [i for i, v in valid.items() if not v] == [3] and len(valid) == 8
    with pytest.raises(reader.VideoReadError, match="checksum"):
        ShardSource(ShardIndex(damaged), "val", 32).frames(3, [0])


def test_config_mistakes_are_one_line(synthetic_shards, tmp_path):
    cfg, out = synthetic_shards
    with pytest.raises(ValueError, match=r"data\.fps is 25\.0 but the shards .* fps None"):
        datamodule(cfg, out, "data.fps=25").setup("fit")
    with pytest.raises(ValueError, match=r"data\.min_resize \(64\) is larger .* shards\.short_side=64"):
        datamodule(cfg, out, "data.min_resize=64").setup("fit")
    with pytest.raises(FileNotFoundError, match=r"shard manifest not found: .*nowhere/manifest\.json"):
        datamodule(cfg, tmp_path / "nowhere").prepare_data()


# --------------------------------------------------------------------------------------- writer: resume


def test_a_killed_writer_resumes_without_redoing_finished_shards(tmp_path):
    source, out = tmp_path / "synthetic", tmp_path / "shards"
    overrides = [
        f"data.root={source}",
        "shards.samples_per_shard=2",
        "shards.media=frames",  # JPEG: the same bytes from every process, so the shards compare byte for byte
        "shards.workers=1",  # no pool processes left behind by the kill
        *SYNTHETIC,
    ]
    cfg = compose_config("shard", [*overrides, f"shards.out={out}"], tmp_path)
    writer = multiprocessing.get_context("fork").Process(target=shard, args=(cfg,))  # the task, in a process to kill
    writer.start()
    try:
        began = time.monotonic()
        while len(list(out.glob("*.tar.json"))) < 2:
            assert writer.is_alive() and time.monotonic() - began < 120, "the writer stopped before its second shard"
            time.sleep(0.01)
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.join()
    done = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tar") if (out / f"{p.name}.json").is_file()}
    assert not (out / "manifest.json").exists() and 2 <= len(done) < 20
    summary = shard(cfg)
    assert summary["already_done"] == len(done) and summary["written"] == 20 - len(done)
    assert {p: (out / p).stat().st_mtime_ns for p in done} == done  # finished shards were not written again
    assert not list(out.glob(".*partial*"))
    fresh = shard(compose_config("shard", [*overrides, f"shards.out={tmp_path / 'fresh'}"], tmp_path))
    for split in ("train", "val", "test"):  # the resumed shards are the shards of a run never stopped
        resumed = json.loads((out / f"{split}.samples.json").read_text())
        clean = json.loads((Path(fresh["out"]) / f"{split}.samples.json").read_text())
        assert resumed["id"] == clean["id"] and resumed["checksum"] == clean["checksum"]


# -------------------------------------------------------------------------------------- train.py: e2e


@pytest.fixture(scope="module")
def s3_server():
    """A local S3-compatible server (moto) on 127.0.0.1, with the credentials and endpoint boto3 and s3fs read from
    the environment (as for any S3-compatible store)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield env
    server.stop()


def upload(folder: Path, bucket: str, prefix: str) -> str:
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    for path in folder.iterdir():
        s3.upload_file(str(path), bucket, f"{prefix}/{path.name}")
    return f"s3://{bucket}/{prefix}"


TRAIN = [
    "data.format=shards",
    "data.cache_decoded=false",
    "data.batch_size=4",
    "data.num_workers=1",
    "logger=none",
    "callbacks=last_checkpoint",
    "threads=1",
    "trainer.accelerator=cpu",
]


def test_train_py_from_s3_and_from_a_folder_resumed_across_them_ends_as_one_uninterrupted_run(
    synthetic_shards, s3_server, tmp_path
):
    """train.py reads the shards from the local S3 server for one epoch; the train task resumes that run from the
    shard folder for a second epoch and ends with the weights and numbers of two uninterrupted epochs from the
    folder: the same stream from either store, and an exact resume."""
    from vivit.tasks.train import train

    _, out = synthetic_shards
    remote = upload(out, "videos", "synthetic/shards")
    first = tmp_path / "s3"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            f"data.root={remote}",
            *TRAIN,
            "trainer.max_epochs=1",
            "test=false",
            f"hydra.run.dir={first}",
        ],
        cwd=ROOT,
        env={**os.environ, "WANDB_MODE": "disabled"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (first / "checkpoints" / "last.ckpt").is_file()
    folder = [f"data.root={out}", *TRAIN, "trainer.max_epochs=2", "data.num_workers=0"]  # one slot either way
    whole = train(compose_config("train", folder, tmp_path / "whole"))
    resumed = train(compose_config("train", [*folder, f"ckpt_path={first}/checkpoints/last.ckpt"], first))
    a, b = (
        torch.load(Path(s["output_dir"]) / "checkpoints" / "last.ckpt", weights_only=False) for s in (whole, resumed)
    )
    assert a["global_step"] == b["global_step"] == 12
    assert max(float((a["state_dict"][k] - b["state_dict"][k]).abs().max()) for k in a["state_dict"]) == 0.0
    for split in ("val", "test"):  # (not the timings)
        numbers = {k: v for k, v in whole[split].items() if not k.startswith("perf/")}
        assert {k: resumed[split][k] for k in numbers} == pytest.approx(numbers), split


def test_the_shard_command_runs_as_a_slurm_array_of_parts(written, tmp_path, monkeypatch):
    """`-m hydra/launcher=slurm_cpu shards.parts=2 'shards.part=range(2)'`: one array of two one-process CPU jobs;
    part 0 writes the even shards only; part 1 finishes the set and writes the manifest. (How a submitted job runs on
    a node: tests/test_slurm.py.)"""
    from tests.test_slurm import submit
    from vivit.tasks.shard import job

    source, out = written["synthetic"][0].data.root, tmp_path / "shards"
    common = [f"data.root={source}", f"shards.out={out}", "shards.parts=2", "shards.samples_per_shard=8", *SYNTHETIC]
    scripts = submit(
        tmp_path,
        [*common, "shards.workers=3", "hydra.launcher.partition=cpu"],
        [["shards.part=0"], ["shards.part=1"]],
        job,
        monkeypatch,
        command="shard",
        launcher="slurm_cpu",
    )
    flags = dict(
        line.split("=", 1) for line in scripts[0].splitlines() if line.startswith("#SBATCH --") and "=" in line
    )
    assert len(scripts) == 1 and flags["#SBATCH --array"] == "0-1%2" and flags["#SBATCH --cpus-per-task"] == "3"
    assert flags["#SBATCH --ntasks-per-node"] == "1" and flags["#SBATCH --partition"] == "cpu"
    assert "#SBATCH --gpus-per-node" not in flags
    first = shard(compose_config("shard", [*common, "shards.part=0"], tmp_path))  # what array task 0 runs
    written_by_part_0 = ["test-000000.tar", "train-000000.tar", "train-000002.tar", "val-000000.tar"]
    assert sorted(p.name for p in out.glob("*.tar")) == written_by_part_0
    assert first["other_parts"] == 1 and not first["manifest"] and not (out / "manifest.json").exists()
    summary = shard(compose_config("shard", [*common, "shards.part=1"], tmp_path))
    assert summary["written"] == 1 and summary["manifest"]  # train-000001: the set is complete
    assert sum(len(ShardIndex(out).records(split)) for split in ("train", "val", "test")) == 40


def test_a_shard_command_without_out_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="shards.out: missing"):
        shard(compose_config("shard", ["data.root=x"], tmp_path))

"""Ask a checkpoint what videos show: the top-k class names with probabilities per video.

    python predict.py ckpt_path=PATH inputs=VIDEO|FOLDER|LIST.txt [topk=5] [views=4x3]   (console: vivit-predict)
    vivit.predict("best.ckpt", ["a.mp4", "b.mp4"], topk=5)  # the same from Python (`predict_videos`)

It takes a train.py checkpoint or a file of `python -m vivit.convert`, and uses the data path of evaluation
(reader, scenic's multi-view sampling, `EvalTransform`) with the checkpoint's test protocol: frames, stride,
resize and views of its data config (a converted file has none: `fallback` below, e.g. Kinetics' stride 2).
Probabilities are the softmax of the logits averaged over the views (the multi-view test of eval.py).
A video that cannot be decoded is reported and left out of the answer.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import track
from rich.table import Table
from torch.utils.data import DataLoader

from vivit.common.checks import check_choice
from vivit.datamodules.datamodule import VideoDataset
from vivit.datamodules.records import VIDEO_SUFFIXES, VideoRecord
from vivit.datamodules.sampling import parse_views
from vivit.datamodules.transforms import EvalTransform
from vivit.runtime.errors import ConfigError, reported_as
from vivit.runtime.preflight import check_writable, read_checkpoint_argument
from vivit.runtime.schema import PREDICT_KEYS, check_keys, check_predict_device
from vivit.training.module import as_head_dict
from vivit.weights.checkpoint import build_saved_model, class_names, read_checkpoint

from .command import hydra_job, run_command

log = logging.getLogger(__name__)

# The protocol of a file that carries no data config (a converted official checkpoint): scenic's Kinetics test.
FALLBACK = {"stride": 2, "test_views": "1x1", "resize_ratio": 1.0, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


def video_paths(inputs: str | Path | Sequence[str | Path]) -> list[Path]:
    """A video file, a folder (its videos, recursively, sorted), a .txt/.csv list (one path a line), or a list."""
    if isinstance(inputs, (str, Path)):
        path = Path(inputs)
        if path.is_dir():
            return sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
        if path.suffix.lower() in (".txt", ".csv", ".lst"):
            if not path.is_file():
                raise FileNotFoundError(f"no list file at '{path}' (one video path per line).")
            lines = [line.split(",")[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
            return [Path(line) if Path(line).is_absolute() else path.parent / line for line in lines if line]
        if not path.exists():
            raise FileNotFoundError(f"no video, folder or list at '{path}'.")
        return [path]
    return [p for item in inputs for p in video_paths(item)]


def native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX): only then is bf16 autocast faster."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:  # not Linux: ask torch which kernels it picked
            return torch.backends.cpu.get_cpu_capability() in ("AVX512_BF16", "AMX")
    flags = set(re.findall(r"\w+", " ".join(line for line in cpuinfo.splitlines() if line.startswith("flags"))))
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """`precision`: "32", "bf16", or "auto" (bf16 on a GPU with bf16 or a CPU with native bf16, else fp32)."""
    check_choice("precision", precision, ("auto", "32", "bf16"))
    if precision == "32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if native_bf16() else None


def load(
    ckpt_path: str | Path, trusted: bool = False
) -> tuple[torch.nn.Module, dict[str, Any], list[str] | dict[str, list[str]]]:
    """The model (eval mode), its data protocol and its class names from a checkpoint (read as data unless
    `trusted`; the model is one of the registry's, vivit.weights.checkpoint.build_saved_model)."""
    weights, config = read_checkpoint(ckpt_path, trusted)
    model = build_saved_model(config, ckpt_path)
    model.load_state_dict(weights)
    data = {**FALLBACK, **config["resolved"].get("data", {})}
    heads = data.get("num_classes", model.num_classes)
    return model.eval(), data, class_names(config, heads)


def protocol(model: torch.nn.Module, data: Mapping[str, Any], views: str | None) -> dict[str, Any]:
    """Frames, stride, short side, crop, normalisation and views, as the datamodule derives them."""
    crop = int(data.get("crop_size", model.img_size))
    short_side = int(data.get("min_resize") or round(crop * float(data.get("resize_ratio") or 1.0)))
    return {
        "num_frames": int(data.get("num_frames", model.num_frames)),
        "stride": int(data["stride"]),
        "short_side": short_side,
        "crop_size": crop,
        "views": parse_views(views or data["test_views"]),
        "mean": tuple(data["mean"]),
        "std": tuple(data["std"]),
    }


def top_k(probs: torch.Tensor, names: list[str], k: int) -> list[dict[str, Any]]:
    values, indices = probs.topk(min(k, len(names)))
    return [{"label": names[i], "index": int(i), "prob": float(p)} for p, i in zip(values, indices)]


def predict_videos(
    ckpt_path: str | Path,
    videos: str | Path | Sequence[str | Path],
    topk: int = 5,
    views: str | None = None,
    batch_size: int = 4,
    num_workers: int = 0,
    device: str | None = None,
    precision: str = "auto",
    progress: bool = False,
    trusted: bool = False,
) -> list[dict[str, Any]]:
    """Top-k class names with probabilities for each readable video.

    Returns one dict per video, in input order: {"video": path, "top": [{"label", "index", "prob"}, ...]}
    (for a multi-head checkpoint such as EPIC-KITCHENS', "top" maps each head, e.g. verb and noun, to its list).
    Unreadable videos are logged and left out. `views` ("TxS") overrides the checkpoint's test protocol.
    The checkpoint is read with `weights_only=True`; `trusted=True` reads a file of your own that pickles other
    objects.
    """
    model, data, names = load(ckpt_path, trusted)
    p = protocol(model, data, views)
    paths = video_paths(videos)
    records = [VideoRecord(path=path, label=None, id=str(path)) for path in paths]
    dataset = VideoDataset(
        records,
        "test",
        p["num_frames"],
        p["stride"],
        p["short_side"],
        EvalTransform(p["crop_size"], p["views"][1], p["mean"], p["std"]),
        p["views"],
    )
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(target)
    dtype = autocast_dtype(precision, target)
    results: list[dict[str, Any]] = []
    for batch in _progress(loader, progress, len(records)):
        with (
            torch.inference_mode(),
            torch.autocast(target.type, dtype=dtype or torch.float32, enabled=dtype is not None),
        ):
            video = batch["video"].to(target)
            logits = model(video.flatten(0, 1))
        logits = as_head_dict(logits)
        for name, value in logits.items():
            logits[name] = value.float().view(*video.shape[:2], -1).mean(1).softmax(-1).cpu()
        for row, (i, valid) in enumerate(zip(batch["index"].tolist(), batch["valid"].tolist())):
            if not valid:
                log.warning("skipped %s: it could not be decoded", records[i].path)
                continue
            top = {head: top_k(logits[head][row], names[head] if head else names, topk) for head in logits}
            results.append({"video": str(records[i].path), "top": top[""] if "" in top else top})
    return results


def _progress(loader: DataLoader, show: bool, total: int) -> Iterable[dict[str, Any]]:
    if not show:
        return loader
    return track(loader, description=f"predicting {total} videos", total=len(loader))


def write(results: list[dict[str, Any]], output_dir: str | Path) -> tuple[Path, Path]:
    """predictions.json (as returned) and predictions.csv (one row per video, head and rank)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = output_dir / "predictions.json", output_dir / "predictions.csv"
    json_path.write_text(json.dumps(results, indent=2))
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["video", "head", "rank", "label", "index", "prob"])
        for result in results:
            heads = result["top"] if isinstance(result["top"], dict) else {"": result["top"]}
            for head, top in heads.items():
                for rank, entry in enumerate(top, 1):
                    writer.writerow([result["video"], head, rank, entry["label"], entry["index"], entry["prob"]])
    return json_path, csv_path


def print_results(results: list[dict[str, Any]], skipped: int) -> None:
    multi_head = any(isinstance(r["top"], dict) for r in results)
    table = Table(title="Predictions")
    for column in ("video", "head", "top-k (probability)") if multi_head else ("video", "top-k (probability)"):
        table.add_column(column)
    for result in results:
        heads = result["top"] if isinstance(result["top"], dict) else {"": result["top"]}
        for head, top in heads.items():
            cells = [head] if multi_head else []
            table.add_row(Path(result["video"]).name, *cells, ", ".join(f"{e['label']} ({e['prob']:.3f})" for e in top))
    console = Console()
    console.print(table)
    if skipped:
        console.print(f"skipped {skipped} unreadable video(s) (see the warnings above)")


# --------------------------------------------------------------------------------------------------- the task
def check(cfg: DictConfig, output_key: str = "paths.output_dir") -> list[Path]:
    """predict.py's checks, before its output folder is made: keys, device, videos, the checkpoint (as data, unless
    `trusted=true`); the videos to predict."""
    for key in ("ckpt_path", "inputs"):
        if OmegaConf.is_missing(cfg, key):
            raise ConfigError(f"{key}: missing. Usage: python predict.py ckpt_path=PATH inputs=VIDEO|FOLDER|LIST.txt")
    check_keys(cfg, PREDICT_KEYS)
    check_predict_device(cfg.device)
    check_writable(cfg.paths.output_dir, output_key)
    inputs = OmegaConf.to_container(cfg.inputs) if OmegaConf.is_list(cfg.inputs) else cfg.inputs
    with reported_as("inputs"):
        paths = video_paths(inputs)
    if not paths:
        raise ConfigError(f"inputs: no videos ({', '.join(VIDEO_SUFFIXES)}) found in '{cfg.inputs}'.")
    read_checkpoint_argument(cfg.ckpt_path, bool(cfg.trusted))  # missing, foreign, a pickle, a model not ours
    return paths


def predict(cfg: DictConfig) -> list[dict[str, Any]]:
    """predict.py: top-k class names per video, printed and written as predictions.json / .csv."""
    paths = check(cfg)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    with reported_as("predict"):
        results = predict_videos(
            cfg.ckpt_path,
            [str(p) for p in paths],
            topk=int(cfg.topk),
            views=cfg.views,
            batch_size=int(cfg.batch_size),
            num_workers=int(cfg.num_workers),
            device=cfg.device,
            precision=str(cfg.precision),
            progress=True,
            trusted=bool(cfg.trusted),
        )
    json_path, csv_path = write(results, cfg.paths.output_dir)
    print_results(results, skipped=len(paths) - len(results))
    print(f"wrote {json_path} and {csv_path}")
    return results


job = hydra_job(predict)  # what Hydra runs for each job of `predict` (a SLURM sweep's launcher pickles it)


def main(root: str | Path | None = None) -> Any:
    """The command: `python predict.py`, `vivit-predict`, `python -m vivit.tasks.predict` (vivit.tasks.command)."""
    return run_command("predict", job, root, check=check)


if __name__ == "__main__":
    main()

"""ViViT in PyTorch, with Lightning + Hydra experiments. One subpackage ("room") per concern; arrows run one way
(each room's docstring says what it may import; tests/test_architecture.py holds the code to it):

    tasks        train, evaluate, predict, build, the one way in            every room
    runtime      config composition, errors, preflight, ranks, SLURM, runs  weights, models, common
    training     the LightningModule, callbacks, seeding                    evaluation, models, common
    evaluation   metrics, the whole-split evaluation, reports               tracking, datamodules, common
    tracking     W&B, continued logs, dashboards, console                   models, datamodules, common
    weights      checkpoints, image-ViT init, converters, export            models, common
    experiments  the paper's tables, the sweep collector (repo experiments/)  models, weights, common
    datamodules  annotations -> records -> frames -> clips (repo datamodules/)  common
    models       the four variants, the zoo of variant x size, FLOPs        common
    common       atomic files, the one torch.load, the choice checker       nothing of the project

The top-level modules are the public API (`load_checkpoint`, `predict`; `vivit.models.create_model`) and the tool
commands `python -m vivit.convert | flops | export`.
"""

from vivit.weights.checkpoint import load_checkpoint

__all__ = ["load_checkpoint", "predict"]


def __getattr__(name: str):
    # `vivit.predict` brings in the data path (PyAV, Lightning): imported on first use, so that `import vivit.models`
    # stays pure PyTorch
    if name == "predict":
        from vivit.tasks.predict import predict_videos

        return predict_videos
    raise AttributeError(f"module 'vivit' has no attribute {name!r}")

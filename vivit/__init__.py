"""ViViT in PyTorch, with Lightning + Hydra experiments. One subpackage per concern; arrows run one way:

    common      atomic file writes, the one torch.load, the choice checker         imports nothing of the project
    models      the four variants, the zoo of variant x size, FLOPs                 common
    datamodules annotations -> records -> frames -> clips (the repo's datamodules/)  common
    weights     checkpoints, image-ViT initialisation, converters, export           models, common
    tracking    loggers, dashboards, console                                        models, datamodules, common
    evaluation  whole-split metrics, reports, dataset hooks, predictions            tracking, datamodules, common
    training    the LightningModule, callbacks, seeding                             evaluation, models, common
    runtime     config composition, errors, preflight, ranks, SLURM, run folders    weights, tracking, models, common
    tasks       train, evaluate, predict: short functions over the rooms; the one way in   everything above
    experiments the paper's tables and the sweep collector (the repo's experiments/)   models, common

The public API: `load_checkpoint` (a ready model from a checkpoint), `predict` (top-k class names of videos) and
`vivit.models.create_model`.
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

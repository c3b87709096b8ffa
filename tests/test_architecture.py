"""The house rules, checked on the source (benchmarks/architecture.py reads the import graph without importing):
each room imports only what its docstring allows, no module imports itself in a circle, imports sit at module
level, files are read by one reader, broad excepts re-raise, and a new variant or regulariser stays in its few
files."""

from __future__ import annotations

import ast
import importlib.util
import sys

import pytest
import torch
from omegaconf import OmegaConf

from tests.conftest import ROOT, compose_config

spec = importlib.util.spec_from_file_location("architecture", ROOT / "benchmarks" / "architecture.py")
architecture = importlib.util.module_from_spec(spec)
sys.modules["architecture"] = architecture
spec.loader.exec_module(architecture)

MODULES = architecture.read_modules()
LIBRARY = {name: m for name, m in MODULES.items() if name not in architecture.ENTRY_POINTS}
ROOMS = sorted({architecture.room_of(n) for n in LIBRARY} - {"api", "commands"})
# imports inside functions, each for a reason: `vivit.predict` keeps `import vivit.models` free of the data path,
# onnxruntime is an optional dependency (pip install .[export]), and so are torchcodec (pip install .[torchcodec], with
# the system's FFmpeg) and webdataset, the shard writer's (pip install .[shards])
INNER_IMPORTS = {
    "vivit": ["vivit.tasks.predict"],
    "vivit.weights.export": ["onnxruntime"],
    "vivit.datamodules.reader": ["torchcodec.decoders"],
    "vivit.datamodules.shard_writer": ["webdataset"],
}


def test_the_rooms_are_the_design_cards():
    assert ROOMS == [
        "common",
        "datamodules",
        "evaluation",
        "experiments",
        "models",
        "runtime",
        "tasks",
        "tracking",
        "training",
        "weights",
    ]


@pytest.mark.parametrize("room", ROOMS)
def test_each_room_imports_only_what_its_docstring_allows(room):
    allowed = architecture.allowed_imports(room)
    edges = architecture.room_edges(LIBRARY)
    found = {b: why for (a, b), why in edges.items() if a == room}
    if allowed is None:  # the tasks: every room
        assert not {"api", "commands"} & set(found), found
        return
    assert set(found) <= allowed, {b: why for b, why in found.items() if b not in allowed}


def test_no_room_imports_the_tasks_or_the_commands():
    edges = architecture.room_edges(LIBRARY)
    upward = {(a, b): why for (a, b), why in edges.items() if b in ("tasks", "commands") and a not in ("api",)}
    assert not upward, upward


def test_the_import_graph_has_no_cycle():
    assert architecture.cycles(MODULES) == []


def test_imports_sit_at_module_level_except_optional_ones():
    found = {name: [what for _, what in m.inner_imports] for name, m in LIBRARY.items() if m.inner_imports}
    assert found == INNER_IMPORTS


def test_every_entry_point_goes_through_its_task_module():
    for entry, task in (
        ("train.py", "vivit.tasks.train"),
        ("eval.py", "vivit.tasks.evaluate"),
        ("predict.py", "vivit.tasks.predict"),
    ):
        assert MODULES[entry].imports == {task}  # the same `main` as the console script and `python -m`


def _calls(tree: ast.AST, dotted: str) -> list[int]:
    owner, _, attribute = dotted.rpartition(".")
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == attribute
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == owner
    ]


def test_torch_load_is_called_in_one_module():
    readers = {name for name, m in LIBRARY.items() if _calls(ast.parse(m.path.read_text()), "torch.load")}
    assert readers == {"vivit.common.files"}


def test_one_list_of_video_suffixes():
    defined = [name for name, m in LIBRARY.items() if "VIDEO_SUFFIXES = (" in m.path.read_text()]
    assert defined == ["vivit.datamodules.records"]


def test_broad_excepts_re_raise():
    """`except Exception` (or bare, or BaseException) only where the handler ends by raising again: a bug keeps
    its traceback; only the failures a handler means are caught and kept going."""
    broad = []
    for module in LIBRARY.values():
        for node in ast.walk(ast.parse(module.path.read_text())):
            if isinstance(node, ast.ExceptHandler):
                caught = node.type
                is_broad = caught is None or (
                    isinstance(caught, ast.Name) and caught.id in ("Exception", "BaseException")
                )
                if is_broad and not isinstance(node.body[-1], ast.Raise):
                    broad.append(f"{module.path}:{node.lineno}")
    assert broad == []


def test_no_test_helper_in_library_code():
    for name, module in LIBRARY.items():
        text = module.path.read_text()
        assert "unittest" not in text and "pytest" not in text, name


# -- the cost of a change ------------------------------------------------------------------------------------------
def test_a_fifth_variant_is_one_class_in_one_file(tmp_path):
    """A made-up variant, written as a contributor would add it to vivit/models/: a class registered in the zoo
    (and nothing else) gets a model name per size, Hydra configs, the allow-list of checkpoints, FLOPs, FSDP's
    wrapping and image-ViT initialisation. The files a contributor touches: that one (plus its docs row)."""
    from timm.models.vision_transformer import VisionTransformer

    from vivit.models import VARIANTS, block_classes, model_names
    from vivit.models.flops import build_meta_model, model_stats
    from vivit.runtime.config import register_configs
    from vivit.weights.pretrained import initialise

    source = """
from vivit.models import SpatioTemporalViViT, register_variant


@register_variant("toy", "A made-up fifth variant: Model 1 with a mean over time before the head")
class ToyViViT(SpatioTemporalViViT):
    def forward_features(self, video):
        return super().forward_features(video)
"""
    (tmp_path / "toy_variant.py").write_text(source)
    sys.path.insert(0, str(tmp_path))
    try:
        import toy_variant  # noqa: F401  (registers the variant, as vivit/models/__init__.py imports its modules)

        register_configs()  # what importing vivit.runtime.config does at start-up
        assert {"vivit_ti_toy", "vivit_b_toy", "vivit_h_toy"} <= set(model_names())
        cfg = compose_config(
            "train",
            ["model=vivit_ti_toy", "model.img_size=32", "model.num_frames=4", "model.depth=2", "model.embed_dim=48"],
        )
        assert cfg.model._target_ == "toy_variant.ToyViViT"  # where it lives
        config = {**OmegaConf.to_container(cfg.model, resolve=True), "num_classes": 5}
        from vivit.models import build_model

        net = build_model(config)
        assert net(torch.zeros(2, 3, 4, 32, 32)).shape == (2, 5)
        assert model_stats(build_meta_model(config))["gflops"] > 0
        assert block_classes() >= {type(net.blocks[0])}
        vit = VisionTransformer(img_size=32, patch_size=16, embed_dim=48, depth=2, num_heads=3, num_classes=0)
        report = initialise(net, vit)  # an image ViT of the same width
        assert "pos_embed" in report.adapted and report.kept == ["head.bias", "head.weight"]
    finally:
        sys.path.remove(str(tmp_path))
        VARIANTS.pop("toy", None)
        sys.modules.pop("toy_variant", None)
        register_configs()


def test_regularisation_presets_state_only_what_they_turn_on():
    """One place for the regularisers' defaults (regularisation/none.yaml): every preset includes it and the
    module takes each regulariser from it, so a new regulariser is one key there, one argument in
    conf/module/default.yaml and its code (3 files; the README walks through it)."""
    base = OmegaConf.load(ROOT / "conf" / "regularisation" / "none.yaml")
    module = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "module" / "default.yaml"))
    for key in base.regularisation:
        assert module[key] == f"${{regularisation.{key}}}", key
    for preset in (ROOT / "conf" / "regularisation").glob("*.yaml"):
        text = OmegaConf.load(preset)
        if preset.stem != "none":
            assert list(text.defaults) == ["none", "_self_"], preset.name
            assert set(text.get("regularisation", {})) <= set(base.regularisation), preset.name
        cfg = compose_config("train", [f"regularisation={preset.stem}"])
        assert set(cfg.regularisation) == set(base.regularisation), preset.name

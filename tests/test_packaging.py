"""The wheel ships every package under the project's name, every config of conf/ and the console commands (CI
installs it and runs them: .ci/run)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import CONF, ROOT


def test_wheel_holds_the_packages_the_configs_and_the_console_commands(tmp_path):
    # built from a copy without build/: setuptools reuses build/lib, so a stale one from an earlier build would
    # ship files the project no longer ships (a hand-break of the package-data stayed green on it)
    source = tmp_path / "source"
    top_level = {"build", "outputs", "data", "multirun", "wandb", "lightning_logs"}

    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n.startswith(".") or n.endswith(".egg-info") or n == "__pycache__"}
        return skipped | (top_level & set(names) if Path(folder) == ROOT else set())

    shutil.copytree(ROOT, source, ignore=ignore, symlinks=True)  # as a clone has them: vivit/conf is a link
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            str(source),
            "-w",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    [wheel] = tmp_path.glob("vivit_framework-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"vivit/conf/{p.relative_to(CONF).as_posix()}" for p in CONF.rglob("*.yaml")}
    assert len(configs) > 50 and configs <= names  # every config, in its group folder
    for module in (
        "vivit/tasks/train.py",
        "vivit/tasks/predict.py",
        "vivit/models/vivit.py",
        "vivit/datamodules/datamodule.py",
        "vivit/datamodules/index/epic100.py",
        "vivit/experiments/collect.py",
    ):
        assert module in names
    top_level = {n.split("/")[0] for n in names if "/" in n and ".dist-info/" not in n}
    assert top_level == {"vivit"}  # no generic top-level name (datamodules, experiments) in site-packages
    [entry_points] = [n for n in names if n.endswith("entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    commands = {
        "train": "vivit.tasks.train:main",
        "eval": "vivit.tasks.evaluate:main",
        "predict": "vivit.tasks.predict:main",
        "convert": "vivit.convert:main",
        "flops": "vivit.flops:main",
        "export": "vivit.export:main",
    }
    for command, target in commands.items():
        assert f"vivit-{command} = {target}" in text

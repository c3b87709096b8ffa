"""Configs read back from files are data: they select what the project defines and nothing else.

A config that comes from a file rather than the command line (a checkpoint's `vivit_config`, a run folder's
`.hydra/overrides.yaml` replayed by `resume=`) could otherwise make Hydra call anything: `_target_: torch.load`
with `weights_only: false` runs a pickle's payload, a config group choice `data=../../../tmp/x` composes a file from
outside conf/, an interpolation `${oc.env:WANDB_API_KEY}` copies a secret into the logged config. So such a config
may

- name a `_target_` only if it is a model of the model registry or a class or function that the project's own
  configs (conf/) name: the datasets, the LightningModule, Lightning's trainer, loggers and callbacks, ...;
- choose in a config group only a config of conf/ (or the model zoo);
- interpolate other keys (`${model.num_frames}`) but call no resolver (`${oc.env:...}`, `${now:...}`);
- set nothing of Hydra's own (`hydra.*`, `hydra/...`: callbacks, search path, launcher), and never `trusted`.

Anything else is a one-line ConfigError naming the file and the key. `trusted=true` on the command line lifts these
rules, as it lifts `weights_only` for pickles, for files you made yourself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException

from vivit.models import model_names
from vivit.models.registry import model_class

from .config import CONF_DIR
from .errors import ConfigError

RESOLVER = re.compile(r"(?<!\\)\$\{\s*([\w.\-]+)\s*:")  # ${name:...} calls a resolver; ${a.b} does not
TRUSTED_KEY = "trusted"
ADVICE = "if you made it yourself, add trusted=true to the command line"


@cache
def project_targets() -> frozenset[str]:
    """Every `_target_` that a config of conf/ names (the allow-list of configs read back from files)."""
    found: set[str] = set()
    for path in CONF_DIR.rglob("*.yaml"):
        found.update(_targets_in(yaml.safe_load(path.read_text(encoding="utf-8"))))
    return frozenset(found)


def _targets_in(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "_target_" and isinstance(value, str):
                yield value
            else:
                yield from _targets_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from _targets_in(value)


def target_allowed(target: str, group: str) -> bool:
    """Whether a config read back from a file may name `target` in the config group `group` (the model group: the
    registry's classes only)."""
    if group == "model":
        try:
            model_class(target)
        except ValueError:
            return False
        return True
    return target in project_targets()


def refusal(source: str, key: str, value: Any, why: str) -> ConfigError:
    return ConfigError(f"{source} sets {key}={value!r}, {why}; a config read back from a file is data ({ADVICE}).")


def check_read_back(node: Any, key: str, source: str, group: str | None = None) -> None:
    """`node` (a plain config read from `source`, found at `key`; in the config group `group`, by default the first
    part of `key`) names only what the project defines (see the module docstring); else a ConfigError naming the
    file and the key."""
    group = key.split(".")[0] if group is None else group
    if isinstance(node, Mapping):
        for name, value in node.items():
            child = f"{key}.{name}" if key else str(name)
            if name == "_target_":
                if not isinstance(value, str) or not target_allowed(value, group):
                    raise refusal(source, child, value, "which is not a class that this project's configs name")
            else:
                check_read_back(value, child, source, group)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            check_read_back(value, f"{key}.{i}", source, group)
    elif isinstance(node, str) and (match := RESOLVER.search(node)):
        raise refusal(source, key, node, f"which calls the resolver {match.group(1)!r}")


@cache
def config_groups() -> frozenset[str]:
    """The config groups of conf/ (its folders, `experiment/paper` included) and the model zoo's."""
    return frozenset({str(p.relative_to(CONF_DIR)) for p in CONF_DIR.rglob("*") if p.is_dir()} | {"model"})


def group_option_exists(group: str, option: str) -> bool:
    if group == "model" and option in model_names():
        return True
    if ".." in option.split("/") or option.startswith("/"):
        return False
    return (CONF_DIR / group / f"{option}.yaml").is_file()


def read_back_overrides(overrides: list[str], source: str) -> list[str]:
    """The command-line overrides a run saved (`source`: its overrides file), checked as data; `trusted=...` is
    dropped (it is taken from the command line only, never from a file)."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as error:
        raise ConfigError(f"{source}: not a list of overrides ({str(error).splitlines()[0]})") from error
    kept = []
    for text, override in zip(overrides, parsed):
        if override.key_or_group == TRUSTED_KEY:
            continue
        _check_override(override, text, source)
        kept.append(text)
    return kept


def _check_override(override: Override, text: str, source: str) -> None:
    key = override.key_or_group
    if key == "hydra" or key.startswith(("hydra.", "hydra/")):
        raise refusal(source, key, override.value(), "a setting of Hydra itself (a run's overrides never hold one)")
    if override.is_sweep_override():
        raise refusal(source, key, text.partition("=")[2], "a sweep (a run's overrides hold single values)")
    group = key.split("@")[0]
    value = override.value()
    if group in config_groups() and not override.is_delete():
        options = value if isinstance(value, list) else [value]
        if not all(o is None or (isinstance(o, str) and group_option_exists(group, o)) for o in options):
            raise refusal(source, group, value, f"which is not a config of conf/{group}/")
        return
    if key.endswith("_target_"):
        if not isinstance(value, str) or not target_allowed(value, key.split(".")[0]):
            raise refusal(source, key, value, "which is not a class that this project's configs name")
        return
    check_read_back(value, key, source)

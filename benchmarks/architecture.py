"""The shape of the code, measured from the source: the rooms and what each imports, the import graph and its
cycles, the biggest modules, and what each entry point pulls in.

    python benchmarks/architecture.py [--json benchmarks/results/architecture.json]

Nothing is imported: every `import` statement of a project module (at module level or inside a function) is an
edge of the graph. A room is a subpackage of `vivit` (`vivit.datamodules` and `vivit.experiments` are the
repository's datamodules/ and experiments/ folders); the top-level modules of `vivit` are the commands and the API.
What a room may import is the "May import:" line of its docstring; tests/test_architecture.py holds the code to it.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the repository's folders and the names they are imported by
PACKAGES = {"vivit": "vivit", "datamodules": "vivit.datamodules", "experiments": "vivit.experiments"}
ENTRY_POINTS = ("train.py", "eval.py", "predict.py")


@dataclass
class Module:
    name: str
    path: Path
    lines: int
    imports: set[str] = field(default_factory=set)  # project modules
    inner_imports: list[tuple[int, str]] = field(default_factory=list)  # (line, module) imported inside a function


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every project module by its import name (links such as vivit/datamodules are followed once, by name)."""
    modules = {}
    for folder, name in PACKAGES.items():
        base = root / folder
        for path in sorted(base.rglob("*.py")):
            relative = path.relative_to(base)
            if relative.parts[0] in ("conf", "datamodules", "experiments") and folder == "vivit":
                continue  # the links to the other folders, and the configs
            parts = [*name.split("."), *relative.with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    for entry in ENTRY_POINTS:
        modules[entry] = root / entry
    return modules


def _targets(node: ast.Import | ast.ImportFrom, package: str, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(anchor + ([base] if base else []))
        # `from package import submodule` imports the submodule; `from module import name` the module
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    found = []
    for name in names:
        parts = name.split(".")
        for n in range(len(parts), 0, -1):  # the longest project module the name starts with
            if ".".join(parts[:n]) in known:
                found.append(".".join(parts[:n]))
                break
    return found


def read_modules(root: Path = ROOT) -> dict[str, Module]:
    files = module_files(root)
    known = set(files)
    modules = {}
    for name, path in files.items():
        text = path.read_text()
        tree = ast.parse(text)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        module = Module(name, path, len(text.splitlines()))
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        inner = {id(n) for f in functions for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                targets = _targets(node, package, known)
                module.imports.update(t for t in targets if t != name)
                if id(node) in inner:
                    what = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                    module.inner_imports.append((node.lineno, what or "."))
        modules[name] = module
    return modules


def room_of(name: str) -> str:
    """`vivit.models.flops` -> "models"; the top-level modules of vivit are "commands" (vivit itself: "api")."""
    if name in ENTRY_POINTS:
        return "entry points"
    parts = name.split(".")
    if parts == ["vivit"]:
        return "api"
    return parts[1] if len(parts) > 2 or (ROOT / "vivit" / parts[1] / "__init__.py").exists() else "commands"


def allowed_imports(room: str, root: Path = ROOT) -> set[str] | None:
    """The rooms a room may import, from the "May import:" line of its docstring (None: every room)."""
    init = root / "vivit" / room / "__init__.py"
    docstring = ast.get_docstring(ast.parse(init.read_text())) or ""
    match = re.search(r"May import:(.*?)(\.\s*$|\.\s*\n|\n\n)", docstring, re.S)
    if match is None:
        raise ValueError(f"{init}: the docstring has no 'May import:' line")
    text = " ".join(match.group(1).split())
    if "every room" in text:
        return None
    return set(re.findall(r"vivit\.(\w+)", text))


def room_edges(modules: dict[str, Module]) -> dict[tuple[str, str], list[str]]:
    """(room, room it imports) -> the module imports that make the edge."""
    edges: dict[tuple[str, str], list[str]] = {}
    for module in modules.values():
        for target in module.imports:
            a, b = room_of(module.name), room_of(target)
            if a != b:
                edges.setdefault((a, b), []).append(f"{module.name} -> {target}")
    return edges


def cycles(modules: dict[str, Module]) -> list[list[str]]:
    """Strongly connected sets of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in modules[v].imports:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for name in modules:
        if name not in index:
            visit(name)
    return found


def closure(modules: dict[str, Module], start: str) -> set[str]:
    """Every project module `start` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in modules[todo.pop()].imports:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    seen.discard(start)
    return seen


def report(root: Path = ROOT) -> dict:
    modules = read_modules(root)
    library = {n: m for n, m in modules.items() if n not in ENTRY_POINTS}
    biggest = sorted(library.values(), key=lambda m: -m.lines)[:5]
    rooms = sorted({room_of(n) for n in library})
    return {
        "modules": len(library),
        "rooms": {room: sorted(n for n in library if room_of(n) == room) for room in rooms},
        "biggest_modules": [{"name": m.name, "lines": m.lines} for m in biggest],
        "cycles": cycles(modules),
        "room_edges": sorted(f"{a} -> {b}" for a, b in room_edges(library)),
        "entry_points": {
            e: {"direct": sorted(modules[e].imports), "all": sorted(closure(modules, e))} for e in ENTRY_POINTS
        },
        "most_imports": sorted(((m.name, len(m.imports)) for m in library.values()), key=lambda x: -x[1])[:5],
        "inner_imports": {m.name: m.inner_imports for m in library.values() if m.inner_imports},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    figures = report()
    print(f"{'project modules':<36}{figures['modules']:>5}")
    for row in figures["biggest_modules"][:3]:
        print(f"{'  ' + row['name']:<36}{row['lines']:>5} lines")
    print(f"{'import cycles':<36}{len(figures['cycles']):>5}  " + "; ".join(" <-> ".join(c) for c in figures["cycles"]))
    for entry, found in figures["entry_points"].items():
        print(f"{entry + ' imports (direct / in all)':<36}{len(found['direct']):>5} / {len(found['all'])}")
    for name, count in figures["most_imports"][:3]:
        print(f"{'  imports of ' + name:<36}{count:>5}")
    print(f"{'imports inside functions':<36}{sum(len(v) for v in figures['inner_imports'].values()):>5}")
    print("rooms (arrows: who imports whom)")
    for edge in figures["room_edges"]:
        print(f"  {edge}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()

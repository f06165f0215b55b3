"""The rooms and doors of the package, enforced by reading every module's imports (function-level ones too).

Doors: ``cli -> api -> search -> training -> pruning -> records``; ``formats -> records``; ``tasks`` and
``tracking`` sit beside ``training``; ``report`` sits beside ``api`` (it reads search results and tracked runs);
nothing imports ``cli``; the core never imports upward. A change that opens a new door must change the table
below, on purpose.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import sparsesearch

PACKAGE = Path(sparsesearch.__file__).parent

#: room -> the rooms it may import (besides itself). "" is the package's top level (``__init__``).
DOORS: dict[str, set[str]] = {
    "errors": set(),
    "records": {"errors", ""},
    "formats": {"records", "errors", ""},
    "pruning": {"records", "errors", ""},
    "testing": {"pruning", "records", "errors", ""},
    "tasks": {"records", "errors", ""},
    "training": {"pruning", "tasks", "records", "errors", ""},
    "tracking": {"formats", "records", "errors", ""},
    "search": {"training", "pruning", "tasks", "tracking", "formats", "records", "errors", ""},
    # the study report reads a study (search's results, the tracker's client) and is never imported below
    "report": {"search", "tracking", "records", "formats", "errors", ""},
    "api": {"report", "search", "training", "pruning", "tasks", "tracking", "formats", "records", "errors", ""},
    "cli": {"api", "report", "search", "training", "pruning", "tasks", "tracking", "formats", "records", "errors",
            ""},
    "": set(),  # sparsesearch/__init__.py loads sparsesearch.api lazily, by name, on first use
    "__main__": {"cli"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def _imports(path: Path) -> set[str]:
    """Every sparsesearch module ``path`` imports, at any depth of the file."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("sparsesearch")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sparsesearch") \
                and node.level == 0:
            # ``from package import submodule`` depends on the submodule, not on the package's __init__
            subs = {f"{node.module}.{a.name}" for a in node.names if _is_module(f"{node.module}.{a.name}")}
            out |= subs if len(subs) == len(node.names) else subs | {node.module}
    return out


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_every_import_goes_through_an_open_door() -> None:
    wrong = []
    for module, targets in _graph().items():
        room = _room(module)
        assert room in DOORS, f"{module}: a new room {room!r}; add it to DOORS with its doors"
        for target in targets:
            other = _room(target)
            if other != room and other not in DOORS[room]:
                wrong.append(f"{module} imports {target} ({room} -> {other or 'sparsesearch'})")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles_between_modules() -> None:
    graph = _graph()
    # a submodule import also runs its package's __init__; keep those edges out, they are not choices
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif state.get(nxt) is None:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if state.get(node) is None:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_nothing_imports_the_cli() -> None:
    for module, targets in _graph().items():
        if _room(module) not in ("cli", "__main__"):
            assert not any(_room(t) == "cli" for t in targets), module


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout.split()
    return {m.split(".")[0] for m in out}


def test_the_engine_imports_torch_only() -> None:
    loaded = _loaded_after("import sparsesearch.pruning, sparsesearch.testing")
    assert "torch" in loaded
    assert not loaded & {"optuna", "mlflow", "yaml", "pandas", "sqlalchemy"}, loaded


def test_reading_a_spec_or_a_recipe_does_not_import_torch(tmp_path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: s\ntask: digits-mlp\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("version: 1\npruning:\n  groups:\n  - pruning_type: magnitude\n    pattern: '2:4'\n"
                      "    target_sparsity: 0.5\n")
    inc = tmp_path / "inc.yaml"
    inc.write_text("pruning_configs:\n- op_names: ['layer.*']\ntarget_sparsity: 0.8\npattern: 4x1\nend_step: 10\n")
    loaded = _loaded_after(
        "import sparsesearch\n"
        f"s = sparsesearch.read_spec({str(spec)!r})\n"
        f"r = sparsesearch.load_recipe({str(recipe)!r})\n"
        "from sparsesearch.formats.files import read_config_file\n"
        f"read_config_file({str(inc)!r})\n"
        "from sparsesearch.records.pruning import PruningGroup, Schedule\n"
        "PruningGroup(pruning_type='snip_momentum', pattern='4x1', target_sparsity=0.9, schedule=Schedule(end_step=9))\n")
    assert "yaml" in loaded
    assert not loaded & {"torch", "optuna", "mlflow", "pandas"}, loaded


def test_a_typo_is_rejected_without_torch() -> None:
    code = ("from sparsesearch.records.pruning import PruningGroup, Schedule\n"
            "from sparsesearch.errors import ConfigError\n"
            "try:\n    PruningGroup(pruning_type='snip_momentun')\nexcept ConfigError as e:\n    print('ERR', e)\n")
    out = subprocess.run([sys.executable, "-c", code + "import sys\nprint('torch' in sys.modules)"],
                         capture_output=True, text=True, check=True).stdout
    assert "Did you mean 'snip_momentum'" in out and out.strip().endswith("False")

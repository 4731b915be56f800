"""The package's import graph, read from the source with ast (imports at module level and inside functions alike):
no cycle, and every import goes down a floor or stays in its room. The floors are the pipeline's order of
dependence; a stage meets the stages beside it through the files they write, never through an import."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src/ganablate"

# Lowest first. A room is a module or a folder of ganablate; an import goes to a room on a lower floor, or within its
# own room. `ganablate` itself is the package's __init__, which holds only its version.
FLOORS = [
    ["ganablate", "errors"],  # the error classes every floor raises
    ["catalog", "allocator", "files", "device"],  # the registries read torch-free; process and file utilities
    ["components", "data"],  # what a config names: the code registries (the architecture protocol beside them), data
    ["study"],  # the config, the design, the plan, the layout
    ["training", "scoring", "analysis"],  # the stages, side by side: they meet through run folders and tables
    ["report"],
    ["cli"],
]


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["ganablate", *path.relative_to(PACKAGE).with_suffix("").parts]
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of ganablate it imports: for `from X import name`, the submodule X.name where name is
    one, else X."""
    modules, graph = _modules(), {}
    for module, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                assert not node.level, f"{module}:{node.lineno}: a relative import; ganablate imports by full name"
                named = (f"{node.module}.{alias.name}" for alias in node.names)
                targets |= {name if name in modules else node.module for name in named}
        graph[module] = {t for t in targets if t in modules and t != module}
    return graph


def _room(module: str) -> tuple[int, str]:
    name = module.split(".")[1] if "." in module else module
    floors = [i for i, rooms in enumerate(FLOORS) if name in rooms]
    assert floors, f"{module}: on no floor; add {name!r} to FLOORS in {Path(__file__).name}"
    return floors[0], name


def test_every_module_of_the_package_is_on_one_floor():
    rooms = [name for floor in FLOORS for name in floor]
    assert len(rooms) == len(set(rooms))
    for module in _modules():
        _room(module)


def test_the_package_has_no_import_cycle():
    try:
        tuple(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_every_import_goes_down_a_floor_or_stays_in_its_room():
    upward = []
    for module, targets in import_graph().items():
        (floor, room) = _room(module)
        for target in sorted(targets):
            (to_floor, to_room) = _room(target)
            if to_floor > floor or (to_floor == floor and to_room != room):
                upward.append(f"{module} (floor {floor}) imports {target} (floor {to_floor})")
    assert upward == []


def test_the_graph_sees_imports_inside_functions_and_from_packages():
    """The reader itself: an import inside a function counts, and `from ganablate.study import design` is an import
    of the module design, not of the package."""
    graph = import_graph()
    assert "ganablate.training.train" in graph["ganablate.cli"]
    assert {"ganablate.study.design", "ganablate.components.architectures"} <= graph["ganablate.study.config"]
    assert "ganablate.study" not in graph["ganablate.study.config"]

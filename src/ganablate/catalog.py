"""What the registries hold, read torch-free: each entry's name and literal settings, from its register_* call.

Config validation, the design and the analysis must not import torch, yet they need what a registry holds: the feeds',
norms' and datasets' names, a norm's D-init family and one-line use, which losses take a gradient penalty, a metric's
direction and label. Each registry is one file of register_* calls with a literal name and literal settings beside their
code; this module reads those calls from the file's source with ast, without importing it, as setuptools reads a version
(`attr:`) statically. So adding a feed, norm, loss, metric, dataset, contrast kind or hypothesis is one call in one
file, and nothing repeats its name. tests/test_catalog.py checks that what it reads is what importing the registries
registers.

The study's outputs are registries of the same kind: a table is one register_table call beside its builder, in any
module of analysis/; a figure one register_figure call beside its drawing, in report/figures.py. The workflow reads
their names and report categories here, without pandas; `ganablate stats` imports the modules that hold the tables.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import re
from dataclasses import dataclass
from importlib.resources import files

# registry -> (its file in the package, the function its entries are registered with)
REGISTRIES = {
    "feeds": ("components/feeds.py", "register_feed"),
    "norms": ("components/norms.py", "register_norm"),
    "losses": ("components/losses.py", "register_loss"),
    "metrics": ("scoring/metrics.py", "register_metric"),
    "datasets": ("data.py", "register_dataset"),
    "kinds": ("study/contrasts.py", "register_kind"),  # contrast kinds
    "hypotheses": ("analysis/verdicts.py", "register_hypothesis"),  # a declared contrast's `test:`
    "spending": ("analysis/sequential.py", "register_spending"),  # a sequential study's error spending
}
# output -> (the files in the package that register them, a glob; the function)
OUTPUTS = {
    "tables": ("analysis/*.py", "register_table"),
    "figures": ("report/figures.py", "register_figure"),
}


@dataclass(frozen=True)
class Entry:
    name: str
    settings: dict  # the call's keyword arguments whose values are literals
    code: frozenset[str]  # the keywords whose values are code (a function, a class, a lambda)
    module: str  # the module that registers it, e.g. ganablate.analysis.cells

    def __getitem__(self, key: str):
        return self.settings[key]

    def get(self, key: str, default=None):
        return self.settings.get(key, default)


def _files(registry: str) -> tuple[list, str]:
    """(the registry's files in the package, sorted by path; the function its entries are registered with)."""
    pattern, function = REGISTRIES[registry] if registry in REGISTRIES else OUTPUTS[registry]
    folder, _, name = pattern.rpartition("/")
    root = files("ganablate").joinpath(folder) if folder else files("ganablate")
    found = sorted((f for f in root.iterdir() if fnmatch.fnmatch(f.name, name)), key=lambda f: f.name)
    return [(f"{folder}/{f.name}" if folder else f.name, f) for f in found], function


@functools.cache
def entries(registry: str) -> dict[str, Entry]:
    """The registry's entries in the order its files (by name) register them."""
    paths, function = _files(registry)
    found = {}
    for path, file in paths:
        tree = ast.parse(file.read_text())
        calls = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == function
        ]
        module = "ganablate." + path.removesuffix(".py").replace("/", ".")
        for call in sorted(calls, key=lambda node: (node.lineno, node.col_offset)):
            settings, code = {}, set()
            for keyword in call.keywords:
                try:
                    settings[keyword.arg] = ast.literal_eval(keyword.value)
                except ValueError:
                    code.add(keyword.arg)
            try:
                name = ast.literal_eval(call.args[0])
            except (IndexError, ValueError):
                raise ValueError(
                    f"{path}:{call.lineno}: {function}'s first argument: not a literal name; allowed: a string, which "
                    f"catalog.py reads without importing the file"
                ) from None
            found[name] = Entry(name, settings, frozenset(code), module)
    return found


def names(registry: str) -> tuple[str, ...]:
    return tuple(entries(registry))


def d_init_family(norm: str) -> str:
    """The family whose D init a norm's runs draw (a norm's `family`), its own name where it declares none."""
    return entries("norms")[norm].get("family") or norm


def uses(registry: str) -> dict[str, str]:
    """name -> its one-line use, for the entries that give one."""
    return {name: entry["use"] for name, entry in entries(registry).items() if "use" in entry.settings}


def compared_metrics() -> dict[str, str]:
    """The metrics a contrast compares (those with a direction), and which way is better: 'lower' or 'higher'."""
    return {name: m["better"] for name, m in entries("metrics").items() if m.get("better") is not None}


NAME = re.compile(r"[a-z][a-z0-9_-]*")  # a level's label and a path segment: no "/", "~", "=", "," or upper case


def check_new(function: str, name, taken) -> None:
    """A register_* call's guard: a name of the registries' form, not in `taken` (a ValueError of one line)."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValueError(f"{function}: {name!r} is not a name; allowed: [a-z][a-z0-9_-]*")
    if name in taken:
        raise ValueError(f"{function}: {name!r} is already registered; allowed: a new name")

"""The registries, read torch-free (catalog.py), hold what importing them registers; their guards; and the promise
they exist for: a new feed, norm, loss or metric is one call in one file, and the config, the design, training and
the analysis take it from there."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ganablate import catalog
from ganablate.components.feeds import FEEDS, register_feed
from ganablate.components.losses import LOSSES
from ganablate.components.norms import NORMS, register_norm
from ganablate.data import DATASETS
from ganablate.scoring.metrics import METRICS, register_metric

REGISTRIES = {"feeds": FEEDS, "norms": NORMS, "losses": LOSSES, "metrics": METRICS, "datasets": DATASETS}


@pytest.mark.parametrize("registry", list(REGISTRIES))
def test_the_catalog_reads_each_registry_as_importing_it_registers_it(registry):
    live = REGISTRIES[registry]
    assert catalog.names(registry) == tuple(live)
    for name, entry in catalog.entries(registry).items():
        for key, value in entry.settings.items():  # every literal setting is the registered entry's
            assert getattr(live[name], key) == value, (name, key)
        assert all(getattr(live[name], key) is not None for key in entry.code), name


def test_the_torch_free_readers_see_a_norms_family_and_use_and_the_metrics_directions():
    assert {n: catalog.d_init_family(n) for n in ("none", "batch", "ghost", "spectral")} == {
        "none": "none",
        "batch": "batch",
        "ghost": "batch",
        "spectral": "spectral",
    }
    assert catalog.uses("norms")["batch"] == NORMS["batch"].use
    assert catalog.compared_metrics() == {m: METRICS[m].better for m in METRICS if METRICS[m].better is not None}


def test_the_metrics_are_torch_fidelity_result_keys():
    import torch_fidelity

    keys = {getattr(torch_fidelity, k) for k in dir(torch_fidelity) if k.startswith("KEY_METRIC_")}
    assert {m.key for m in METRICS.values()} <= keys


def test_every_register_call_refuses_a_name_taken_a_malformed_name_and_what_is_not_code():
    with pytest.raises(ValueError, match="^register_norm: 'batch' is already registered; allowed: a new name$"):
        register_norm("batch", layer=lambda c, model: None, use="x")
    with pytest.raises(ValueError, match=r"^register_feed: 'Split/2' is not a name; allowed: \[a-z\]\[a-z0-9_-\]\*$"):
        register_feed("Split/2", d_step=FEEDS["split"].d_step, g_step=FEEDS["split"].g_step)
    with pytest.raises(TypeError, match="^register_norm: 'mine': layer must be a callable"):
        register_norm("mine", layer="BatchNorm2d", use="x")
    with pytest.raises(TypeError, match="^register_metric: 'mine': give compute or computed_with, one of them$"):
        register_metric("mine", key="k", better="lower", label="M", units="unitless")
    assert "mine" not in NORMS and "mine" not in METRICS


# docs/extending.md's example of a new entry of each registry (a python block that opens with its file's path),
# appended to that file in a copy of the package; with no other file changed it must then work: validated as a
# config's level and trained (a metric: read by the config and the catalog). The guide's examples are what is tested.
EXTENDING = Path(__file__).parents[1] / "docs/extending.md"
SETTING = {"norms": ("model", "d_norm"), "feeds": ("train", "feed"), "losses": ("train", "loss")}
SETTING |= {"metrics": ("stats", "primary_metric"), "datasets": ("dataset", "name")}


def documented_entries() -> dict[str, tuple[str, str]]:
    """registry -> (the new entry's name, its code) in docs/extending.md."""
    found = {}
    for path, code in re.findall(r"```python\n# src/ganablate/(\S+)\n(.*?)```", EXTENDING.read_text(), flags=re.S):
        registry = next(r for r, (file, _) in catalog.REGISTRIES.items() if file == path)
        found[registry] = (re.search(r'register_\w+\(\s*"(\w+)"', code).group(1), code)
    return found


def package_copy(tmp_path: Path) -> Path:
    """A copy of the package under tmp_path/site, for a test to add an entry to, as a contributor would."""
    copy = tmp_path / "site" / "ganablate"
    shutil.copytree(Path(catalog.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def appended(path: Path, code: str) -> None:
    """`code` at the end of the file `path` (the file made where it is new)."""
    path.write_text((path.read_text() + "\n\n" if path.exists() else "") + code)


def with_guide_entry(registry: str, tmp_path: Path) -> tuple[str, str]:
    """The guide's example of `registry` appended to its registry's file in a copy of the package: (name, code)."""
    name, code = documented_entries()[registry]
    appended(package_copy(tmp_path) / catalog.REGISTRIES[registry][0], code)
    return name, code


def run_in_copy(tmp_path: Path, script: str, *args: str, path=(), env: dict | None = None):
    """`script` run in a fresh interpreter with the copy of the package first on its path; its last line of output,
    read as JSON."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": ":".join([str(tmp_path / "site"), *map(str, path)]), "PATH": "/usr/bin:/bin", **(env or {})},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_the_guide_shows_a_new_entry_of_every_registry():
    assert set(documented_entries()) == set(catalog.REGISTRIES)


CHECK = """
import json, sys
from ganablate import catalog
from ganablate.study.config import validate_config
registry, name, settings, data = json.loads(sys.argv[1])
config = {"dataset": {"root": data}, "model": {"z_dim": 8, "g_width": 8, "d_width": 8},
          "train": {"steps": 2, "batch_size": 16, "checkpoints": [], "state_every": 1, "log_every": 1}}
for section, values in settings.items():
    config.setdefault(section, {}).update(values)
config = validate_config(config)
assert name in catalog.names(registry)
if registry == "metrics":
    label = catalog.entries(registry)[name]["label"]
    print(json.dumps({"compared": name in catalog.compared_metrics(), "label": label}))
else:
    from ganablate.training.train import train_run
    print(json.dumps({"status": train_run(config, 0, sys.argv[2])["status"]}))
"""


@pytest.mark.parametrize("registry", list(SETTING))  # kinds and hypotheses: tests/test_contrast_kinds.py
def test_a_new_entry_is_one_call_in_its_registrys_file(registry, synthetic_fashion_mnist, tmp_path):
    name, code = with_guide_entry(registry, tmp_path)
    section, key = SETTING[registry]
    args = json.dumps([registry, name, {section: {key: name}}, str(synthetic_fashion_mnist)])
    got = run_in_copy(tmp_path, CHECK, args, str(tmp_path / "run"))
    if registry == "metrics":
        assert got == {"compared": True, "label": re.search(r'label="([^"]+)"', code).group(1)}
    else:
        assert got == {"status": "completed"}


def test_a_registry_call_whose_name_is_not_a_literal_is_refused_in_one_line(tmp_path, monkeypatch):
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "feeds.py").write_text('NAME = "x"\nregister_feed(NAME, d_step=f, g_step=g)\n')
    monkeypatch.setattr(catalog, "files", lambda package: tmp_path)
    catalog.entries.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"^components/feeds.py:2: register_feed's first argument: not a literal"):
            catalog.entries("feeds")
    finally:
        catalog.entries.cache_clear()

"""examples/ganablate-resnet, a user's package: installed beside ganablate, its architecture is checked and studied
through its entry point alone, with no file of ganablate changed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, SNAKEMAKE

EXAMPLE = REPO / "examples/ganablate-resnet"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, str]:
    """The environment of a process that sees the example installed: pip install --target, offline (no build
    isolation, no index), from a copy so that the build leaves nothing in the repository."""
    root = tmp_path_factory.mktemp("example")
    shutil.copytree(EXAMPLE, root / "source")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--target", str(root / "site"), str(root / "source")],
        check=True,
        capture_output=True,
    )
    path = [str(root / "site"), *filter(None, [os.environ.get("PYTHONPATH")])]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path))


def _tiny(config: dict) -> dict:
    """The example's study at the tiny study's sizes: 2 seeds of 20 steps, narrow networks, two norms."""
    tiny = yaml.safe_load((REPO / "tests/configs/tiny.yaml").read_text())
    config["study"] |= {"seeds": 2}
    config["study"]["axes"]["norm"]["levels"] = ["batch", "layer"]
    config["model"] = tiny["model"]
    config["train"] = tiny["train"] | {"steps": 20, "checkpoints": [10]}
    config["eval"] = tiny["eval"]
    config["stats"] |= {"bootstrap_resamples": 1000, "power_simulations": 200}
    return config


def test_the_example_study_is_a_valid_config_only_where_the_package_is_installed(installed):
    load = f"from ganablate.study.config import load_config; load_config({str(EXAMPLE / 'study.yaml')!r})"
    assert subprocess.run([sys.executable, "-c", load], env=installed, capture_output=True).returncode == 0
    result = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True)
    assert result.returncode == 1 and "model.arch: unknown 'resnet' in the cell" in result.stderr.splitlines()[-1]


def test_check_arch_passes_the_example_architecture(installed, tmp_path):
    config = _tiny(yaml.safe_load((EXAMPLE / "study.yaml").read_text()))
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "ganablate.cli", "check-arch", "resnet", "--config", str(tmp_path / "study.yaml")],
        env=installed,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(result.stdout.splitlines()) == 3 and "FAIL" not in result.stdout
    assert "each of the study's 4 cells give finite losses (feed: split, joint; norm: batch, layer; " in result.stdout


def test_the_example_study_runs_end_to_end_over_both_architectures(installed, tiny_study, tmp_path):
    """Beside the tiny study, sharing its data and domain extractor."""
    workdir = tmp_path / "resnet"
    shutil.copytree(tiny_study, workdir, symlinks=True)
    config = _tiny(yaml.safe_load((EXAMPLE / "study.yaml").read_text()))
    config["dataset"] = yaml.safe_load((tiny_study / "config/config.yaml").read_text())["dataset"]
    (workdir / "resnet.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--configfile", "resnet.yaml", "--cores", "2"],
        cwd=workdir,
        env=installed,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    tables = workdir / "results/resnet/tables"
    runs = pd.read_csv(tables / "runs.csv")
    assert runs.groupby(["arch", "feed", "norm", "seed"]).ngroups == 16 and set(runs["arch"]) == {"dcgan", "resnet"}
    assert runs["status"].eq("completed").all()
    summary = json.loads(
        next((workdir / "results/resnet/runs").glob("*/arch~resnet/*/*/seed0/summary.json")).read_text()
    )
    assert summary["architecture"] == {"name": "resnet", "distribution": "ganablate-resnet", "version": "0.1.0"}
    contrasts = pd.read_csv(tables / "contrasts.csv")
    family = contrasts[contrasts["role"] == "confirmatory"]
    assert len(family) == 3 and family["p_holm"].notna().all()
    assert "arch" in (workdir / "results/resnet/findings.md").read_text()

"""A sequential study through the workflow, for real: a checkpoint per look, the runs its decisions ask for and no
others, its looks table and page; killed mid-study and resumed, the same decisions and the same run files."""

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import SNAKEMAKE, STUDY_CONFIG

NAME = "seq"
LOOKS = {"first": 2, "block": 2, "cap": 6}


def sequential_study(tiny_study: Path, workdir: Path) -> Path:
    """The tiny study's folder (its data and extractor) with a sequential study beside it: feed split / joint under
    BatchNorm, looks at 2, 4 and 6 seeds. At 20 steps the two feeds differ by a fraction of a percent: a margin of
    0.01% keeps the contrast open past its first look, so that the study takes more than one."""
    shutil.copytree(tiny_study, workdir, symlinks=True)
    config = yaml.safe_load((workdir / STUDY_CONFIG).read_text())
    config["study"] |= {"name": NAME, "axes": {"feed": {"levels": ["split", "joint"]}}, "seeds": LOOKS}
    config["train"]["steps"] = 20
    config["stats"] = {
        "confirmatory": [{"compare": {"feed": "joint"}, "against": {"feed": "split"}}],
        "bootstrap_resamples": 1000,
        "power_simulations": 200,
        "sequential": {"calibration_paths": 20000},
        "equivalence_margin": 0.0001,
    }
    (workdir / f"{NAME}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return workdir


def command(workdir: Path, *args) -> list[str]:
    return [*SNAKEMAKE, "--directory", str(workdir), "--config", f"study_file={NAME}.yaml", "--cores", "2", *args]


def run(workdir: Path, *args) -> subprocess.CompletedProcess:
    result = subprocess.run(command(workdir, *args), cwd=workdir, capture_output=True, text=True)
    if result.returncode:
        pytest.fail(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def study_files(workdir: Path) -> dict[str, bytes]:
    """Every decision and every run's scores and log, by path."""
    root = workdir / "results" / NAME
    files = [*root.glob("looks/*.json"), *root.glob("runs/**/metrics.csv"), *root.glob("runs/**/train_log.csv")]
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


@pytest.fixture(scope="module")
def finished(tiny_study, tmp_path_factory) -> Path:
    workdir = sequential_study(tiny_study, tmp_path_factory.mktemp("sequential") / "study")
    run(workdir)
    return workdir


def decisions(workdir: Path) -> list[dict]:
    paths = sorted((workdir / "results" / NAME / "looks").glob("look*.json"), key=lambda p: int(p.stem[4:]))
    return [json.loads(p.read_text()) for p in paths]


def test_a_sequential_study_runs_the_seeds_its_decisions_ask_for_and_no_more(finished):
    taken = decisions(finished)
    assert len(taken) > 1 and taken[-1]["stop"] and not any(d["stop"] for d in taken[:-1])
    runs = sorted(p.parent.name for p in (finished / "results" / NAME / "runs").glob("**/metrics.csv"))
    expected = 2 * LOOKS["first"] + sum(len(d["active_cells"]) * LOOKS["block"] for d in taken[:-1])
    assert len(runs) == expected
    plan = json.loads((finished / "results" / NAME / "plan.json").read_text())
    assert {d["plan_hash"] for d in taken} == {plan["hash"]} and plan["boundaries"]


def test_its_looks_table_page_and_figure_say_at_which_look_each_contrast_was_decided(finished):
    tables = finished / "results" / NAME / "tables"
    looks = pd.read_csv(tables / "looks.csv")
    assert list(looks["look"]) == list(range(1, len(decisions(finished)) + 1))
    assert looks["decision"].iloc[-1] != "open"
    page = (finished / "results" / NAME / "findings.md").read_text()
    assert "adjusted interval" in page and (finished / "results" / NAME / "figures" / "looks.png").is_file()
    contrasts = pd.read_csv(tables / "contrasts.csv")
    declared = contrasts[contrasts["role"] == "confirmatory"]
    assert (declared["verdict"] == looks["decision"].iloc[-1]).all()
    assert declared["note"].str.contains("sequential: ").all()


def test_a_second_invocation_has_nothing_to_do(finished):
    assert "Nothing to be done" in run(finished, "--dry-run").stdout


def test_killed_mid_study_and_resumed_it_reaches_the_same_decisions_with_the_same_runs(finished, tiny_study, tmp_path):
    workdir = sequential_study(tiny_study, tmp_path / "killed")
    proc = subprocess.Popen(command(workdir), cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = workdir / "results" / NAME / "looks" / "look0.json"
    deadline = time.monotonic() + 300
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # into the next look's training
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists(), "the study ended before its first decision"
    assert not (workdir / "results" / NAME / "findings.md").exists(), "the kill came after the study's end"
    run(workdir, "--unlock")
    run(workdir, "--rerun-incomplete")  # as profiles/default says, which a copied study folder does not hold
    assert study_files(workdir) == study_files(finished)


def test_a_config_changed_after_launch_decides_nothing(finished, tmp_path):
    workdir = tmp_path / "changed"
    shutil.copytree(finished, workdir, symlinks=True)
    for late in sorted((workdir / "results" / NAME / "looks").glob("look*.json"))[1:]:
        late.chmod(0o644)
        late.unlink()
    config = yaml.safe_load((workdir / f"{NAME}.yaml").read_text())
    config["stats"]["equivalence_margin"] = 0.2
    (workdir / f"{NAME}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = subprocess.run(command(workdir), cwd=workdir, capture_output=True, text=True)
    log = (workdir / "results" / NAME / "logs" / "interim" / "look1.log").read_text()
    assert result.returncode != 0 and "froze plan" in log


def test_snakemake_report_builds_for_a_sequential_study_with_its_looks(finished, tmp_path):
    report = tmp_path / "report.html"
    result = run(finished, "--report", str(report))
    assert report.is_file() and "Adding looks.png" in result.stderr + result.stdout


def test_looks_that_cannot_reach_a_verdict_are_refused_before_any_job(tiny_study, tmp_path):
    workdir = sequential_study(tiny_study, tmp_path / "silent")
    config = yaml.safe_load((workdir / f"{NAME}.yaml").read_text())
    config["study"]["seeds"] = {"first": 2, "block": 2, "cap": 64}  # O'Brien-Fleming spends ~1e-36 at 2 of 64 seeds
    config["stats"]["sequential"] |= {"spending": "obrien-fleming"}
    (workdir / f"{NAME}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = subprocess.run(command(workdir, "--dry-run"), cwd=workdir, capture_output=True, text=True)
    lines = (result.stdout + result.stderr).splitlines()
    assert result.returncode != 0 and any("study.seeds: the look at 2 seeds cannot reach a verdict" in x for x in lines)
    assert not (workdir / "results" / NAME).exists()

"""The tiny study through profiles/slurm on a real one-node SLURM cluster on localhost (tests/cluster/)."""

import re
import subprocess

import pandas as pd
import pytest
import yaml

from tests.conftest import (
    ORIGINAL_ENV,
    REPO,
    SNAKEMAKE,
    STUDY_CONFIG,
    TIERS,
    tier_enabled,
    write_tiny_study_config,
)
from tests.test_workflow_sequential import NAME as SEQUENTIAL
from tests.test_workflow_sequential import command, sequential_study, study_files

CLUSTER = REPO / "tests/cluster"


@pytest.fixture(scope="module")
def slurm_cluster(request):
    # slurm-up.sh apt-installs slurm and munge, writes /etc and starts daemons: only ever in the slurm tier.
    if not tier_enabled(request.config, "slurm"):
        pytest.skip(TIERS["slurm"][2])
    up = subprocess.run(["bash", str(CLUSTER / "slurm-up.sh")], capture_output=True, text=True, env=ORIGINAL_ENV)
    try:
        if up.returncode != 0:
            pytest.fail(f"slurm-up.sh failed:\n{up.stderr[-4000:]}")
        yield
    finally:
        subprocess.run(["bash", str(CLUSTER / "slurm-down.sh")], capture_output=True, env=ORIGINAL_ENV)


def through_slurm(argv: list[str], workdir) -> subprocess.CompletedProcess:
    """snakemake's argv through profiles/slurm on the test cluster; a failure fails the test with its output."""
    # --workflow-profile none: profiles/default (local) must not override the SLURM profile.
    # timeout -k: the executor plugin can keep polling after a cluster failure; never hang CI.
    profile = ["--workflow-profile", "none", "--profile", str(REPO / "profiles/slurm"), "--jobs", "2"]
    result = subprocess.run(
        ["timeout", "-k", "10", "1500", *argv, *profile, "--slurm-init-seconds-before-status-checks", "2"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.fail(f"the SLURM run failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


@pytest.fixture(scope="module")
def slurm_study(slurm_cluster, tmp_path_factory, synthetic_fashion_mnist):
    workdir = tmp_path_factory.mktemp("slurm-study")
    write_tiny_study_config(workdir, synthetic_fashion_mnist)
    # Blocks of runs (train_<seeds> and evaluate_<seeds>, one component of group "run"), where the local tiny study
    # has a `run` job per run: its tables must still be the local study's.
    config = yaml.safe_load((workdir / STUDY_CONFIG).read_text())
    config["train"]["runs_per_job"] = 2
    (workdir / STUDY_CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    result = through_slurm([*SNAKEMAKE, "--directory", str(workdir), "--cores", "2"], REPO)
    return workdir, result.stdout + result.stderr


@pytest.mark.slurm
def test_jobs_really_went_through_sbatch(slurm_study):
    workdir, output = slurm_study
    job_ids = set(re.findall(r"SLURM jobid (\d+)", output))
    assert job_ids, output[-3000:]
    accounted = subprocess.run(["squeue", "--states=all", "-h", "-o", "%i %T"], capture_output=True, text=True).stdout
    completed = {line.split()[0] for line in accounted.splitlines() if line.endswith("COMPLETED")}
    assert job_ids <= completed, (job_ids, accounted)
    assert any((workdir / ".snakemake/slurm_logs").rglob("*.log"))


@pytest.mark.slurm
@pytest.mark.parametrize("table", ["runs.csv", "summary.csv", "contrasts.csv", "failures.csv"])
def test_slurm_tables_equal_those_of_a_local_run(slurm_study, tiny_study, table):
    workdir, _ = slurm_study
    local = pd.read_csv(tiny_study / "results/default/tables" / table)
    remote = pd.read_csv(workdir / "results/default/tables" / table)
    pd.testing.assert_frame_equal(local, remote, check_exact=True)


@pytest.mark.slurm
def test_a_sequential_study_on_slurm_reaches_the_local_decisions_and_runs(slurm_cluster, tiny_study, tmp_path):
    """Each look's checkpoint runs on the submitting host (a localrule in no group); the runs go through sbatch."""
    local = sequential_study(tiny_study, tmp_path / "local")
    subprocess.run(command(local), cwd=local, capture_output=True, check=True)
    remote = sequential_study(tiny_study, tmp_path / "slurm")
    result = through_slurm(command(remote), remote)
    output = result.stdout + result.stderr
    assert re.search(r"SLURM jobid \d+", output) and "localcheckpoint interim:" in output, output[-3000:]
    looks = sorted((remote / "results" / SEQUENTIAL / "looks").glob("look*.json"))
    assert len(looks) > 1 and study_files(remote) == study_files(local)

"""The Snakemake workflow, run for real on the tiny config and dry-run on the default one."""

import json
import re
import shutil
import subprocess
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from ganablate.study.outputs import FIGURES, TABLES
from tests.conftest import REPO, SNAKEMAKE, STUDY_CONFIG, write_tiny_study_config


def snakemake(workdir, *args, check=True):
    result = subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    if check and result.returncode != 0:
        pytest.fail(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def with_default_config(workdir, config: dict | None = None):
    """workdir/config/config.yaml, where the workflow looks without --configfile: the repository's default study or
    the given config."""
    (workdir / STUDY_CONFIG).parent.mkdir(parents=True, exist_ok=True)
    if config is None:
        shutil.copy(REPO / STUDY_CONFIG, workdir / STUDY_CONFIG)
    else:
        (workdir / STUDY_CONFIG).write_text(yaml.safe_dump(config))
    return workdir


def planned_jobs(result) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> count."""
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:")[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"}


@pytest.fixture(scope="module")
def study_dir(tiny_study):
    return tiny_study


def test_tiny_study_produces_every_table_and_figure(study_dir):
    tables = study_dir / "results/default/tables"
    for name in (
        "runs.csv",
        "summary.csv",
        "summary.md",
        "summary.tex",
        "contrasts.csv",
        "mixed.csv",
        "power.csv",
        "trend.csv",
        "plan.json",
    ):
        assert (tables / name).stat().st_size > 0, name
    runs = pd.read_csv(tables / "runs.csv", dtype={"lr": str})
    assert runs.groupby(["feed", "lr", "seed"]).ngroups == 8 and set(runs["lr"]) == {"base", "fast"}
    assert set(runs.metric) >= {"fid", "is", "kid", "precision", "recall"}
    for name in FIGURES:
        assert (study_dir / f"results/default/figures/{name}.png").stat().st_size > 1000, name
        assert (study_dir / f"results/default/figures/{name}.pdf").stat().st_size > 1000, name
    contrasts = pd.read_csv(tables / "contrasts.csv")
    family = contrasts[contrasts["role"] == "confirmatory"]
    assert sorted(family["kind"]) == ["interaction", "simple"] and family["p_holm"].notna().all()
    findings = (study_dir / "results/default/findings.md").read_text()
    for name in ("feed", "lr", "split", "joint", "base", "fast"):  # the axes and levels, named from the config
        assert name in findings, name
    assert (study_dir / "results/default/findings.rst").read_text().startswith("Findings")


def test_each_run_records_its_cell_its_config_and_the_plan_frozen_at_launch(study_dir):
    plan = json.loads((study_dir / "results/default/plan.json").read_text())
    runs = list((study_dir / "results/default/runs/fashion-mnist").glob("lr~*/feed~*/seed*"))  # declared order
    assert len(runs) == 8
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        lr, feed = (part.split("~")[1] for part in run.parts[-3:-1])
        assert summary["cell"] == {"lr": lr, "feed": feed} and summary["plan_hash"] == plan["hash"]
        assert summary["config"]["train"]["lr_d"] == {"base": 0.0002, "fast": 0.0005}[lr]
        assert summary["config"]["train"]["feed"] == feed
    tables_plan = json.loads((study_dir / "results/default/tables/plan.json").read_text())
    assert tables_plan["plan_changed_after_launch"] is False and tables_plan["hash"] == plan["hash"]
    assert [axis["name"] for axis in tables_plan["axes"]] == ["lr", "feed"]  # the declared order, not sorted


def test_every_file_the_stats_step_writes_is_a_declared_output(study_dir):
    written = {p.name for p in (study_dir / "results/default/tables").iterdir()}
    declared = {"runs.csv", "train_logs.csv", "run_times.csv", "plan.json"} | {
        f"{t}.{e}" for t in TABLES for e in ("csv", "md", "tex")
    }
    assert written == declared


def test_a_second_invocation_has_nothing_to_do(study_dir):
    assert planned_jobs(snakemake(study_dir, "-n")) == {}


def edited_copy(study_dir, tmp_path, section: str, key: str, value):
    """A copy of the finished study whose default config has one value changed."""
    edited = tmp_path / "study"
    shutil.copytree(study_dir, edited, symlinks=True)
    config = yaml.safe_load((edited / STUDY_CONFIG).read_text())
    config[section][key] = value
    (edited / STUDY_CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))  # keep the axes in declared order
    return edited


def test_editing_only_stats_reruns_no_training_or_evaluation(study_dir, tmp_path):
    jobs = planned_jobs(snakemake(edited_copy(study_dir, tmp_path, "stats", "confidence_level", 0.9), "-n"))
    assert jobs.keys() >= {"stats", "figures", "findings"}
    assert not jobs.keys() & {"prepare_data", "train_extractor", "reference", "run", "aggregate"}


def test_editing_train_reruns_training_and_everything_after(study_dir, tmp_path):
    jobs = planned_jobs(snakemake(edited_copy(study_dir, tmp_path, "train", "lr_g", 0.0001), "-n"))
    assert jobs.get("run") == 8
    assert not jobs.keys() & {"prepare_data", "train_extractor", "reference"}


def test_editing_one_level_of_an_axis_reruns_only_that_levels_runs(study_dir, tmp_path):
    axes = yaml.safe_load((study_dir / STUDY_CONFIG).read_text())["study"]["axes"]
    axes["lr"]["levels"]["fast"] = 0.0008
    edited = edited_copy(study_dir, tmp_path, "study", "axes", axes)
    result = snakemake(edited, "-n", "-p")
    assert planned_jobs(result).get("run") == 4
    assert set(re.findall(r"--cell lr=(\w+),feed=\w+", result.stdout)) == {"fast"}


def test_stats_says_when_the_plan_changed_after_launch(study_dir, tmp_path):
    edited = edited_copy(study_dir, tmp_path, "stats", "equivalence_margin", 0.05)
    snakemake(edited, "--cores", "1", "results/default/tables/summary.csv")
    plan = json.loads((edited / "results/default/tables/plan.json").read_text())
    assert plan["plan_changed_after_launch"] is True and plan["launch_hashes"] != [plan["hash"]]


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("train", "threads", 2),
        ("eval", "threads", 2),
        ("train", "device", "auto"),
        ("eval", "device", "auto"),
        ("dataset", "download", False),  # how the data is found: the data job's --download, from the environment
    ],
)
def test_execution_settings_never_trigger_a_rerun(study_dir, tmp_path, section, key, value):
    assert planned_jobs(snakemake(edited_copy(study_dir, tmp_path, section, key, value), "-n")) == {}


def test_more_runs_per_job_reruns_each_run_from_its_last_state_to_the_same_bytes(study_dir, tmp_path):
    """train.runs_per_job changes the run jobs' command, which snakemake reruns (its code trigger); each run
    resumes from its last kept state instead of step 0, and every file but summary.json, which says so, comes out
    the same to the byte."""
    edited = edited_copy(study_dir, tmp_path, "train", "runs_per_job", 2)
    runs = sorted((edited / "results/default/runs").glob("*/*/*/seed*"))
    kept = [path for run in runs for path in run.rglob("*") if path.is_file() and path.name != "summary.json"]
    before = {path: path.read_bytes() for path in kept if "state" not in path.relative_to(edited).parts}
    snakemake(edited, "--cores", "2")
    assert {path: path.read_bytes() for path in before} == before
    assert len(runs) == 8 and all(json.loads((run / "summary.json").read_text())["resumed_from"] for run in runs)


@pytest.fixture(scope="module")
def second_study(study_dir, tmp_path_factory):
    """A study of its own beside the finished tiny one, given with --configfile and trained in blocks of the default
    config's train.runs_per_job (separate train and evaluate jobs), run to the end; with what the folder held before
    and what the dry run before it planned."""
    both = tmp_path_factory.mktemp("second") / "two"
    shutil.copytree(study_dir, both, symlinks=True)
    shared = {
        p: p.stat().st_mtime_ns for p in [*(both / "results/data").iterdir(), *(both / "results/reference").iterdir()]
    }
    first = {p: p.read_bytes() for p in (both / "results/default").rglob("*") if p.is_file() and "logs" not in p.parts}
    config = yaml.safe_load((both / STUDY_CONFIG).read_text())
    config["study"] |= {
        "name": "other",
        "axes": {"feed": {"levels": ["split", "joint"]}, "norm": {"levels": ["layer"]}},
        "seeds": 2,
    }
    config["stats"]["confirmatory"] = []
    config["train"] |= {
        "steps": 20,
        "runs_per_job": yaml.safe_load((REPO / STUDY_CONFIG).read_text())["train"]["runs_per_job"],
    }
    (both / "other.yaml").write_text(yaml.safe_dump(config))
    planned = planned_jobs(snakemake(both, "--configfile", "other.yaml", "-n"))
    snakemake(both, "--configfile", "other.yaml", "--cores", "2")
    return SimpleNamespace(dir=both, shared=shared, first=first, planned=planned)


def test_a_second_named_study_shares_the_data_and_reference_and_overwrites_nothing(second_study):
    both, jobs = second_study.dir, second_study.planned
    # its own axes only (a --configfile study is not merged into the default config's), 2 seeds in one block per cell
    assert jobs["train_0_1"] == 2 and jobs["evaluate_0_1"] == 2
    assert not jobs.keys() & {"prepare_data", "train_extractor", "reference"}
    assert {p: p.stat().st_mtime_ns for p in second_study.shared} == second_study.shared
    assert all(p.read_bytes() == content for p, content in second_study.first.items())
    assert pd.read_csv(both / "results/other/tables/runs.csv").groupby(["feed", "norm", "seed"]).ngroups == 4
    assert planned_jobs(snakemake(both, "--configfile", "other.yaml", "-n")) == {}
    assert planned_jobs(snakemake(both, "-n")) == {}


def report_of(workdir, study: str, *args) -> tuple[dict[str, set[str]], dict[str, dict]]:
    """`snakemake --report` of a study: its files by report category, and each sample grid's labels."""
    snakemake(workdir, *args, "--report", f"results/{study}/report.html")
    html = (workdir / f"results/{study}/report.html").read_text(errors="replace")
    categories = json.JSONDecoder().raw_decode(html.split("var categories = ", 1)[1])[0]
    files = {c: {f for sub in subs.values() for f in sub} for c, subs in categories.items()}
    labels = {
        m[1]: json.loads(m[2])
        for m in re.finditer(r'"([^"]+/samples/[^"]+\.png)": \{[^{}]*?"labels": (\{[^{}]*\})', html)
    }
    return files, labels


def test_the_report_of_a_configfile_study_trained_in_blocks_labels_each_runs_samples(second_study):
    """The default config's layout (train.runs_per_job 4: a block's runs trained by one job, scored by another)
    given with --configfile, reported with the same --configfile: every table and figure of that study, and each
    run's sample grids under its cell and seed."""
    files, labels = report_of(second_study.dir, "other", "--configfile", "other.yaml")
    for name, category in TABLES.items():
        assert f"results/other/tables/{name}.csv" in files[category], name
    assert files["findings"] == {"results/other/findings.md"}
    grids = {f for f in files["samples"] if "/runs/" in f}
    assert len(grids) == 4 * 2 and grids == labels.keys()  # 4 runs, a grid per checkpoint
    for path, label in labels.items():
        feed, norm, seed = re.search(r"feed~(\w+)/norm~(\w+)/seed(\d+)/", path).groups()
        assert label == {"feed": feed, "norm": norm, "seed": seed}, path


def planned_files(result) -> set[str]:
    """Every output and log of the jobs a dry run plans: all that snakemake would write, or delete on a failure."""
    text = result.stdout + result.stderr
    return {path for m in re.finditer(r"^\s+(?:output|log): (.+)$", text, re.M) for path in m[1].split(", ")}


def another_study(workdir, tmp_path, section: str, key: str, value) -> str:
    """The tiny study's config under another name with one value changed, as a --configfile beside the workdir."""
    config = yaml.safe_load((workdir / STUDY_CONFIG).read_text())
    config["study"]["name"] = "another"
    config[section][key] = value
    path = tmp_path / "another.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


def finished_files(workdir) -> dict:
    return {p: p.stat().st_mtime_ns for p in (workdir / "results").rglob("*") if p.is_file()}


@pytest.mark.parametrize(("section", "key"), [("dataset", "root"), ("eval", "extractor_epochs")])
def test_a_study_that_differs_in_a_shared_jobs_key_plans_no_job_that_writes_a_file_of_another(
    study_dir, tmp_path, synthetic_fashion_mnist, section, key
):
    """dataset.root (here: the same files through another path) and eval.extractor_epochs change the shared data,
    extractor and floors: each such file's name holds them, so the second study plans its own and writes (or,
    failing, deletes) none of the first's."""
    (tmp_path / "same-files").symlink_to(synthetic_fashion_mnist)
    value = {"root": str(tmp_path / "same-files"), "extractor_epochs": 2}[key]
    result = snakemake(study_dir, "--configfile", another_study(study_dir, tmp_path, section, key, value), "-n")
    rebuilt = {"train_extractor", "reference"} | ({"prepare_data"} if key == "root" else set())
    assert planned_jobs(result).keys() & {"prepare_data", "train_extractor", "reference"} == rebuilt
    assert {str(p.relative_to(study_dir)) for p in finished_files(study_dir)} & planned_files(result) == set()


def test_a_study_with_another_dataset_root_builds_its_own_data_and_the_first_wants_no_job(
    study_dir, tmp_path, synthetic_fashion_mnist
):
    both = tmp_path / "both"
    shutil.copytree(study_dir, both, symlinks=True)
    before = finished_files(both)
    (tmp_path / "same-files").symlink_to(synthetic_fashion_mnist)
    another = another_study(both, tmp_path, "dataset", "root", str(tmp_path / "same-files"))
    snakemake(both, "--configfile", another, "--until", "prepare_data", "--cores", "1")
    assert len(list((both / "results/data").iterdir())) == 2
    assert {p: m for p, m in finished_files(both).items() if p in before} == before
    assert planned_jobs(snakemake(both, "-n")) == {}


def test_a_study_with_a_wrong_dataset_root_fails_without_deleting_the_shared_data(study_dir, tmp_path):
    both = tmp_path / "both"
    shutil.copytree(study_dir, both, symlinks=True)
    before = finished_files(both)
    another = another_study(both, tmp_path, "dataset", "root", str(tmp_path / "no-such-folder"))
    result = snakemake(both, "--configfile", another, "--until", "prepare_data", "--cores", "1", check=False)
    assert result.returncode != 0 and "no-such-folder" in result.stdout + result.stderr
    assert {p: m for p, m in finished_files(both).items() if p in before} == before
    assert planned_jobs(snakemake(both, "-n")) == {}


@pytest.mark.parametrize(
    ("download", "root", "said"),
    [(False, None, "dataset.download is false"), (True, "empty", "downloading fashion-mnist there failed")],
)
def test_dataset_download_reaches_the_data_job_though_it_is_none_of_its_params(tmp_path, download, root, said):
    """false: the job never downloads; true with an empty dataset.root: it downloads into it (here it tries, and the
    tests' network fails it at once). Its params, which leave dataset.download out, would have it take auto."""
    (tmp_path / "empty").mkdir()
    write_tiny_study_config(tmp_path, tmp_path / "empty")
    config = yaml.safe_load((tmp_path / STUDY_CONFIG).read_text())
    config["dataset"] = {"root": root and str(tmp_path / root), "download": download}
    (tmp_path / STUDY_CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(tmp_path, "--until", "prepare_data", "--cores", "1", check=False)
    (log,) = (tmp_path / "results/logs/prepare_data").glob("*.log")
    assert result.returncode != 0 and said in log.read_text(), log.read_text()


def test_a_run_folder_removed_from_a_finished_study_is_trained_and_scored_again_with_the_tables_after_it(
    study_dir, tmp_path
):
    removed = tmp_path / "removed"
    shutil.copytree(study_dir, removed, symlinks=True)
    shutil.rmtree(removed / "results/default/runs/fashion-mnist/lr~fast/feed~joint/seed1")
    result = snakemake(removed, "-n", "-p")
    assert planned_jobs(result) == {"run": 1, "aggregate": 1, "stats": 1, "figures": 1, "findings": 1, "all": 1}
    assert " --cell lr=fast,feed=joint --seed 1 " in result.stdout + result.stderr


def test_report_opens_on_the_question_design_and_findings_and_collects_every_result(study_dir):
    files, _ = report_of(study_dir, "default")
    for name, category in TABLES.items():
        assert f"results/default/tables/{name}.csv" in files[category], name
    for name, category in FIGURES.items():
        if category != "samples":
            assert f"results/default/figures/{name}.png" in files[category], name
    assert any(f.endswith("samples_final.png") for f in files["samples"])
    assert files["findings"] == {"results/default/findings.md"}


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_the_rendered_report_shows_the_question_the_design_and_the_findings(study_dir):
    snakemake(study_dir, "--report", "results/default/report.html")
    dom = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=10000",
            "--dump-dom",
            (study_dir / "results/default/report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "The question." in dom and "The design." in dom
    plan_hash = json.loads((study_dir / "results/default/plan.json").read_text())["hash"]
    assert plan_hash in dom and "fast" in dom


def test_default_config_dry_run_plans_the_first_look_of_every_cell_in_one_job_each(tmp_path):
    with_default_config(tmp_path)
    jobs = planned_jobs(snakemake(tmp_path, "-n"))
    config = yaml.safe_load((REPO / STUDY_CONFIG).read_text())
    cells = len(config["study"]["axes"]["feed"]["levels"]) * len(config["study"]["axes"]["norm"]["levels"])
    assert config["study"]["seeds"] == {"first": 4, "block": 4, "cap": 32, "start": 500}
    assert config["train"]["runs_per_job"] == 4
    blocks = {rule: n for rule, n in jobs.items() if re.fullmatch(r"(train|evaluate|run)(_\d\w*)?", rule)}
    assert blocks == {"train_500to503": cells, "evaluate_500to503": cells}  # a look's block of 4 seeds is one job
    assert cells == 18 and jobs["plan"] == 1 and jobs["interim"] == 1


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        ({"train": {"steps": -1}}, "train.steps"),
        ({"train": {"runs_per_job": 0}}, "train.runs_per_job"),
        ({"study": {"axes": {"norm": {"levels": ["batch", "weight"]}}}}, "study.axes.norm.levels"),
        ({"study": {"axes": {"bs": {"sets": "train.batch_size", "levels": [0]}}}}, "study.axes.bs.levels.0"),
        ({"eval": {"extractors": ["inception"]}}, "eval.extractors.0"),
        ({"stats": {"primary_extractor": "inception-v3-compat"}}, "stats.primary_extractor"),
        ({"stats": {"confirmatory": [{"compare": {"feed": "mixed"}}]}}, "stats.confirmatory.0.compare.feed"),
        ({"dataset": {"name": "imagefolder"}}, "dataset.root"),
    ],
)
def test_a_bad_config_stops_the_workflow_before_any_job_naming_the_key(tmp_path, edit, key):
    with_default_config(tmp_path, edit)
    result = snakemake(tmp_path, "-n", check=False)
    assert result.returncode != 0
    assert f"config: {key}:" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


# --- stacked training (train.stack, issue 13) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("train", "seeds", "expected"),
    [
        ({"stack": 2}, 2, {"train_stack_0_1": 4}),
        ({"stack": 2}, 3, {"train_stack_0_1": 4, "train_stack_2": 4}),
        ({"stack": 8}, 3, {"train_stack_0to2": 4}),
        ({"stack": "auto", "device": "cuda"}, 2, {"train_stack_0_1": 4}),
        ({"stack": "auto", "device": "cpu"}, 2, {"run": 8}),
        ({"stack": "auto", "device": "auto"}, 2, {"run": 8}),
        ({"stack": 1}, 2, {"run": 8}),
        ({"runs_per_job": 2}, 3, {"train_0_1": 4, "train_2": 4}),
        ({"runs_per_job": 8}, 3, {"train_0to2": 4}),
        ({"runs_per_job": 2, "stack": 2}, 2, {"train_stack_0_1": 4}),  # a stack is one job already
    ],
)
def test_train_stack_plans_one_training_job_per_variant_and_block_of_seeds(
    tmp_path, synthetic_fashion_mnist, train, seeds, expected
):
    from tests.conftest import write_tiny_study_config

    write_tiny_study_config(tmp_path, synthetic_fashion_mnist)
    config = yaml.safe_load((tmp_path / STUDY_CONFIG).read_text())
    config["train"] |= train
    config["study"]["seeds"] = seeds
    (tmp_path / STUDY_CONFIG).write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", "-p")
    jobs = planned_jobs(result)
    n_variants = 4
    trains = {rule: n for rule, n in jobs.items() if rule.startswith(("train", "run")) and rule != "train_extractor"}
    assert trains == expected
    stacked = any(rule.startswith("train_stack") for rule in expected)
    # A solo run trains and scores in one job; a block of them is scored by a job of its own, a stack one run per
    # job.
    scorers = {rule: n for rule, n in jobs.items() if rule.startswith("evaluate")}
    blocks = {rule.replace("train_", "evaluate_"): n for rule, n in expected.items() if rule.startswith("train_")}
    assert scorers == ({"evaluate": n_variants * seeds} if stacked else blocks)
    # Device and threads stay flags; the stack size is a flag too, and a stack's (or a block's) seeds are its job's.
    commands = re.findall(r"ganablate (?:train|run) .*", result.stdout + result.stderr)
    assert len(commands) == sum(expected.values())
    for command in commands:
        assert not re.search(r'"(stack|device|threads|runs_per_job)"', command)
        if stacked:
            seeds_flag, size = re.search(r" --seeds ([\d,]+) --stack (\d+) ", command).groups()
            assert len(seeds_flag.split(",")) == int(size) and " --out-root results/default/runs " in command
        elif "run" not in expected:
            seeds_flag = re.search(r" --seeds ([\d,]+) --stack 1 ", command)[1]
            assert f"train_{seeds_flag.replace(',', '_').replace('0_1_2', '0to2')}" in expected


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_a_block_asks_for_the_runtime_of_its_runs_one_after_another(tmp_path, synthetic_fashion_mnist, device):
    """A block's runs train one after another, on a GPU too (unlike a stack's): a cluster must not kill a block of
    two for the runtime of one."""
    from tests.conftest import write_tiny_study_config

    write_tiny_study_config(tmp_path, synthetic_fashion_mnist)
    config = yaml.safe_load((tmp_path / STUDY_CONFIG).read_text())
    config["train"] |= {"runs_per_job": 2, "stack": 1, "device": device}
    config["study"]["seeds"] = 3
    (tmp_path / STUDY_CONFIG).write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n")
    runtimes = {
        m[1]: int(m[2])
        for m in re.finditer(r"rule (train_\d\w*):.*?resources: .*?runtime=(\d+)", result.stdout + result.stderr, re.S)
    }
    assert runtimes.keys() == {"train_0_1", "train_2"} and runtimes["train_0_1"] == 2 * runtimes["train_2"]


def test_a_stacked_study_gives_the_solo_studys_tables_within_its_seed_to_seed_spread(study_dir, tmp_path):
    """The tiny study again with train.stack: 2 (its 2 seeds of each variant in one process): training reruns
    (a stack's runs differ from solo runs by float rounding), the shared data and reference do not, and the tables
    have the solo study's shape and runs, with every stacked run's final FID within the solo runs' spread."""
    stacked = edited_copy(study_dir, tmp_path, "train", "stack", 2)
    jobs = planned_jobs(snakemake(stacked, "-n"))
    assert jobs.get("train_stack_0_1") == 4 and jobs.get("evaluate") == 8 and "run" not in jobs
    assert not jobs.keys() & {"prepare_data", "train_extractor", "reference"}
    snakemake(stacked, "--cores", "2")
    assert planned_jobs(snakemake(stacked, "-n")) == {}

    solo_tables, stacked_tables = (root / "results/default/tables" for root in (study_dir, stacked))
    assert sorted(p.name for p in stacked_tables.iterdir()) == sorted(p.name for p in solo_tables.iterdir())
    for path in solo_tables.glob("*.csv"):
        solo, other = pd.read_csv(path), pd.read_csv(stacked_tables / path.name)
        assert other.shape == solo.shape and list(other.columns) == list(solo.columns), path.name

    keys = ["feed", "lr", "seed"]
    solo_runs, stacked_runs = (pd.read_csv(tables / "runs.csv") for tables in (solo_tables, stacked_tables))
    assert set(map(tuple, stacked_runs[keys].values)) == set(map(tuple, solo_runs[keys].values))
    assert set(stacked_runs.status) == {"completed"}

    def final_fid(runs):
        fid = runs[(runs.metric == "fid") & (runs.extractor == "domain")]
        return fid[fid.step == fid.step.max()].set_index(keys).value

    solo_fid, stacked_fid = final_fid(solo_runs), final_fid(stacked_runs)
    for (feed, lr), solo in solo_fid.groupby(level=["feed", "lr"]):
        low, high = solo.min(), solo.max()
        spread = high - low
        for value in stacked_fid.loc[(feed, lr)]:
            assert low - spread <= value <= high + spread, (feed, lr, value, solo.tolist())

    for run in (stacked / "results/default/runs/fashion-mnist").glob("*/*/seed*"):
        summary = json.loads((run / "summary.json").read_text())
        assert summary["stack"] == [0, 1] and summary["status"] == "completed", run
        solo_summary = json.loads((study_dir / run.relative_to(stacked) / "summary.json").read_text())
        assert "stack" not in solo_summary and summary["config_hash"] != solo_summary["config_hash"]
        assert (run.parent / "stack-0-1/state.pt").is_file()


def test_snakemake_lint_finds_nothing_but_the_conda_lint_the_snakefile_explains(tmp_path):
    with_default_config(tmp_path)
    result = snakemake(tmp_path, "--lint", check=False)
    lints = re.findall(r"^\s+\* (.+?):?$", result.stdout + result.stderr, re.M)
    assert lints, result.stdout + result.stderr  # the conda lint, once per rule: the parser found the lints
    assert {lint for lint in lints if "conda environment or container" not in lint} == set()


def _tiny_named_study(study_dir, tmp_path, name: str, axes: dict, stats: dict, model: dict | None = None):
    """A study of its own beside the tiny one (sharing its data and extractor), 2 seeds of 20 steps, run to the end."""
    both = tmp_path / name
    shutil.copytree(study_dir, both, symlinks=True)
    config = yaml.safe_load((both / STUDY_CONFIG).read_text())
    config["study"] |= {"name": name, "axes": axes, "seeds": 2}
    config["stats"] = {"bootstrap_resamples": 1000, "power_simulations": 200} | stats
    config["train"]["steps"] = 20
    config["model"] |= model or {}
    (both / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    snakemake(both, "--configfile", f"{name}.yaml", "--cores", "2")
    return both / "results" / name


def test_the_mechanism_studys_feeds_and_contrasts_run_end_to_end(study_dir, tmp_path):
    feeds = ["split", "joint", "joint_consistent", "split_g_mixed", "joint_cached_stats"]
    mismatch = {
        "kind": "linear",
        "weights": {"feed": {"joint": 1, "split_g_mixed": 1, "split": -1, "joint_consistent": -1}},
    }
    study = _tiny_named_study(
        study_dir,
        tmp_path,
        "mechanism",
        {"feed": {"levels": feeds, "reference": "split"}},
        {
            "confirmatory": [mismatch, {"compare": {"feed": "joint_cached_stats"}, "against": {"feed": "joint"}}],
            "mechanism": {"axis": "feed", "reference": "split", "broken": "joint", "repaired": "joint_cached_stats"},
        },
    )
    contrasts = pd.read_csv(study / "tables/contrasts.csv")
    family = contrasts[contrasts["role"] == "confirmatory"]
    assert set(family["contrast"]) == {
        "feed[joint + split_g_mixed - split - joint_consistent]",
        "feed: joint_cached_stats vs joint",
    }
    assert family["ratio"].notna().all() and family["p_holm"].notna().all()
    assert pd.read_csv(study / "tables/mechanism.csv")["repaired"].eq("joint_cached_stats").all()
    assert "feed[joint + split_g_mixed - split - joint_consistent]" in (study / "findings.md").read_text()


def test_the_remedies_study_runs_end_to_end_with_its_practitioners_table(study_dir, tmp_path):
    study = _tiny_named_study(
        study_dir,
        tmp_path,
        "remedies",
        {"feed": {"levels": ["split", "joint"]}, "norm": {"levels": ["batch", "ghost", "reference"]}},
        {
            "confirmatory": [
                {
                    "compare": {"feed": "joint", "norm": norm},
                    "against": {"feed": "split", "norm": "batch"},
                    "test": "noninferiority",
                }
                for norm in ("ghost", "reference")
            ],
            "mechanism": None,
            "remedies": {
                "axis": "norm",
                "reference": "batch",
                "feed_axis": "feed",
                "working": "split",
                "broken": "joint",
            },
        },
        model={"reference_size": 8},
    )
    table = pd.read_csv(study / "tables/remedies.csv")
    assert list(table["norm"]) == ["ghost", "reference"]
    assert table["fix_ratio"].notna().all() and table["cost_ratio"].gt(0).all()
    # D's init shared across BatchNorm's family: joint+ghost at one chunk per source is split+batch's computation,
    # bit for bit, end to end (issue 27); the other remedy gets one of non-inferiority's three outcomes
    verdicts = dict(zip(table["norm"], table["fix_verdict"]))
    assert verdicts["ghost"] == "identical"
    assert verdicts["reference"] in {"non-inferior", "inferior", "inconclusive"}
    assert "ghost" in (study / "findings.md").read_text()


@pytest.mark.parametrize("study", ["config/remedies-v2.yaml", "tiny"])
def test_the_plan_frozen_at_launch_is_the_config_files_plan_with_levels_in_declared_order(tmp_path, study):
    """The workflow hands its jobs the config with sorted keys; an axis's levels given as a mapping keep their
    declared order (remedies-v2's chunk: source, 64, 32, 16), or the launch plan would differ from the file's."""
    from ganablate.study.config import load_config
    from ganablate.study.plan import plan_hash, plan_of

    if study == "tiny":
        config = yaml.safe_load((REPO / "tests/configs/tiny.yaml").read_text())
        config["study"]["axes"]["lr"]["levels"] = {"fast": 0.0005, "base": 0.0002, "mid": 0.0003}
        (tmp_path / "study.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    else:
        shutil.copy(REPO / study, tmp_path / "study.yaml")
    expected = plan_of(load_config(tmp_path / "study.yaml"))
    name = expected["study"]
    snakemake(tmp_path, "--configfile", "study.yaml", "--cores", "1", f"results/{name}/plan.json")
    frozen = json.loads((tmp_path / f"results/{name}/plan.json").read_text())
    assert [axis["levels"] for axis in frozen["axes"]] == [axis["levels"] for axis in expected["axes"]]
    assert frozen["hash"] == plan_hash(expected)

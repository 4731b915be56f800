"""Malformed config files are refused before any job, in one line naming the key or the file: NaN and infinities,
values beyond what the machine can do, names and labels with a newline, a YAML alias bomb (at once), a file that is
not UTF-8, and a YTE template (which `snakemake --configfile` would evaluate; `--config study_file=` evaluates
nothing)."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from ganablate.cli import main
from ganablate.errors import ConfigError
from ganablate.study.config import validate_config
from tests.conftest import SNAKEMAKE


def alias_bomb() -> str:
    """study.seeds as nine levels of nine aliases: ten lines that expand to 9^9 seeds."""
    lines = ["study:", "  seeds:", "    - &a0 [0, 1, 2, 3, 4, 5, 6, 7, 8]"]
    lines += [f"    - &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


def mapping_bomb() -> str:
    """The same of mappings, which snakemake's update_config walks key by key (it hung on it)."""
    keys = [f"k{j}" for j in range(9)]
    lines = ["junk:", f"  - &m0 {{{', '.join(f'{k}: 0' for k in keys)}}}"]
    lines += [f"  - &m{i} {{{', '.join(f'{k}: *m{i - 1}' for k in keys)}}}" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


# The YTE template of the reliability review: a dry run of `snakemake --configfile` ran its Python.
YTE = '__use_yte__: true\nstudy:\n  name: ?str(__import__("pathlib").Path("MARKER").touch()) and "yte"\n'

MALFORMED = {  # id: (the file's content, what its one line of error says)
    "nan": ("train:\n  lr_d: .nan\n", "train.lr_d: nan is not finite; allowed: a finite number"),
    "infinity": ("stats:\n  failure_threshold: .inf\n", "stats.failure_threshold: inf is not finite"),
    "nan-level": (
        "study:\n  axes:\n    lr: {sets: train.lr_d, levels: {a: -.inf, b: 0.0002}}\n",
        "study.axes.lr.levels.a: -inf is not finite",
    ),
    "steps-1e30": (
        f"train:\n  steps: {10**30}\n",
        f"train.steps: {10**30} is greater than the maximum of 10000000 (1000 steps take about 30 s",
    ),
    "batch-1e9": ("train:\n  batch_size: 1000000000\n", "train.batch_size: 1000000000 is greater than the maximum"),
    "batch-level-1e9": (
        "study:\n  axes:\n    bs: {sets: train.batch_size, levels: [64, 1000000000]}\n",
        "study.axes.bs.levels.1000000000: train.batch_size: 1000000000 is greater than the maximum of 65536 (a joint",
    ),
    "n-samples-1e9": ("eval:\n  n_samples: 1000000000\n", "eval.n_samples: 1000000000 is greater than the maximum"),
    "seeds-1e9": ("study:\n  seeds: 1000000000\n", "study.seeds: 1000000000 is greater than the maximum of 10000"),
    "name-newline": ('study:\n  name: "ok\\n"\n', "study.name: 'ok\\n' does not match"),
    "stack-newline": ('train:\n  stack: "auto\\n"\n', "train.stack: 'auto\\n'"),
    "label-newline": (
        'study:\n  axes:\n    lr: {sets: train.lr_d, levels: {"a\\n": 0.0001, b: 0.0002}}\n',
        "study.axes.lr.levels: label 'a\\n' is not safe in a path",
    ),
    "axis-newline": (
        'study:\n  axes:\n    "lr\\n": {sets: train.lr_d, levels: [0.0001, 0.0002]}\n',
        "study.axes: 'lr\\n' cannot name an axis",
    ),
    "alias-bomb": (alias_bomb(), "study.seeds.5.0.3.3.7.2: the config holds more than 100000 values"),
    "mapping-bomb": (mapping_bomb(), "the config holds more than 100000 values"),
    "not-utf8": (
        b"study:\n  name: caf\xe9\n",
        "not UTF-8 text (byte 0xe9 at offset 18); allowed: a YAML file in UTF-8",
    ),
    "nested-too-deeply": ("study: " + "[" * 600 + "]" * 600 + "\n", "not valid YAML (nested too deeply)"),
    "yte": (YTE, "__use_yte__: a YTE template"),
}


def write(path, content: str | bytes):
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return path


@pytest.mark.parametrize(("content", "expected"), MALFORMED.values(), ids=MALFORMED)
def test_ganablate_plan_refuses_a_malformed_config_in_one_line_at_once(
    tmp_path, monkeypatch, capsys, content, expected
):
    monkeypatch.chdir(tmp_path)
    config = write(tmp_path / "study.yaml", content)
    start = time.perf_counter()
    code = main(["plan", "--config", str(config), "--out", str(tmp_path / "plan.json")])
    elapsed = time.perf_counter() - start
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and expected in error, error
    assert elapsed < 1.0  # the alias bomb took minutes and gigabytes
    assert not (tmp_path / "plan.json").exists() and not (tmp_path / "MARKER").exists()


def test_the_workflows_inline_json_refuses_nan_naming_the_key(tmp_path, capsys):
    code = main(["plan", "--config-json", '{"train": {"lr_g": NaN}}', "--out", str(tmp_path / "plan.json")])
    assert code == 2 and "--config-json: train.lr_g: nan is not finite" in capsys.readouterr().err


def test_a_long_list_beyond_its_bound_is_refused_in_a_short_line_saying_why():
    with pytest.raises(ConfigError) as error:
        validate_config({"study": {"seeds": list(range(20000))}})
    message = str(error.value)
    assert message.startswith("config: study.seeds: [0, 1, 2")
    assert message.endswith(" 19999] is too long (each seed is a run of every cell)") and len(message) < 1000


def dry_run(workdir, *args):
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "-n", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,  # the alias bomb ran past 120 s
    )


@pytest.mark.parametrize(
    ("form", "case", "expected"),
    [
        ("--configfile", "name-newline", "config: study.name: 'ok\\n' does not match"),
        ("--configfile", "nan", "study.yaml: train.lr_d: nan is not finite"),
        ("--configfile", "alias-bomb", "study.yaml: study.seeds.5.0.3.3.7.2: the config holds more than 100000 values"),
        # snakemake has run the template's Python by then; the refusal keeps the workflow from using what it made.
        ("--configfile", "yte", "study.yaml: __use_yte__: a YTE template"),
        ("study_file", "yte", "study.yaml: __use_yte__: a YTE template"),
        # With --configfile snakemake's own merge walks it before the workflow runs: only study_file can refuse it.
        ("study_file", "mapping-bomb", "the config holds more than 100000 values"),
    ],
)
def test_the_workflow_refuses_a_malformed_config_before_any_job(tmp_path, form, case, expected):
    write(tmp_path / "study.yaml", MALFORMED[case][0])
    given = ["--configfile", "study.yaml"] if form == "--configfile" else ["--config", "study_file=study.yaml"]
    result = dry_run(tmp_path, *given)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and any(expected in line for line in output.splitlines()), output[-3000:]
    assert not (tmp_path / "results").exists()
    if form == "study_file":
        assert not (tmp_path / "MARKER").exists()  # read with yaml.safe_load: nothing evaluated


def test_study_file_reads_the_study_and_later_files_over_earlier_ones(tmp_path):
    write(tmp_path / "a.yaml", "study:\n  name: two\n  seeds: 2\n  axes:\n    feed: {levels: [split, joint]}\n")
    write(tmp_path / "b.yaml", "study:\n  seeds: [5]\n")
    result = dry_run(tmp_path, "--config", "study_file=[a.yaml, b.yaml]")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = set(re.findall(r"results/two/runs/fashion-mnist/[^\s,]*?/seed\d+(?=/metrics\.csv)", result.stdout))
    assert runs == {
        "results/two/runs/fashion-mnist/feed~split/seed5",
        "results/two/runs/fashion-mnist/feed~joint/seed5",
    }

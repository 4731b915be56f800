"""Each command imports only what it needs: torch-fidelity (and torchvision) only where it scores, torch not at all
in the analysis commands. Checked in a fresh interpreter each, since this one has imported everything already."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "torch_fidelity", "torchvision")


def _heavy_imported_after(code: str) -> set[str]:
    """Which of HEAVY a fresh interpreter has imported once `code` ran (a SystemExit of it is fine: --help)."""
    probe = "\n".join(
        [
            "import json, sys",
            "try:",
            *(f"    {line}" for line in code.splitlines()),
            "except SystemExit:",
            "    pass",
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))",
        ]
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(result.stdout.splitlines()[-1]))


@pytest.mark.parametrize("argv", [["evaluate", "--help"], ["floor", "--help"], ["train", "--help"], ["--help"]])
def test_building_the_parser_and_asking_for_help_imports_no_torch(argv):
    assert _heavy_imported_after(f"from ganablate.cli import main\nmain({argv!r})") == set()


@pytest.mark.parametrize(
    "command, module",
    [
        ("stats", "ganablate.analysis.tables"),
        ("figures", "ganablate.report.figures"),
        ("findings", "ganablate.report.findings"),
    ],
)
def test_analysis_commands_import_no_torch(command, module):
    # A config that is not there: the command imports its module, then stops with exit 2 before any work.
    code = (
        f"from ganablate.cli import main\nassert main([{command!r}, '--config', '/nonexistent/config.yaml']) == 2\n"
        f"assert {module!r} in sys.modules"
    )
    assert _heavy_imported_after(code) == set()


def test_training_does_not_import_torch_fidelity():
    assert "torch_fidelity" not in _heavy_imported_after("import ganablate.training.train")


def test_what_the_workflow_reads_when_it_is_parsed_imports_no_torch():
    """The Snakefile validates the config (registry names included, catalog.py) and sizes its jobs
    (study/execution.py)."""
    code = (
        "from ganablate.study.config import validate_config\nfrom ganablate.study.execution import blocks\n"
        "from ganablate.study.plan import plan_of\nconfig = validate_config({})\nblocks(config)\nplan_of(config)"
    )
    assert _heavy_imported_after(code) == set()


def test_the_stages_meet_through_files_scoring_imports_nothing_of_training_nor_training_of_scoring():
    probe = (
        "import json, sys\nimport {module}\n"
        "print(json.dumps(sorted({{m.split('.')[1] for m in sys.modules if m.startswith('ganablate.')}})))"
    )
    stages = {}
    for module in ("ganablate.scoring.evaluate", "ganablate.training.train", "ganablate.report.findings"):
        result = subprocess.run(
            [sys.executable, "-c", probe.format(module=module)], capture_output=True, text=True, check=True
        )
        stages[module] = set(json.loads(result.stdout.splitlines()[-1]))
    assert "training" not in stages["ganablate.scoring.evaluate"]
    assert "scoring" not in stages["ganablate.training.train"]
    assert not {"training", "scoring", "components"} & stages["ganablate.report.findings"]

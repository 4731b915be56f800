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

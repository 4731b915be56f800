"""The study's vocabulary that no registry holds, named once: extractors, tests, verdicts and roles.

A light module (no torch). The feeds, norms, losses, metrics, datasets, contrast kinds and hypotheses are their
registries' entries (catalog.py reads them torch-free); tests/test_vocab.py checks that the schema's enums agree with
the names here.
"""

from __future__ import annotations

from ganablate import catalog

EXTRACTORS = ("domain", "inception-v3-compat")

# The test of every contrast over seeds (stats.test), and how the tables name it. Only paired tests: runs of one
# seed are pairs, and unpaired tests (Mann-Whitney, Dunnett, Tukey) would ignore that.
TESTS = {
    "paired_t_log": "one-sample t-test over seeds on the per-seed contrast of log(metric)",
    "wilcoxon": "Wilcoxon signed-rank test over seeds on the per-seed contrast of log(metric)",
}

# What contrasts.csv's verdict column may say, from the point of view of `level` against `level_ref`: each
# hypothesis's words (analysis/verdicts.py), and the two any rule may give; and what a sequential study's difference
# says when its repeated interval lies inside the margin (analysis/sequential.py).
IDENTICAL, INCONCLUSIVE = "identical", "inconclusive"
NO_MATERIAL_DIFFERENCE = "no material difference"
VERDICTS = (
    *dict.fromkeys(w for h in catalog.entries("hypotheses").values() for w in h["words"]),
    NO_MATERIAL_DIFFERENCE,
    IDENTICAL,
    INCONCLUSIVE,
)
# contrasts.csv's role column: the declared family, the declared controls, and everything else.
ROLES = ("confirmatory", "control", "exploratory")

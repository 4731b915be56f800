"""The study's vocabulary, named once: metrics, feeds, norms, extractors, datasets, tests and verdicts.

A light module (no torch): the config schema, evaluation, statistics, figures, findings and the tests all
derive their names from here, and tests/test_vocab.py checks that the schema's enums and the torch-side
registries (feed.FEEDS, models.NORMS) agree with it. Adding a metric is one entry below plus, if it needs
one, its torch-fidelity flag in evaluate.score.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    fidelity_key: str  # the key of torch_fidelity.calculate_metrics' result
    better: str | None  # "lower" / "higher"; None: the estimator's own spread, summarized but never compared
    label: str
    units: str
    spread_of: str | None = None  # the metric whose estimator's spread it is: computed with it, skipped with it


METRICS: dict[str, Metric] = {
    "fid": Metric("frechet_inception_distance", "lower", "FID", "unitless"),
    "kid": Metric("kernel_inception_distance_mean", "lower", "KID", "unitless"),
    "is": Metric("inception_score_mean", "higher", "Inception score", "unitless"),
    "precision": Metric("precision", "higher", "Precision", "fraction"),
    "recall": Metric("recall", "higher", "Recall", "fraction"),
    "is_std": Metric("inception_score_std", None, "Inception score SD", "unitless", spread_of="is"),
    "kid_std": Metric("kernel_inception_distance_std", None, "KID SD", "unitless", spread_of="kid"),
}
COMPARED = {name: m.better for name, m in METRICS.items() if m.better is not None}

FEEDS = ("split", "joint", "joint_consistent", "split_g_mixed", "joint_cached_stats")
NORMS = (
    "none",
    "batch",
    "instance",
    "layer",
    "group",
    "spectral",
    "ghost",
    "realhalf",
    "reference",
    "virtual",
    "batch_eval",
    "batch_detached",
)
EXTRACTORS = ("domain", "inception-v3-compat")
DATASETS = ("fashion-mnist", "mnist", "cifar10", "imagefolder")

# The test of every contrast over seeds (stats.test), and how the tables name it. Only paired tests: runs of one
# seed are pairs, and unpaired tests (Mann-Whitney, Dunnett, Tukey) would ignore that.
TESTS = {
    "paired_t_log": "one-sample t-test over seeds on the per-seed contrast of log(metric)",
    "wilcoxon": "Wilcoxon signed-rank test over seeds on the per-seed contrast of log(metric)",
}

# What contrasts.csv's verdict column may say, from the point of view of `level` against `level_ref`.
VERDICTS = ("better", "worse", "equivalent", "identical", "inconclusive")
ROLES = ("confirmatory", "control", "exploratory")

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


METRICS: dict[str, Metric] = {
    "fid": Metric("frechet_inception_distance", "lower", "FID", "unitless"),
    "kid": Metric("kernel_inception_distance_mean", "lower", "KID", "unitless"),
    "is": Metric("inception_score_mean", "higher", "Inception score", "unitless"),
    "precision": Metric("precision", "higher", "Precision", "fraction"),
    "recall": Metric("recall", "higher", "Recall", "fraction"),
    "is_std": Metric("inception_score_std", None, "Inception score SD", "unitless"),
    "kid_std": Metric("kernel_inception_distance_std", None, "KID SD", "unitless"),
}
COMPARED = {name: m.better for name, m in METRICS.items() if m.better is not None}

FEEDS = ("split", "joint", "joint_consistent")
NORMS = ("none", "batch", "instance", "layer", "group", "spectral")
EXTRACTORS = ("domain", "inception-v3-compat")
DATASETS = ("fashion-mnist", "mnist", "cifar10", "imagefolder")

# The primary test of a comparison: column of feed_effects that holds its p, and how the tables name it.
TESTS = {
    "paired_t_log": ("p_paired_t_unadj", "two-sided paired t-test on log(metric), runs paired by seed"),
    "wilcoxon": ("p_wilcoxon_unadj", "two-sided Wilcoxon signed-rank test on log(metric), runs paired by seed"),
    "mannwhitney": ("p_mwu_unadj", "two-sided Mann-Whitney U test (unpaired)"),
    "welch": ("p_welch_unadj", "two-sided Welch t-test on log(metric) (unpaired)"),
}

# What feed_effects' verdict column may say, from the point of view of `feed` against `feed_ref`.
VERDICTS = ("better", "worse", "equivalent", "inconclusive")

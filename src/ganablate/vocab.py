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

FEEDS = ("split", "joint", "joint_consistent", "split_g_mixed", "joint_cached_stats", "joint_detached_g")
# The feeds `ganablate check-arch` trains an architecture under: reals and fakes apart, and in one batch.
ARCH_CHECK_FEEDS = ("split", "joint")
# D's and G's losses (losses.LOSSES has their code).
LOSSES = ("ns", "hinge", "lsgan", "wgan_gp")
# The losses with a gradient penalty (losses.Loss.penalty), which a stack of seeds cannot train (train.stack 1).
SOLO_LOSSES = ("wgan_gp",)
# D's normalizations (models.NORMS has their code), each with when a practitioner would use it: one line, the
# remedies table's "use" column and findings.md's words for it.
NORM_USES = {
    "none": "no normalization in D: the per-sample baseline, for which the feed cannot matter",
    "batch": "BatchNorm in D: fine when reals and fakes reach D in separate batches; couples a mixed batch",
    "instance": "per sample and channel: a per-sample drop-in for BatchNorm, whatever the feed",
    "layer": "per sample over all channels: a per-sample drop-in for BatchNorm, whatever the feed",
    "group": "per sample over groups of channels: between instance and layer, whatever the feed",
    "spectral": "a bound on each weight's spectral norm, no activation statistics: per sample, whatever the feed",
    "ghost": "keep BatchNorm and one forward pass: consecutive chunks normalized apart; by default one chunk per "
    "source, which is split's computation on an unshuffled joint batch",
    "ghost_mixed": "ghost batch norm on chunks that each hold the batch's reals and fakes in its proportion, as a "
    "shuffled joint batch's chunks do (model.ghost_chunk rows each)",
    "realhalf": "every row normalized with the batch's reals' statistics (Improved-GAN's code): fakes no longer see "
    "each other",
    "reference": "statistics of a fixed batch of R reals (Salimans et al. 2016): D per sample; R more rows in every "
    "D call",
    "virtual": "a fixed batch of R reals plus the example itself (Salimans et al. 2016): D per sample; R more rows "
    "in every D call",
    "batch_eval": "BatchNorm's running statistics of the reals in both steps: D per sample; early steps lean on the "
    "warm-up",
    "batch_detached": "a diagnostic, not a fix: batch statistics with no gradient through them",
}
NORMS = tuple(NORM_USES)
# The known fixes for batch-composition effects (and one diagnostic) that config/remedies.yaml and benchmarks/run.py
# measure against batch.
REMEDIES = ("ghost", "ghost_mixed", "realhalf", "reference", "virtual", "batch_eval", "batch_detached")
# D's init is drawn from the stream of its norm's family (train.build_networks): the norms of one family have the same
# parameters (names and shapes) and draw them in the same order, so runs of one seed start from bitwise-equal D
# weights across them and are paired on D's init too (tests/test_norms.py checks both). A norm in no family here
# is a family of its own. This family's stream keeps the name of batch, its first member, so that batch's runs keep
# the bits they had before families were declared.
D_INIT_FAMILIES = {
    "batch": (
        "batch",
        "instance",
        "layer",
        "group",
        "ghost",
        "ghost_mixed",
        "realhalf",
        "reference",
        "virtual",
        "batch_eval",
        "batch_detached",
    ),
}


def d_init_family(norm: str) -> str:
    """The family whose D init a norm's runs draw (D_INIT_FAMILIES), its own name where it is in none."""
    return next((family for family, members in D_INIT_FAMILIES.items() if norm in members), norm)


# Per config key an axis may set: its levels' one-line uses, where the registry gives them.
USES = {"model.d_norm": NORM_USES}
EXTRACTORS = ("domain", "inception-v3-compat")
DATASETS = ("fashion-mnist", "mnist", "cifar10", "imagefolder")

# The test of every contrast over seeds (stats.test), and how the tables name it. Only paired tests: runs of one
# seed are pairs, and unpaired tests (Mann-Whitney, Dunnett, Tukey) would ignore that.
TESTS = {
    "paired_t_log": "one-sample t-test over seeds on the per-seed contrast of log(metric)",
    "wilcoxon": "Wilcoxon signed-rank test over seeds on the per-seed contrast of log(metric)",
}

# What contrasts.csv's verdict column may say, from the point of view of `level` against `level_ref`.
VERDICTS = ("better", "worse", "equivalent", "not equivalent", "non-inferior", "inferior", "identical", "inconclusive")
ROLES = ("confirmatory", "control", "exploratory")

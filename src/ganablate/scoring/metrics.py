"""The metrics every checkpoint is scored on, each one register_metric call: its torch-fidelity result key, its
direction and label (literals, which catalog.py reads torch-free for the analysis and the schema), and the code that
computes it from a scorer's features of the generated images (scoring/evaluate.py's Scorer). Some metrics come out
of another's computation (recall with precision, a spread with its mean): `computed_with` names it.

A new metric of the study is one register_metric call here. Its compute gets the Scorer (its layers per
torch-fidelity metric, its reference side of the test split) and the generated images' features, and returns
torch-fidelity's result keys; it is called only where the metric, or one computed with it, is scored at that step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch_fidelity.helpers import get_kwarg
from torch_fidelity.metric_fid import fid_featuresdict_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_featuresdict_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kernel_poly, kernel_rbf
from torch_fidelity.metric_prc import calc_cdist_part

from ganablate.catalog import check_new


@dataclass(frozen=True)
class Metric:
    key: str  # the key of torch-fidelity's result
    better: str | None  # "lower" / "higher"; None: an estimator's spread, summarized but never compared
    label: str
    units: str
    compute: Callable | None = None  # (scorer, features, kwargs) -> {result key: value}; None: computed_with's
    computed_with: str | None = None  # the metric whose compute gives this one too


METRICS: dict[str, Metric] = {}


def register_metric(name: str, **settings) -> Metric:
    """Add a metric under `name` (Metric's fields as keywords, literal but for compute); a name already taken is an
    error, not a replacement."""
    check_new("register_metric", name, METRICS)
    metric = Metric(**settings)
    if (metric.compute is None) == (metric.computed_with is None):
        raise TypeError(f"register_metric: {name!r}: give compute or computed_with, one of them")
    if metric.computed_with is not None and metric.computed_with not in METRICS:
        raise ValueError(f"register_metric: {name!r}: computed_with {metric.computed_with!r} is not registered yet")
    METRICS[name] = metric
    return metric


def computed_by(name: str) -> list[str]:
    """The metrics a metric's compute gives: itself and those computed with it."""
    return [name, *(other for other, m in METRICS.items() if m.computed_with == name)]


def skipped_at(name: str, skipped: frozenset[str]) -> bool:
    """Whether a metric is left out at a checkpoint that skips `skipped` (eval.final_only): a spread (no direction)
    with the metric it is the spread of."""
    metric = METRICS[name]
    return (metric.computed_with if metric.better is None else name) in skipped


def knn_radii(features: torch.Tensor, kwargs: dict) -> torch.Tensor:
    """Each sample's distance to its k-th nearest neighbour among `features`: the radius of its ball in precision and
    recall. The steps of torch-fidelity's calculate_precision_recall_part, which has no function for this half alone."""
    k, batch = get_kwarg("prc_neighborhood", kwargs), get_kwarg("prc_batch_size", kwargs)
    return torch.cat([calc_cdist_part(part, features, batch).kthvalue(k + 1).values for part in features.split(batch)])


def precision_recall(generated: torch.Tensor, reference, layer: str, kwargs: dict) -> dict[str, float]:
    """torch-fidelity's calculate_precision_recall_part (the path calculate_metrics takes with save_cpu_ram) step for
    step, the same distances in the same batches, but with the real samples' radii read from `reference` (the
    Scorer's evaluate.Reference) instead of recomputed."""
    real, batch = reference.features[layer], get_kwarg("prc_batch_size", kwargs)
    radii = knn_radii(generated, kwargs)
    recall = [(calc_cdist_part(part, generated, batch) <= radii).any(dim=1).float() for part in real.split(batch)]
    precision = [
        (calc_cdist_part(part, real, batch) <= reference.prc_radii).any(dim=1).float()
        for part in generated.split(batch)
    ]
    return {"precision": torch.cat(precision).mean().item(), "recall": torch.cat(recall).mean().item()}


KID_KERNELS = {"poly": kernel_poly, "rbf": kernel_rbf}  # torch-fidelity's, under its kid_kernel names


def kid_subsets(n_generated: int, n_real: int, kwargs: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """KID's (generated, real) index subsets, drawn as torch-fidelity's kid_features_to_metric draws them: from one
    RandomState(rng_seed), a generated subset then a real one, kid_subsets times. They depend on the sizes only."""
    size, rng = get_kwarg("kid_subset_size", kwargs), np.random.RandomState(get_kwarg("rng_seed", kwargs))
    return [
        (rng.choice(n_generated, size, replace=False), rng.choice(n_real, size, replace=False))
        for _ in range(get_kwarg("kid_subsets", kwargs))
    ]


class KID:
    """torch-fidelity's kid_features_to_metric (the unbiased MMD^2 of its mmd2, averaged over random subsets) step
    for step, to the bit, but for one thing: each real subset's kernel sum, which depends on the test split and the
    subsets' sizes only, is computed once per process and reused by every checkpoint scored against it. It is a
    third of KID's kernel evaluations, and the most costly part of scoring after them (numpy's float32 **3)."""

    # What the real sums depend on besides the test split: the subsets drawn (their sizes, how many, the seed, and
    # the generated side's size, whose draws come first) and the kernel.
    SETTINGS = (
        "kid_subset_size",
        "kid_subsets",
        "rng_seed",
        "kid_kernel",
        "kid_kernel_poly_degree",
        "kid_kernel_poly_gamma",
        "kid_kernel_poly_coef0",
        "kid_kernel_rbf_sigma",
    )

    def __init__(self, real: torch.Tensor):
        self.real = real.cpu().numpy()
        self._real_sums: dict[tuple, list[np.float32]] = {}

    @staticmethod
    def _off_diagonal_sum(a: np.ndarray, kwargs: dict) -> np.float32:
        K = KID_KERNELS[get_kwarg("kid_kernel", kwargs)](a, a, **kwargs)
        return (K.sum(axis=1) - np.diagonal(K)).sum()

    def __call__(self, generated: torch.Tensor, kwargs: dict) -> dict[str, float]:
        size, X, Y = get_kwarg("kid_subset_size", kwargs), generated.cpu().numpy(), self.real
        subsets = kid_subsets(len(X), len(Y), kwargs)
        key = (len(X), *(get_kwarg(setting, kwargs) for setting in self.SETTINGS))
        if key not in self._real_sums:
            self._real_sums[key] = [self._off_diagonal_sum(Y[j], kwargs) for _, j in subsets]
        mmds = np.zeros(len(subsets))
        for n, ((i, j), kt_yy_sum) in enumerate(zip(subsets, self._real_sums[key], strict=True)):
            kt_xx_sum = self._off_diagonal_sum(X[i], kwargs)
            k_xy_sum = KID_KERNELS[get_kwarg("kid_kernel", kwargs)](X[i], Y[j], **kwargs).sum(axis=0).sum()
            mmds[n] = (kt_xx_sum + kt_yy_sum) / (size * (size - 1)) - 2 * k_xy_sum / (size * size)
        return {KEY_METRIC_KID_MEAN: float(np.mean(mmds)), KEY_METRIC_KID_STD: float(np.std(mmds))}


def _fid(scorer, features: dict, kwargs: dict) -> dict:
    stats = fid_featuresdict_to_statistics(features, scorer.layers["fid"])
    return fid_statistics_to_metric(stats, scorer.reference.fid_stats, False)


def _isc(scorer, features: dict, kwargs: dict) -> dict:
    return isc_featuresdict_to_metric(features, scorer.layers["isc"], **kwargs)


def _kid(scorer, features: dict, kwargs: dict) -> dict:
    return scorer.kid(features[scorer.layers["kid"]], kwargs)


def _prc(scorer, features: dict, kwargs: dict) -> dict:
    return precision_recall(features[scorer.layers["prc"]], scorer.reference, scorer.layers["prc"], kwargs)


# Registered in the order metrics.csv lists them.
register_metric("fid", key="frechet_inception_distance", better="lower", label="FID", units="unitless", compute=_fid)
register_metric(
    "kid", key="kernel_inception_distance_mean", better="lower", label="KID", units="unitless", compute=_kid
)
register_metric(
    "is", key="inception_score_mean", better="higher", label="Inception score", units="unitless", compute=_isc
)
register_metric("precision", key="precision", better="higher", label="Precision", units="fraction", compute=_prc)
register_metric("recall", key="recall", better="higher", label="Recall", units="fraction", computed_with="precision")
register_metric(
    "is_std", key="inception_score_std", better=None, label="Inception score SD", units="unitless", computed_with="is"
)
register_metric(
    "kid_std", key="kernel_inception_distance_std", better=None, label="KID SD", units="unitless", computed_with="kid"
)

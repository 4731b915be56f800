"""Seeds until the answer is conclusive: a group-sequential paired t with repeated confidence intervals (RCIs).

Estimators over arrays, rliable-style: numbers in, numbers out. A contrast is looked at after n_1 < n_2 < ... seeds,
up to a pre-registered cap; at look k its RCI is mean -/+ c_k * s / sqrt(n_k) and every verdict is read off it.

- Error spending (Lan & DeMets 1983, Biometrika 70:659): the boundaries c_k are chosen so that, under H0, the
  probability of a first crossing at or before look k equals alpha(t_k), t_k = n_k / cap. Spending functions:
  Hwang, Shih & DeCani (1990, Stat. Med. 9:1439), Lan-DeMets O'Brien-Fleming and Pocock (as gsDesign's sfHSD,
  sfLDOF, sfLDPocock). A realized look sequence that differs from the plan (failed runs) is allowed: its boundaries
  are those of its own n's, spent on n / cap.
- Calibration: the t statistics T_k = (mean_k - mu) / (s_k / sqrt(n_k)) of one contrast are pivotal (free of mu and
  sigma) for Gaussian per-seed contrasts, so the c_k are computed exactly, up to Monte Carlo error, from simulated
  standard-normal paths: seeded, deterministic. The textbook "significance-level" conversion of normal bounds to t
  quantiles is anti-conservative at 4 seeds (0.053 for a nominal 0.05) and is not used. The first look is exact:
  nobody has stopped before it, so c_1 = t.isf(alpha(t_1), n_1 - 1).
- RCIs (Jennison & Turnbull 1993, Biometrics 49:31; 2000, ch. 9): P(mu in every I_k) >= 1 - alpha, so an interval
  read at any data-dependent stopping look keeps its coverage, and so do TOST and non-inferiority read off it.
- Holm over a confirmatory family as the graphical group-sequential procedure of Maurer & Bretz (2013, Stat.
  Biopharm. Res. 5:311): each member starts at alpha / m; when members are rejected, the others are retested at
  every look so far at the larger level.
Two-sided tests spend alpha / 2 per side. Futility is non-binding: the boundaries ignore it, so it only lowers the
type-I error.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import stats

from ganablate.catalog import check_new
from ganablate.errors import ConfigError
from ganablate.study.vocab import IDENTICAL, INCONCLUSIVE, NO_MATERIAL_DIFFERENCE

CHUNK = 2**18  # paths simulated at a time: bounds the memory; the draws depend on it, so it is fixed

SPENDING: dict[str, Callable] = {}


def register_spending(name: str, *, function: Callable) -> None:
    """function(alpha, t, gamma) -> the error spent by information fraction t in [0, 1] (alpha at t = 1); the name,
    read torch-free by catalog.py, fills the schema's stats.sequential.spending."""
    check_new("register_spending", name, SPENDING)
    if not callable(function):
        raise TypeError(f"register_spending: {name!r}: function must be a callable (alpha, t, gamma) -> spent")
    SPENDING[name] = function


def _hsd(alpha, t, gamma):
    """Hwang-Shih-DeCani: alpha (1 - e^(-gamma t)) / (1 - e^(-gamma)); gamma = -2 spends little early, 0 is linear."""
    return alpha * t if gamma == 0 else alpha * -np.expm1(-gamma * t) / -np.expm1(-gamma)


def _obrien_fleming(alpha, t, gamma):
    """Lan-DeMets O'Brien-Fleming: 2 - 2 Phi(z_(1 - alpha/2) / sqrt(t)); spends almost nothing early."""
    with np.errstate(divide="ignore"):
        return 2 * stats.norm.sf(stats.norm.isf(alpha / 2) / np.sqrt(t))


def _pocock(alpha, t, gamma):
    """Lan-DeMets Pocock: alpha ln(1 + (e - 1) t); nearly equal boundaries."""
    return alpha * np.log1p((math.e - 1) * t)


register_spending("hsd", function=_hsd)
register_spending("obrien-fleming", function=_obrien_fleming)
register_spending("pocock", function=_pocock)


def spent(name: str, alpha: float, t, gamma: float = -2.0) -> np.ndarray:
    """The one-sided error spent by information fraction(s) t under the spending function `name`."""
    if name not in SPENDING:
        raise ConfigError(f"spending: {name!r} is not one of {', '.join(SPENDING)}")
    return np.asarray(SPENDING[name](alpha, np.asarray(t, dtype=float), gamma), dtype=float)


def _checked(looks, cap: float, alpha: float, smallest: float) -> np.ndarray:
    n = np.asarray(looks, dtype=float)
    if not 0 < alpha < 0.5:
        raise ConfigError(f"alpha: {alpha} is outside (0, 0.5)")
    if n.ndim != 1 or not len(n) or n[0] < smallest or np.any(np.diff(n) <= 0):
        raise ConfigError(f"looks: {list(looks)} must increase strictly from at least {smallest:g}")
    if cap < n[-1]:
        raise ConfigError(f"cap: {cap:g} is below the look at {n[-1]:g}")
    return n


def _samples(looks: np.ndarray, paths: int, seed: int, variance: bool = True):
    """Chunks of (mean, s) at the looks (paths x looks) of standard-normal per-seed values. A block of m new seeds
    adds its sum ~ sqrt(m) N(0, 1) and, independently, its sum of squares about its own mean ~ chi2(m - 1)
    (Cochran), so a path costs two draws per look whatever the block size. Look k of chunk i draws from its own
    stream [seed, i, k]: the boundaries of looks 1..k do not depend on later looks."""
    sizes = np.diff(looks, prepend=0.0)
    for i, start in enumerate(range(0, paths, CHUNK)):
        size = min(CHUNK, paths - start)
        rngs = [np.random.default_rng([seed, i, k]) for k in range(len(looks))]
        sums = np.stack([np.sqrt(m) * rng.standard_normal(size) for m, rng in zip(sizes, rngs)], axis=1)
        mean = np.cumsum(sums, axis=1) / looks
        if not variance:
            yield mean, None
            continue
        within = np.stack([rng.chisquare(m - 1, size) if m > 1 else np.zeros(size) for m, rng in zip(sizes, rngs)], 1)
        squares = np.cumsum(within + sums**2 / sizes, axis=1)  # sum of x^2 over the seeds so far
        yield mean, np.sqrt(np.maximum(squares - looks * mean**2, 0.0) / (looks - 1))


def _calibrated(statistic: np.ndarray, cumulative: np.ndarray, first: float) -> np.ndarray:
    """Upper boundaries such that the share of paths first crossing at or before look k is cumulative[k]."""
    paths, looks = statistic.shape
    c, alive = np.empty(looks), np.ones(paths, bool)
    for k in range(looks):
        if k == 0:
            c[k] = first
        else:
            left = statistic[alive, k]
            j = int(round(cumulative[k] * paths)) - (paths - len(left))  # crossings this look may add
            if j <= 0:
                c[k] = math.inf
            else:
                i = len(left) - j  # alpha < 0.5 keeps j below the paths left
                order = np.partition(left, [i - 1, i])
                c[k] = (float(order[i - 1]) + float(order[i])) / 2  # midway between the (j+1)-th and j-th largest
        alive &= ~(statistic[:, k] > c[k])
    return c


def default_paths(alpha: float) -> int:
    """Calibration paths: 4e6 below a one-sided 0.01, where 1e6 leaves the level visibly off, else 1e6."""
    return 4_000_000 if alpha < 0.01 else 1_000_000


def boundaries(
    looks, cap: int, alpha: float, spending: str = "hsd", gamma: float = -2.0, paths: int | None = None, seed: int = 0
) -> np.ndarray:
    """One-sided upper critical values of the paired t at the (realized) looks, spending `alpha` on n / cap,
    calibrated by Monte Carlo of the pivotal t sequence (paths: default_paths(alpha)). Memory: 4 bytes per path and
    look. Two-sided at alpha: call with alpha / 2 and compare |T|."""
    n = _checked(looks, cap, alpha, 2)
    cumulative = spent(spending, alpha, n / cap, gamma)
    first = float(stats.t.isf(cumulative[0], n[0] - 1))
    if len(n) == 1:
        return np.array([first])
    paths = paths or default_paths(alpha)
    t = np.concatenate([(mean / s * np.sqrt(n)).astype(np.float32) for mean, s in _samples(n, paths, seed)])
    return _calibrated(t, cumulative, first)


def silent_looks(
    looks, cap: int, alpha: float, spending: str = "hsd", gamma: float = -2.0, paths: int | None = None
) -> dict[int, float]:
    """look (0-based) -> the error it spends, for each look that cannot reach a verdict at one-sided level `alpha`: it
    spends less than one of the calibration's paths (default_paths(alpha)), so that no simulated path may cross and
    its boundary is infinite (or, at the first look, exact but beyond what the calibration resolves)."""
    n = _checked(looks, cap, alpha, 2)
    spends = np.diff(spent(spending, alpha, n / cap, gamma), prepend=0.0)
    return {int(k): float(spends[k]) for k in np.flatnonzero(spends * (paths or default_paths(alpha)) < 1)}


def holm_tables(
    looks, cap: int, alpha: float, m: int, sides: int = 2, spending: str = "hsd", gamma: float = -2.0, seed: int = 0
) -> np.ndarray:
    """The (m, looks) boundaries holm() reads: at Holm's step r the level alpha / (m - r), split over `sides`."""
    return np.stack([boundaries(looks, cap, alpha / (sides * (m - r)), spending, gamma, seed=seed) for r in range(m)])


def z_boundaries(
    fractions, alpha: float, spending: str = "hsd", gamma: float = -2.0, paths: int | None = None, seed: int = 0
) -> np.ndarray:
    """The normal limit (known variance) of boundaries(): z statistics of Brownian motion at the information
    fractions, through the same calibration; checks the engine against published group-sequential bounds."""
    t = _checked(fractions, 1.0, alpha, 1e-12)
    cumulative = spent(spending, alpha, t, gamma)
    paths = paths or default_paths(alpha)
    z = np.concatenate([(mean * np.sqrt(t)).astype(np.float32) for mean, _ in _samples(t, paths, seed, False)])
    return _calibrated(z, cumulative, float(stats.norm.isf(cumulative[0])))


def rci(d, c: float) -> tuple[float, float]:
    """The repeated confidence interval of the mean of the per-seed contrasts d at a look with boundary c."""
    d = np.asarray(d, dtype=float)
    half = c * d.std(ddof=1) / math.sqrt(len(d)) if np.isfinite(c) else math.inf
    return float(d.mean() - half), float(d.mean() + half)


# The rules, on arrays of RCI bounds (so that simulate() runs them on many paths at once); "" means continue.
def _direction(mean, better: str):
    return np.where((mean > 0) == (better == "higher"), "better", "worse")


def _difference(rejected, mean, low, high, bound: float, better: str):
    inside = (low > -bound) & (high < bound)
    return np.select([rejected, inside], [_direction(mean, better), NO_MATERIAL_DIFFERENCE], "")


def _equivalence(low, high, bound: float):
    inside, outside = (low > -bound) & (high < bound), (low > bound) | (high < -bound)
    return np.select([inside, outside], ["equivalent", "not equivalent"], "")


def _noninferiority(low, high, bound: float, better: str):
    if better == "higher":  # the bad direction is down: mirror it up
        low, high = -high, -low
    return np.select([high < bound, low > bound], ["non-inferior", "inferior"], "")


def _read(d, last: bool, rule: Callable) -> str | None:
    """A rule's word at a look: 'identical' for per-seed contrasts all exactly 0 (bitwise-equal arms), no test for
    any other contrast without spread (today's 'no test'), 'inconclusive' at the cap, else None: continue."""
    d = np.asarray(d, dtype=float)
    if len(d) and np.all(d == 0):
        return IDENTICAL
    if len(d) > 1 and np.ptp(d) == 0:
        return INCONCLUSIVE
    word = str(rule(d)) if len(d) > 1 else ""
    return word or (INCONCLUSIVE if last else None)


def holm(t, tables) -> tuple[np.ndarray, np.ndarray]:
    """Holm over a family of m members as the Maurer-Bretz group-sequential procedure. t: (..., m, k) the members'
    statistics at the looks so far (|T| when two-sided), NaN where a member is untestable (it is then never
    rejected and keeps the family's size). tables: (m, k), or (m, m, k) per member, the boundaries at level step r,
    alpha / (m - r). Every member whose statistic crossed the current level's boundary at any look so far is
    rejected; the level rises with the rejections, until nothing changes. Returns rejected (..., m) and the step r
    at which each member was rejected (-1: not rejected)."""
    t = np.asarray(t, dtype=float)
    m = t.shape[-2]
    tables = np.broadcast_to(np.asarray(tables, dtype=float).reshape(m, -1, t.shape[-1]), (m, m, t.shape[-1]))
    with np.errstate(invalid="ignore"):
        crossed = np.any(t[..., None, :, :] > tables, axis=-1)  # (..., step, member)
    rejected, step = np.zeros(t.shape[:-1], bool), np.full(t.shape[:-1], -1)
    for _ in range(m):
        r = np.minimum(rejected.sum(axis=-1), m - 1)[..., None, None]
        new = np.take_along_axis(crossed, r, axis=-2)[..., 0, :] & ~rejected
        if not new.any():
            break
        step = np.where(new, r[..., 0], step)
        rejected |= new
    return rejected, step


def shape_flag(d) -> str | None:
    """Why the per-seed contrasts d should not be read by a t test, or None: |sample skewness| > 1, or a seed more
    than 4 MADs (normal-scaled, so about 4 SDs) from the median. Skew inflates the t's type-I error at any n."""
    d = np.asarray(d, dtype=float)
    if len(d) < 3 or np.ptp(d) == 0:
        return None
    skew = float(stats.skew(d))
    if abs(skew) > 1:
        return f"skewed per-seed contrast (skewness {skew:.2f})"
    mad = stats.median_abs_deviation(d, scale="normal")
    far = np.abs(d - np.median(d)) > 4 * mad
    if far.any():
        return f"{int(far.sum())} seed(s) beyond 4 MADs of the median"
    return None


def simulate(
    role: str,
    log_ratio: float,
    sd: float,
    looks,
    c,
    c_futility=None,
    margin: float = 0.1,
    better: str = "lower",
    paths: int = 20_000,
    seed: int = 1,
) -> dict:
    """Operating characteristics of one contrast judged by the rule of `role` (ROLES: 'difference', 'equivalence',
    'noninferiority') when its per-seed contrasts are N(log_ratio, sd^2), with boundaries c at the looks (a
    difference: its two-sided boundaries, per side, and c_futility those of the Bonferroni level, default c). A fixed
    design of n seeds is looks=[n], c=[t.isf(level, n - 1)]. Returns P(each verdict the rule gives) and the seeds
    used, their mean ('mean_seeds') and 90th percentile ('p90_seeds')."""
    if role not in ROLES:
        raise ConfigError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    rule = ROLES[role]
    n, c = np.asarray(looks, dtype=float), np.asarray(c, dtype=float)
    c_read = c if c_futility is None else np.asarray(c_futility, dtype=float)
    bound, words, used = math.log1p(margin), [], []
    for mean, s in _samples(n, paths, seed):
        mean, se = log_ratio + sd * mean, sd * s / np.sqrt(n)
        shown = rule.statistic(mean, se, bound, better) > c
        word = rule.verdict(shown, mean, mean - c_read * se, mean + c_read * se, bound, better)
        word[:, -1] = np.where(word[:, -1] == "", INCONCLUSIVE, word[:, -1])
        stop = np.argmax(word != "", axis=1)
        words.append(word[np.arange(len(word)), stop])
        used.append(n[stop])
    words, used = np.concatenate(words), np.concatenate(used)
    return {w: float(np.mean(words == w)) for w in rule.words if w != IDENTICAL} | {
        "mean_seeds": float(used.mean()),
        "p90_seeds": float(np.quantile(used, 0.9, method="inverted_cdf")),
    }


# --- a hypothesis at a look: what analysis/looks.py reads of each (registered on it, analysis/verdicts.py) ---------


class Rule:
    """How a hypothesis is judged at a look. sides: 1, or 2 (the level split over two tails); statistic(mean, se,
    bound, better): the T whose crossing of the one-sided boundary shows the hypothesis (Holm's, for a family
    member); verdict(shown, mean, low, high, bound, better): the word ("" to continue) where `shown` says the boundary
    was crossed and (low, high) is the interval read for the other outcomes, on arrays (simulate() runs it on many
    paths at once); words: every verdict it gives."""

    def __init__(self, sides: int, statistic: Callable, verdict: Callable, words: tuple[str, ...]):
        self.sides, self.statistic, self.verdict = sides, statistic, verdict
        self.words = (*words, IDENTICAL, INCONCLUSIVE)

    def read(self, d, shown: bool, c: float, margin: float, better: str, last: bool) -> str | None:
        """The word at this look for the per-seed contrasts d, c the boundary of the interval read (the family's
        Bonferroni level, a control's own); None: continue."""
        return _read(d, last, lambda d: self.verdict(shown, d.mean(), *rci(d, c), math.log1p(margin), better))


def _mirrored(mean, better: str):
    """The mean with the metric's bad direction up."""
    return -mean if better == "higher" else mean


DIFFERENCE = Rule(
    2,
    lambda mean, se, bound, better: np.abs(mean) / se,
    lambda shown, mean, low, high, bound, better: _difference(shown, mean, low, high, bound, better),
    ("better", "worse", NO_MATERIAL_DIFFERENCE),
)
EQUIVALENCE = Rule(
    1,
    lambda mean, se, bound, better: np.minimum(bound - mean, mean + bound) / se,
    lambda shown, mean, low, high, bound, better: np.where(shown, "equivalent", _equivalence(low, high, bound)),
    ("equivalent", "not equivalent"),
)
NONINFERIORITY = Rule(
    1,
    lambda mean, se, bound, better: (bound - _mirrored(mean, better)) / se,
    lambda shown, mean, low, high, bound, better: np.where(
        shown, "non-inferior", _noninferiority(low, high, bound, better)
    ),
    ("non-inferior", "inferior"),
)
ROLES = {"difference": DIFFERENCE, "equivalence": EQUIVALENCE, "noninferiority": NONINFERIORITY}  # simulate()'s

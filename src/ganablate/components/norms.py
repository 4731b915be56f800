"""D's normalizations (NORMS), the factor under study: each a layer after D's hidden convolutions and a wrapper for
its weights, given to an architecture's D as a NormFactory.

Some norms need to know more than the batch in front of them: which of its rows are real images (the feed says so,
with batch_rows), a chunk size or a reference batch (the model config and the caller, at construction), or the
statistics of another forward pass (the cached-statistics feeds, with BatchStatistics). D called bare, outside a
feed, treats every row as real and changes none of its norms' state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations, parametrize

from ganablate.catalog import check_new


@dataclass(frozen=True)
class Norm:
    """How one normalization enters D: a layer after each hidden conv (built from its channel count and the model
    config), and a wrapper for every weight."""

    layer: Callable[[int, dict], nn.Module]
    use: str  # when a practitioner would use it, in one line: the remedies table's "use" column and findings.md's
    weight: Callable[[nn.Module], nn.Module] = lambda module: module
    per_sample: bool = True  # no coupling between the samples of a batch, given D's weights and state
    reference: bool = False  # D carries a batch of reference_size reals, given at construction
    # The norms of one family have the same parameters (names and shapes), drawn in the same order, so they draw
    # D's init from one stream, named after the family: runs of one seed start from bitwise-equal D weights across
    # them, and are paired on D's init too (tests/test_norms.py). None: a family of its own.
    family: str | None = None
    # A known fix for BatchNorm's batch-composition effects (or a diagnostic of them), which benchmarks/run.py times
    # against batch.
    remedy: bool = False


NORMS: dict[str, Norm] = {}


def register_norm(name: str, **settings) -> Norm:
    """Add a normalization to the registry under `name` (Norm's fields as keywords, literal but for layer and
    weight: catalog.py reads them torch-free); a name already taken is an error, not a replacement."""
    check_new("register_norm", name, NORMS)
    if not callable(settings.get("layer")):
        raise TypeError(f"register_norm: {name!r}: layer must be a callable (channels, model_cfg) -> nn.Module")
    NORMS[name] = Norm(**settings)
    return NORMS[name]


class _SpectralNorm(parametrizations._SpectralNorm):
    """torch's spectral-norm parametrization, with a power iteration that also runs under torch.func.vmap (a stack
    of seeds, training/stack.py): it writes u and v with copy_ where torch's writes with F.normalize(..., out=),
    which vmap refuses. The same values bit for bit, and the same state-dict keys."""

    @torch.no_grad()
    def _power_method(self, weight_mat: torch.Tensor, n_power_iterations: int) -> None:
        for _ in range(n_power_iterations):
            self._u.copy_(F.normalize(torch.mv(weight_mat, self._v), dim=0, eps=self.eps))
            self._v.copy_(F.normalize(torch.mv(weight_mat.H, self._u), dim=0, eps=self.eps))


def spectral_norm(module: nn.Module) -> nn.Module:
    """torch.nn.utils.parametrizations.spectral_norm(module) for D's convolutions (dim 0, one power iteration)."""
    parametrize.register_parametrization(module, "weight", _SpectralNorm(module.weight))
    return module


def _groups(channels: int) -> int:
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


# --- what a feed tells D's norm layers -----------------------------------------------------------


@dataclass(frozen=True)
class Rows:
    """The batch D is scoring, as the feed built it."""

    reals: int | None = None  # the first `reals` rows are real images, the rest fakes; None: every row (D bare)
    d_step: bool = False  # the D step, the only one in which a norm's state learns from the reals

    def real_count(self, n: int) -> int:
        return n if self.reals is None else self.reals


_BARE = Rows()  # D called outside a feed
_ROWS: ContextVar[Rows] = ContextVar("rows", default=_BARE)
_STATISTICS: ContextVar[BatchStatistics | None] = ContextVar("statistics", default=None)


@contextmanager
def _set(var: ContextVar, value) -> Iterator[None]:
    # A context variable, not an attribute of D: a stack of seeds (training/stack.py) calls D as a function.
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def batch_rows(reals: int, d_step: bool = False):
    """Within the block, D's input holds `reals` real images first, then fakes; d_step: it is the D step."""
    return _set(_ROWS, Rows(reals, d_step))


class BatchStatistics:
    """The mean and variance each BatchNorm layer of D (the norms batch and batch_detached) normalizes with in one
    forward pass, recorded, then used layer by layer, detached, in a later pass instead of that pass's own."""

    def __init__(self):
        self._recorded: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._replay: Iterator[tuple[torch.Tensor, torch.Tensor]] | None = None

    def recording(self):
        return _set(_STATISTICS, self)

    def replaying(self):
        self._replay = iter(self._recorded)
        return _set(_STATISTICS, self)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._replay is not None:
            return next(self._replay)
        var, mean = torch.var_mean(x, dim=(0, 2, 3), unbiased=False)
        self._recorded.append((mean.detach(), var.detach()))
        return mean, var


# --- D's BatchNorm layers -------------------------------------------------------------------------


def _normalized(norm: nn.BatchNorm2d, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """x normalized with a mean and variance per channel, (C,), or per row and channel, (N, C); then norm's affine
    map. Written out rather than F.batch_norm, which has no gradient through the statistics it is given."""
    scale = torch.rsqrt(var + norm.eps)[..., None, None] * norm.weight[:, None, None]
    return (x - mean[..., None, None]) * scale + norm.bias[:, None, None]


class BatchNorm(nn.BatchNorm2d):
    """The norm `batch`: torch's BatchNorm2d, bit for bit, but within a BatchStatistics' recording or replaying."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        statistics = _STATISTICS.get()
        if statistics is None:
            return super().forward(x)
        return _normalized(self, x, *statistics(x))  # and the running statistics are left alone


class DetachedBatchNorm(BatchNorm):
    """Batch statistics with no gradient through them (a diagnostic, not a published fix): the forward pass of
    batch, and the gradient of a per-channel affine map, so that no sample's gradient flows through another's."""

    def __init__(self, channels: int):
        super().__init__(channels, track_running_stats=False)  # nothing reads running statistics in training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _STATISTICS.get() is not None:
            return super().forward(x)
        var, mean = torch.var_mean(x.detach(), dim=(0, 2, 3), unbiased=False)
        return _normalized(self, x, mean, var)


class GhostBatchNorm(nn.BatchNorm2d):
    """BatchNorm applied to consecutive chunks of the batch apart (ghost batch normalization, Hoffer et al. 2017):
    chunks of `chunk` rows, or by default one chunk per source (the batch's reals, its fakes), so that an unshuffled
    joint batch [reals; fakes] is normalized as split's two batches are."""

    def __init__(self, channels: int, chunk: int | None):
        super().__init__(channels, track_running_stats=False)
        if chunk is not None and chunk < 1:
            raise ValueError(f"model.ghost_chunk: {chunk} is less than the minimum of 1")
        self.chunk = chunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(x)
        if self.chunk is None:
            reals = _ROWS.get().real_count(n)
            sizes = [reals, n - reals] if 0 < reals < n else [n]
        elif n % self.chunk:
            raise ValueError(
                f"model.ghost_chunk: {self.chunk} does not divide D's batch of {n} rows; "
                f"allowed: a divisor of train.batch_size"
            )
        else:
            sizes = [self.chunk] * (n // self.chunk)
        return torch.cat(
            [F.batch_norm(part, None, None, self.weight, self.bias, True, 0.0, self.eps) for part in x.split(sizes)]
        )


class MixedGhostBatchNorm(nn.BatchNorm2d):
    """Ghost batch normalization on chunks that mix the batch's sources: row i joins chunk i mod k of the k chunks
    of `chunk` rows, so that each chunk of an unshuffled joint batch [reals; fakes] holds its reals and fakes in the
    batch's proportion, as a shuffled batch's chunks do on average (a shuffle with the proportion exact, and no
    random stream: the same chunks every step and under vmap). Against ghost, whose chunks of [reals; fakes] are
    pure, it tells smaller normalization batches apart from the mixing of sources within one."""

    def __init__(self, channels: int, chunk: int | None):
        super().__init__(channels, track_running_stats=False)
        if chunk is None or chunk < 1:
            raise ValueError(
                f"model.ghost_chunk: {chunk} with norm ghost_mixed; allowed: a divisor of train.batch_size (its chunks "
                f"have a fixed size)"
            )
        self.chunk = chunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, channels = x.shape[:2]
        if n % self.chunk:
            raise ValueError(
                f"model.ghost_chunk: {self.chunk} does not divide D's batch of {n} rows; "
                f"allowed: a divisor of train.batch_size"
            )
        strided = x.reshape(self.chunk, n // self.chunk, *x.shape[1:])  # [j, i] is row j*k + i: chunk i
        var, mean = torch.var_mean(strided, dim=(0, 3, 4), unbiased=False)  # (k, C): each chunk's statistics
        scale = torch.rsqrt(var + self.eps) * self.weight
        out = (strided - mean[None, :, :, None, None]) * scale[None, :, :, None, None]
        return (out + self.bias.view(1, 1, channels, 1, 1)).reshape(x.shape)


class RealHalfNorm(nn.BatchNorm2d):
    """Every row normalized with the statistics of the batch's reals (OpenAI Improved-GAN's batch_norm_first_half),
    so that a fake's normalization no longer depends on the other fakes. A batch with no reals (a G step's fakes
    alone) is normalized with those of the last D step's reals, detached: the only reals there are, taken at D's
    weights before its update. So are split's D-step fakes, scored after its reals: the same values as joint's D
    step, but joint's fakes' loss also reaches D's weights through the reals' statistics."""

    def __init__(self, channels: int):
        super().__init__(channels, track_running_stats=False)
        self.register_buffer("real_mean", torch.zeros(channels))
        self.register_buffer("real_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = _ROWS.get()
        reals = rows.real_count(len(x))
        if reals == 0:
            return _normalized(self, x, self.real_mean, self.real_var)
        var, mean = torch.var_mean(x[:reals], dim=(0, 2, 3), unbiased=False)
        if rows.d_step:
            self.real_mean.copy_(mean.detach())
            self.real_var.copy_(var.detach())
        return _normalized(self, x, mean, var)


class RunningBatchNorm(nn.BatchNorm2d):
    """BatchNorm with its running statistics in both steps, as in eval mode, so that D is a per-sample function.
    They learn from the D steps' reals only, one D step late: a D step first folds the previous one's reals into
    them, then normalizes every row with them and keeps its own reals' statistics for the next, so that split's two
    batches and joint's one see the same statistics. The k-th fold has momentum max(1/k, 0.1): the plain average of
    the first ten real batches (a warm-up; step 1 has only the 0/1 init to normalize with), then torch's default."""

    def __init__(self, channels: int):
        super().__init__(channels)  # num_batches_tracked counts the real batches kept
        self.register_buffer("pending_mean", torch.zeros(channels))
        self.register_buffer("pending_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = _ROWS.get()
        reals = rows.real_count(len(x))
        if rows.d_step and reals:
            with torch.no_grad():
                # Without a branch on the count, so that it runs under vmap (training/stack.py): the first fold, of the
                # 0/1 init into itself, changes nothing.
                momentum = (1 / self.num_batches_tracked.clamp(min=1)).clamp(min=self.momentum)
                self.running_mean.add_(momentum * (self.pending_mean - self.running_mean))
                self.running_var.add_(momentum * (self.pending_var - self.running_var))
                var, mean = torch.var_mean(x[:reals], dim=(0, 2, 3))
                self.pending_mean.copy_(mean)
                self.pending_var.copy_(var)
                self.num_batches_tracked.add_(1)
        return _normalized(self, x, self.running_mean, self.running_var)


class ReferenceNorm(nn.BatchNorm2d):
    """Every row normalized with the statistics of a reference batch of reals, the first `size` rows of the input,
    where D puts it (reference batch normalization, Salimans et al. 2016). The statistics stay in the graph, as in
    Improved-GAN's code: they are a function of D's weights."""

    def __init__(self, channels: int, size: int):
        super().__init__(channels, track_running_stats=False)
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x[: self.size], dim=(0, 2, 3), unbiased=False)
        return _normalized(self, x, mean, var)


class VirtualNorm(ReferenceNorm):
    """Virtual batch normalization (Salimans et al. 2016; Improved-GAN's VBNL): each example normalized with the
    statistics of the reference batch and itself, its own weighing 1/(R+1); the reference with its own alone."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reference, rest = x[: self.size], x[self.size :]
        mean, mean_sq = reference.mean((0, 2, 3)), reference.square().mean((0, 2, 3))
        own = 1 / (self.size + 1)
        row_mean = (1 - own) * mean + own * rest.mean((2, 3))
        row_mean_sq = (1 - own) * mean_sq + own * rest.square().mean((2, 3))
        return torch.cat(
            [
                _normalized(self, reference, mean, mean_sq - mean.square()),
                _normalized(self, rest, row_mean, row_mean_sq - row_mean.square()),
            ]
        )


def reference_size(model_cfg: dict) -> int:
    """R, the number of reals in D's reference batch (norms reference and virtual): model.reference_size."""
    size = model_cfg.get("reference_size", 64)
    if size < 1:
        raise ValueError(f"model.reference_size: {size} is less than the minimum of 1")
    return size


# A new normalization of the study is one register_norm call here.
register_norm(
    "none",
    layer=lambda c, model: nn.Identity(),
    use="no normalization in D: the per-sample baseline, for which the feed cannot matter",
)
register_norm(
    "batch",
    layer=lambda c, model: BatchNorm(c),
    per_sample=False,
    family="batch",
    use="BatchNorm in D: fine when reals and fakes reach D in separate batches; couples a mixed batch",
)
register_norm(
    "instance",
    layer=lambda c, model: nn.InstanceNorm2d(c, affine=True),
    family="batch",
    use="per sample and channel: a per-sample drop-in for BatchNorm, whatever the feed",
)
register_norm(
    "layer",
    layer=lambda c, model: nn.GroupNorm(1, c),  # one group = per sample over (C, H, W)
    family="batch",
    use="per sample over all channels: a per-sample drop-in for BatchNorm, whatever the feed",
)
register_norm(
    "group",
    layer=lambda c, model: nn.GroupNorm(_groups(c), c),
    family="batch",
    use="per sample over groups of channels: between instance and layer, whatever the feed",
)
register_norm(
    "spectral",
    layer=lambda c, model: nn.Identity(),
    weight=spectral_norm,
    use="a bound on each weight's spectral norm, no activation statistics: per sample, whatever the feed",
)
# Remedies for BatchNorm in a jointly fed D (issue 20), and one diagnostic.
register_norm(
    "ghost",
    layer=lambda c, model: GhostBatchNorm(c, model.get("ghost_chunk")),
    per_sample=False,
    family="batch",
    remedy=True,
    use="keep BatchNorm and one forward pass: consecutive chunks normalized apart; by default one chunk per source, "
    "which is split's computation on an unshuffled joint batch",
)
register_norm(
    "ghost_mixed",
    layer=lambda c, model: MixedGhostBatchNorm(c, model.get("ghost_chunk")),
    per_sample=False,
    family="batch",
    remedy=True,
    use="ghost batch norm on chunks that each hold the batch's reals and fakes in its proportion, as a shuffled "
    "joint batch's chunks do (model.ghost_chunk rows each)",
)
register_norm(
    "realhalf",
    layer=lambda c, model: RealHalfNorm(c),
    per_sample=False,
    family="batch",
    remedy=True,
    use="every row normalized with the batch's reals' statistics (Improved-GAN's code): fakes no longer see each other",
)
register_norm(
    "reference",
    layer=lambda c, model: ReferenceNorm(c, reference_size(model)),
    reference=True,
    family="batch",
    remedy=True,
    use="statistics of a fixed batch of R reals (Salimans et al. 2016): D per sample; R more rows in every D call",
)
register_norm(
    "virtual",
    layer=lambda c, model: VirtualNorm(c, reference_size(model)),
    reference=True,
    family="batch",
    remedy=True,
    use="a fixed batch of R reals plus the example itself (Salimans et al. 2016): D per sample; R more rows in every "
    "D call",
)
register_norm(
    "batch_eval",
    layer=lambda c, model: RunningBatchNorm(c),
    family="batch",
    remedy=True,
    use="BatchNorm's running statistics of the reals in both steps: D per sample; early steps lean on the warm-up",
)
register_norm(
    "batch_detached",
    layer=lambda c, model: DetachedBatchNorm(c),
    per_sample=False,
    family="batch",
    remedy=True,
    use="a diagnostic, not a fix: batch statistics with no gradient through them",
)


@dataclass(frozen=True)
class NormFactory:
    """The normalization under study as an architecture's D is given it (architectures.py's protocol): norm(channels)
    is a hidden normalization layer, norm.weight(layer) a weight layer wrapped (spectral norm's parametrization)."""

    norm: Norm
    model_cfg: dict

    def __call__(self, channels: int) -> nn.Module:
        return self.norm.layer(channels, self.model_cfg)

    def weight(self, module: nn.Module) -> nn.Module:
        return self.norm.weight(module)

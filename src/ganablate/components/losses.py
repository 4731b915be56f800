"""GAN losses: what D and G minimize, given D's logits for reals and fakes (train.loss).

A loss is the math after D: the feed mode (feeds.py) decides how reals and fakes reach D, and any loss can follow any
feed. A new loss of the study is one register_loss call here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ganablate.catalog import check_new

Logits = torch.Tensor


@dataclass(frozen=True)
class Loss:
    d: Callable[[Logits, Logits], torch.Tensor]  # D(real), D(fake) -> D's loss
    g: Callable[[Logits], torch.Tensor]  # D(fake) -> G's loss
    # D, real, fake -> a regularizer added to D's loss, computed at the D step's weights; None: none. A registry
    # entry's takes a `weight` keyword, which loss_of binds from the config.
    penalty: Callable[..., torch.Tensor] | None = None


LOSSES: dict[str, Loss] = {}


def register_loss(name: str, *, d, g, penalty=None) -> Loss:
    """Add a loss under `name` (Loss's fields as keywords); a name already taken is an error, not a replacement. A
    loss with a penalty is trained solo: a stack of seeds cannot take the gradient within D's step it needs."""
    check_new("register_loss", name, LOSSES)
    if not (callable(d) and callable(g) and (penalty is None or callable(penalty))):
        raise TypeError(f"register_loss: {name!r}: d, g and penalty (if given) must be callables")
    LOSSES[name] = Loss(d=d, g=g, penalty=penalty)
    return LOSSES[name]


def loss_of(train_cfg: dict) -> Loss:
    """The loss a run trains with: train.loss's entry, its penalty weighted by train.gp_weight."""
    name = train_cfg["loss"]
    if name not in LOSSES:
        raise ValueError(f"train.loss: unknown loss {name!r}; allowed: {', '.join(LOSSES)}")
    loss = LOSSES[name]
    return loss if loss.penalty is None else replace(loss, penalty=partial(loss.penalty, weight=train_cfg["gp_weight"]))


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, weight: float) -> torch.Tensor:
    """WGAN-GP's two-sided penalty (Gulrajani et al. 2017): weight * mean (||grad_x D(x)|| - 1)^2 at points x drawn
    uniformly on the lines between each real and fake. Their positions are drawn from torch's global generator,
    which seeds.build_networks leaves seeded from the run's seed and the run's state saves, so that they are the
    seed's and survive a resume. D is called bare, as outside a feed: the points are neither real nor fake."""
    t = torch.rand(len(real), *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    points = (t * real + (1 - t) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(points).sum(), points, create_graph=True)
    return weight * (grad.flatten(1).norm(dim=1) - 1).square().mean()


register_loss(
    "ns",  # non-saturating (Goodfellow et al. 2014), BCE with logits: the seed question's loss
    d=lambda d_real, d_fake: F.softplus(-d_real).mean() + F.softplus(d_fake).mean(),
    g=lambda d_fake: F.softplus(-d_fake).mean(),
)
register_loss(
    "hinge",  # Lim & Ye 2017; Miyato et al. 2018
    d=lambda d_real, d_fake: F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean(),
    g=lambda d_fake: -d_fake.mean(),
)
register_loss(
    "lsgan",  # least squares (Mao et al. 2017), targets 1 for reals and 0 for fakes, G's target 1
    d=lambda d_real, d_fake: 0.5 * (d_real - 1).square().mean() + 0.5 * d_fake.square().mean(),
    g=lambda d_fake: 0.5 * (d_fake - 1).square().mean(),
)
register_loss(
    "wgan_gp",  # Wasserstein with a gradient penalty (Gulrajani et al. 2017); D is a critic, its logits scores
    d=lambda d_real, d_fake: d_fake.mean() - d_real.mean(),
    g=lambda d_fake: -d_fake.mean(),
    penalty=gradient_penalty,
)

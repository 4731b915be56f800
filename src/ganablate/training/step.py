"""One training step, train_step: the one definition of the GAN's math (D's update, then G's through the D just
updated), for a Solo run and a stack.Stack alike, both behind the Nets interface."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import torch
from torch import nn
from torch.nn.utils import parametrize

from ganablate.components.feeds import Feed
from ganablate.components.losses import LOSSES, Loss


def d_loss(feed: Feed, loss: Loss, D, real: torch.Tensor, fake: torch.Tensor):
    """One seed's D-step loss (train.loss; by default non-saturating BCE with logits, real -> 1, fake -> 0), and D's
    logits. Each step sees one D weight: spectral norm's power iteration runs once per cached() block, not once per
    forward pass, so that split's two passes and joint's one are the same math for every per-sample norm."""
    with parametrize.cached():
        d_real, d_fake = feed.d_step(D, real, fake)
        penalty = None if loss.penalty is None else loss.penalty(D, real, fake)
    value = loss.d(d_real, d_fake)
    return (value if penalty is None else value + penalty), d_real, d_fake


def g_loss(feed: Feed, loss: Loss, D, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """One seed's G-step loss (by default fakes -> 1), the gradient flowing to G through D."""
    with parametrize.cached():
        return loss.g(feed.g_step(D, real, fake))


def optimizers(nets, train_cfg: dict) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """G's and D's Adam (train.lr_g, train.lr_d, train.betas) over a Solo run's or a stack's parameters."""
    betas = tuple(train_cfg["betas"])
    return (
        torch.optim.Adam(nets.g_parameters, lr=train_cfg["lr_g"], betas=betas),
        torch.optim.Adam(nets.d_parameters, lr=train_cfg["lr_d"], betas=betas),
    )


class Nets(Protocol):
    """The one interface train_step and the loop train through: a Solo run's networks or a stack.Stack of several
    seeds'. Tensors in and out carry a leading seed axis (of length `size`); j indexes a seed."""

    size: int
    g_parameters: list
    d_parameters: list

    def generate(self, z: torch.Tensor) -> torch.Tensor: ...
    def per_seed(self, fn, *args: torch.Tensor): ...  # fn(D, *args) for each seed
    def backward(self, loss: torch.Tensor) -> None: ...  # of the seeds' losses, each seed's own gradient
    def d_frozen(self): ...  # a context: D's weights need no gradient in the G step
    def buffers_restored(self): ...  # a context: D's buffers as they were when it ends
    def grad_norms(self) -> tuple[list[float], list[float]]: ...
    def g_state_dict(self, j: int) -> dict[str, torch.Tensor]: ...
    def g_finite(self, j: int) -> bool: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...
    def retire(self, j: int, optimizers: list) -> None: ...  # seed j diverged: the others go on


@dataclass(frozen=True)
class Step:
    """What a training step saw and computed, each with a leading seed axis: what the log rows are made of."""

    real: torch.Tensor
    fake: torch.Tensor
    d_real: torch.Tensor
    d_fake: torch.Tensor
    loss_d: torch.Tensor
    loss_g: torch.Tensor


def train_step(
    nets: Nets, opt_g, opt_d, feed: Feed, real: torch.Tensor, z: torch.Tensor, loss: Loss = LOSSES["ns"]
) -> Step:
    """One GAN step of every seed of `nets`, a Solo run or a stack.Stack (the same code for both): the D step,
    then the G step through the D just updated, reusing G's forward pass. real and z carry a leading seed axis."""
    fake = nets.generate(z)

    loss_d, d_real, d_fake = nets.per_seed(partial(d_loss, feed, loss), real, fake.detach())
    opt_d.zero_grad(set_to_none=True)
    nets.backward(loss_d)
    opt_d.step()

    with nets.d_frozen():  # D's weights need no gradient in the G step
        loss_g = nets.per_seed(partial(g_loss, feed, loss), real, fake)
        opt_g.zero_grad(set_to_none=True)
        nets.backward(loss_g)
        opt_g.step()
    return Step(real, fake.detach(), d_real.detach(), d_fake.detach(), loss_d.detach(), loss_g.detach())


class Solo:
    """The networks of one run, called as the modules they are: a stack of one seed for train_step, with the
    methods of stack.Stack (tensors in and out carry a leading seed axis of length 1)."""

    size = 1

    def __init__(self, G: nn.Module, D: nn.Module):
        self.G, self.D = G, D
        self.g_parameters, self.d_parameters = list(G.parameters()), list(D.parameters())

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.G(z[0]).unsqueeze(0)

    def per_seed(self, fn, *args: torch.Tensor):
        """fn(D, *args) with the seed axis taken off the arguments and put back on the results."""
        result = fn(self.D, *(a[0] for a in args))
        return tuple(t.unsqueeze(0) for t in result) if isinstance(result, tuple) else result.unsqueeze(0)

    def backward(self, loss: torch.Tensor) -> None:
        loss.sum().backward()

    @contextmanager
    def d_frozen(self):
        self.D.requires_grad_(False)
        try:
            yield
        finally:
            self.D.requires_grad_(True)

    def buffers_restored(self):
        return buffers_restored(self.D)

    def grad_norms(self) -> tuple[list[float], list[float]]:
        return [_grad_norm(self.G)], [_grad_norm(self.D)]

    def g_state_dict(self, j: int) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.G.state_dict().items()}

    def g_finite(self, j: int) -> bool:
        return _finite(self.G)

    def state_dict(self) -> dict:
        return {"G": self.G.state_dict(), "D": self.D.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])

    def retire(self, j: int, optimizers: list) -> None:
        pass  # the run ends here: there is no other seed to protect


@contextmanager
def buffers_restored(module: nn.Module):
    """Restore a train-mode module's BN running stats and spectral-norm vectors after the block (diagnostics)."""
    saved = [b.clone() for b in module.buffers()]
    try:
        yield
    finally:
        for buffer, value in zip(module.buffers(), saved):
            buffer.copy_(value)


def _grad_norm(module: nn.Module) -> float:
    return torch.nn.utils.get_total_norm([p.grad for p in module.parameters() if p.grad is not None]).item()


def _finite(module: nn.Module) -> bool:
    return all(torch.isfinite(t).all() for t in module.state_dict().values() if t.is_floating_point())

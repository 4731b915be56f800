"""Several seeds of one variant trained as one process: their networks stacked, run with torch.func.

A Stack holds S seeds' G and D as one set of tensors with a leading seed axis (torch.func.stack_module_state)
and calls the ordinary modules on them through functional_call under vmap. It offers the same few methods as
step.Solo, so that step.train_step, the one definition of a training step, runs S seeds at once: one batched
(grouped) convolution per layer instead of S small ones.

Each seed keeps everything its solo run has: its initial weights (the modules are built exactly as its solo
run builds them), its real batches and z (drawn outside vmap from its own generators, then stacked), its BN
running statistics and spectral-norm vectors (stacked buffers, updated in place under vmap), and its Adam
moments (Adam is elementwise: one Adam over the stacked tensors is S Adams). The seeds' losses are summed, not
averaged, before backward, so each seed's weights get exactly its own gradient. Only float rounding differs
from the solo runs (a grouped convolution sums in another order), which is why the stack's composition is part
of each of its runs' identity (study/identity.py's run_hash).

A seed whose losses or weights go non-finite is retired: its networks are parked at their initial weights with
zero Adam moments and its loss is left out of the sum, so its weights never move again and no NaN stays in the
stacked tensors; the other seeds go on as if it had not been there.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


def _stacked(modules: list[nn.Module]) -> tuple[nn.Module, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(a skeleton of the modules on the meta device, stacked parameters, stacked buffers)."""
    params, buffers = stack_module_state(modules)
    # BN running statistics and spectral-norm vectors are updated in place through vmap's per-seed views of
    # these tensors: they must be the stacked tensors themselves, contiguous, or the updates would go to a copy.
    assert all(t.is_contiguous() for t in (*params.values(), *buffers.values()))
    return copy.deepcopy(modules[0]).to("meta"), params, buffers


def _vmapped(skeleton: nn.Module, fn: Callable) -> Callable:
    """fn(module, *args) for each seed: vmap over (stacked params, stacked buffers, *args with a seed axis)."""

    def one_seed(params, buffers, *args):
        return fn(lambda *inputs: functional_call(skeleton, (params, buffers), inputs), *args)

    return vmap(one_seed)


class Stack:
    """The networks of S seeds of one (feed, norm); see the module docstring. Tensors in and out of its methods
    carry a leading seed axis of length S."""

    def __init__(self, networks: list[tuple[nn.Module, nn.Module]]):
        """networks: each seed's freshly initialised (G, D), on the device and in the dtype to train in."""
        self.size = len(networks)
        self._G, self.g_params, self.g_buffers = _stacked([g for g, _ in networks])
        self._D, self.d_params, self.d_buffers = _stacked([d for _, d in networks])
        self._initial = {net: {key: t.detach().clone() for key, t in self._tensors(net)} for net in ("G", "D")}
        self.alive = torch.ones(self.size, dtype=torch.bool, device=next(iter(self.g_params.values())).device)
        self._generate = _vmapped(self._G, lambda G, z: G(z))

    # --- what train_step uses ----------------------------------------------------------------------

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self._generate(self.g_params, self.g_buffers, z)

    def per_seed(self, fn: Callable, *args: torch.Tensor):
        """fn(D, *args) for each seed, its D called with that seed's weights and buffers."""
        return _vmapped(self._D, fn)(self.d_params, self.d_buffers, *args)

    def backward(self, loss: torch.Tensor) -> None:
        # Summed, not averaged: each seed's weights get exactly the gradient of its own loss. A retired seed's
        # loss is left out, so that its gradient is zero and its parked weights stay where they are.
        torch.where(self.alive, loss, torch.zeros_like(loss)).sum().backward()

    @contextmanager
    def d_frozen(self) -> Iterator[None]:
        for p in self.d_params.values():
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in self.d_params.values():
                p.requires_grad_(True)

    @property
    def g_parameters(self) -> list[torch.Tensor]:
        return list(self.g_params.values())

    @property
    def d_parameters(self) -> list[torch.Tensor]:
        return list(self.d_params.values())

    # --- what the bookkeeping uses -----------------------------------------------------------------

    @contextmanager
    def buffers_restored(self) -> Iterator[None]:
        """D's BN running statistics and spectral-norm vectors as they were before the block (diagnostics)."""
        saved = {key: b.clone() for key, b in self.d_buffers.items()}
        try:
            yield
        finally:
            for key, b in self.d_buffers.items():
                b.copy_(saved[key])

    def grad_norms(self) -> tuple[list[float], list[float]]:
        """Each seed's total gradient norm of G and of D, as step._grad_norm computes it for a solo run."""
        return tuple(
            [
                torch.nn.utils.get_total_norm([p.grad[j] for p in params.values() if p.grad is not None]).item()
                for j in range(self.size)
            ]
            for params in (self.g_params, self.d_params)
        )

    def seed_state_dict(self, j: int) -> dict[str, dict[str, torch.Tensor]]:
        """Seed j's networks as its solo run's state dicts would hold them, {"G": ..., "D": ...} (copies)."""
        return {net: {key: t[j].detach().clone() for key, t in self._tensors(net)} for net in ("G", "D")}

    def g_state_dict(self, j: int) -> dict[str, torch.Tensor]:
        """Seed j's G as its solo run's G.state_dict(), same keys in the same order: its checkpoint."""
        stacked = dict(self._tensors("G"))
        return {key: stacked[key][j].detach().clone() for key in self._G.state_dict()}

    def g_finite(self, j: int) -> bool:
        return all(torch.isfinite(t[j]).all() for _, t in self._tensors("G") if t.is_floating_point())

    def state_dict(self) -> dict:
        return {net: {key: t.detach() for key, t in self._tensors(net)} for net in ("G", "D")} | {"alive": self.alive}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for net in ("G", "D"):
                tensors = dict(self._tensors(net))
                if state[net].keys() != tensors.keys():
                    raise KeyError(f"{net}: the saved tensors are not this stack's")
                for key, t in tensors.items():
                    t.copy_(state[net][key])
            self.alive.copy_(state["alive"])

    def retire(self, j: int, optimizers: list[torch.optim.Optimizer]) -> None:
        """Take seed j out of training (it diverged): park its networks at their initial weights, zero its Adam
        moments, and leave its loss out of backward from now on."""
        with torch.no_grad():
            for net in ("G", "D"):
                for key, t in self._tensors(net):
                    t[j] = self._initial[net][key][j]
            for optimizer in optimizers:
                for state in optimizer.state.values():
                    for value in state.values():
                        if torch.is_tensor(value) and value.ndim > 0:  # per-element state; not Adam's step count
                            value[j] = 0
        self.alive[j] = False

    def _tensors(self, net: str) -> Iterator[tuple[str, torch.Tensor]]:
        """G's or D's stacked parameters and buffers, by their state-dict names."""
        yield from (self.g_params | self.g_buffers if net == "G" else self.d_params | self.d_buffers).items()

"""DCGAN generator and discriminator; D's normalization is the factor under study, chosen from NORMS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations, parametrize


@dataclass(frozen=True)
class Norm:
    """How one normalization enters D: a layer after each hidden conv, and a wrapper for every weight."""

    layer: Callable[[int], nn.Module]
    weight: Callable[[nn.Module], nn.Module] = lambda module: module
    per_sample: bool = True  # no coupling between the samples of a batch (spectral: within one cached() block)


class _SpectralNorm(parametrizations._SpectralNorm):
    """torch's spectral-norm parametrization, with a power iteration that also runs under torch.func.vmap (a stack
    of seeds, stack.py): it writes u and v with copy_ where torch's writes with F.normalize(..., out=), which vmap
    refuses. The same values bit for bit, and the same state-dict keys."""

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


# A new variant of the study is one entry here.
NORMS: dict[str, Norm] = {
    "none": Norm(layer=lambda c: nn.Identity()),
    "batch": Norm(layer=nn.BatchNorm2d, per_sample=False),
    "instance": Norm(layer=lambda c: nn.InstanceNorm2d(c, affine=True)),
    "layer": Norm(layer=lambda c: nn.GroupNorm(1, c)),  # one group = per sample over (C, H, W)
    "group": Norm(layer=lambda c: nn.GroupNorm(_groups(c), c)),
    "spectral": Norm(layer=lambda c: nn.Identity(), weight=spectral_norm),
}


def _geometry(image_size: int) -> tuple[int, int]:
    """(side of the smallest feature map, number of stride-2 stages) for a supported image size."""
    if image_size == 28:
        return 7, 2
    if image_size == 32:
        return 4, 3
    raise ValueError(f"image size: {image_size} is not supported; allowed: 28, 32")


class Generator(nn.Module):
    """z (B, z_dim) -> images (B, C, H, W) in [-1, 1]; keeps BatchNorm, as in the seed question."""

    def __init__(self, image_shape: tuple[int, int, int], z_dim: int, width: int):
        super().__init__()
        channels, size, _ = image_shape
        base, stages = _geometry(size)
        widths = [width * 2 ** (stages - 1 - i) for i in range(stages)]
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, widths[0], base, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.z_dim = z_dim
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.view(z.shape[0], self.z_dim, 1, 1))


class Discriminator(nn.Module):
    """images (B, C, H, W) -> logits (B,); identical across norms except for NORMS[norm]."""

    def __init__(self, image_shape: tuple[int, int, int], width: int, norm: str):
        super().__init__()
        norm_spec = NORMS[norm]
        channels, size, _ = image_shape
        base, stages = _geometry(size)
        widths = [width * 2**i for i in range(stages)]
        # The first layer sees raw pixels and has no normalization, as in DCGAN.
        layers: list[nn.Module] = [norm_spec.weight(nn.Conv2d(channels, widths[0], 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [
                norm_spec.weight(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False)),
                norm_spec.layer(c_out),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(norm_spec.weight(nn.Conv2d(widths[-1], 1, base, 1, 0)))
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten()


def _dcgan_init(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        weight = module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
        nn.init.normal_(weight, 0.0, 0.02)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)) and module.weight is not None:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build_generator(image_shape: tuple[int, int, int], model_cfg: dict) -> Generator:
    generator = Generator(image_shape, model_cfg["z_dim"], model_cfg["g_width"])
    generator.apply(_dcgan_init)
    return generator


def build_discriminator(image_shape: tuple[int, int, int], model_cfg: dict, norm: str) -> Discriminator:
    if norm not in NORMS:
        raise ValueError(f"norm: unknown normalization {norm!r}; allowed: {', '.join(NORMS)}")
    discriminator = Discriminator(image_shape, model_cfg["d_width"], norm)
    discriminator.apply(_dcgan_init)
    return discriminator

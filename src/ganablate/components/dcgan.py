"""The architecture dcgan: the seed question's generator and discriminator (pytorch/examples' DCGAN, sized by
model.g_width and model.d_width), for 28- and 32-pixel images."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from ganablate.components.norms import NormFactory


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
        for c_in, c_out in itertools.pairwise(widths):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.z_dim = z_dim
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.view(z.shape[0], self.z_dim, 1, 1))


class Discriminator(nn.Module):
    """images (B, C, H, W) -> logits (B,); identical across norms except for the norm it is given."""

    def __init__(self, image_shape: tuple[int, int, int], model_cfg: dict, norm: NormFactory):
        super().__init__()
        channels, size, _ = image_shape
        base, stages = _geometry(size)
        widths = [model_cfg["d_width"] * 2**i for i in range(stages)]
        # The first layer sees raw pixels and has no normalization, as in DCGAN.
        layers: list[nn.Module] = [norm.weight(nn.Conv2d(channels, widths[0], 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        for c_in, c_out in itertools.pairwise(widths):
            layers += [norm.weight(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False)), norm(c_out), nn.LeakyReLU(0.2, True)]
        layers.append(norm.weight(nn.Conv2d(widths[-1], 1, base, 1, 0)))
        self.main = nn.Sequential(*layers)
        # Set by build_discriminator for the norms that take one; None, and no state-dict entry, for the others.
        self.register_buffer("reference", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reference is None:
            return self.main(x).flatten()
        # The reference batch rides in front of every batch, so that each norm layer sees its activations.
        return self.main(torch.cat([self.reference, x])).flatten()[len(self.reference) :]


def _dcgan_init(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        weight = module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
        nn.init.normal_(weight, 0.0, 0.02)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)) and module.weight is not None:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build_dcgan_generator(image_shape: tuple[int, int, int], model_cfg: dict) -> Generator:
    generator = Generator(image_shape, model_cfg["z_dim"], model_cfg["g_width"])
    generator.apply(_dcgan_init)
    return generator


def build_dcgan_discriminator(image_shape: tuple[int, int, int], model_cfg: dict, norm: NormFactory) -> Discriminator:
    discriminator = Discriminator(image_shape, model_cfg, norm)
    discriminator.apply(_dcgan_init)
    return discriminator

"""A ResNet-style G and D (after Miyato et al. 2018's SNGAN networks for 32x32 images, narrowed) as a ganablate
architecture: build_g and build_d below meet the protocol of ganablate.components.architectures, and
pyproject.toml's entry point names this module. ganablate check-arch resnet checks it."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn


def _stages(size: int) -> tuple[int, int]:
    """(side of the smallest feature map, number of 2x stages): 28 -> 7, 2; 32 -> 4, 3."""
    stages = 3 if size % 8 == 0 else 2
    return size >> stages, stages


class UpBlock(nn.Module):
    """BN-ReLU-upsample-conv-BN-ReLU-conv, plus an upsampled 1x1 conv of the input."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.skip = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x):
        h = F.interpolate(F.relu(self.bn1(x)), scale_factor=2)
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        return h + self.skip(F.interpolate(x, scale_factor=2))


class Generator(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], z_dim: int, width: int):
        super().__init__()
        channels, size, _ = image_shape
        self.z_dim, self.width = z_dim, width
        self.base, stages = _stages(size)
        self.linear = nn.Linear(z_dim, width * self.base * self.base)
        self.blocks = nn.Sequential(*(UpBlock(width, width) for _ in range(stages)))
        self.out = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh())

    def forward(self, z):
        return self.out(self.blocks(self.linear(z).view(len(z), self.width, self.base, self.base)))


class DownBlock(nn.Module):
    """conv-norm-LReLU-conv-norm, average-pooled when `down`, plus a 1x1 conv of the input. Every conv goes through
    norm.weight and every normalization is norm(channels): the norm under study."""

    def __init__(self, c_in: int, c_out: int, norm, down: bool):
        super().__init__()
        self.conv1, self.norm1 = norm.weight(nn.Conv2d(c_in, c_out, 3, 1, 1)), norm(c_out)
        self.conv2, self.norm2 = norm.weight(nn.Conv2d(c_out, c_out, 3, 1, 1)), norm(c_out)
        self.skip = norm.weight(nn.Conv2d(c_in, c_out, 1))
        self.down = down

    def forward(self, x):
        h = self.norm2(self.conv2(F.leaky_relu(self.norm1(self.conv1(x)), 0.2)))
        s = self.skip(x)
        if self.down:
            h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
        return F.leaky_relu(h + s, 0.2)


class Discriminator(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], width: int, norm):
        super().__init__()
        channels, size, _ = image_shape
        _, stages = _stages(size)
        blocks = [DownBlock(channels, width, norm, down=True)]
        blocks += [DownBlock(width, width, norm, down=True) for _ in range(stages - 1)]
        self.blocks = nn.Sequential(*blocks, DownBlock(width, width, norm, down=False))
        self.linear = norm.weight(nn.Linear(width, 1))

    def forward(self, x):
        return self.linear(self.blocks(x).sum(dim=(2, 3)))  # (N, 1): one logit per image


def build_g(image_shape: tuple[int, int, int], model_cfg: dict) -> nn.Module:
    return Generator(image_shape, model_cfg["z_dim"], model_cfg["g_width"])


def build_d(image_shape: tuple[int, int, int], model_cfg: dict, norm) -> nn.Module:
    return Discriminator(image_shape, model_cfg["d_width"], norm)

"""G and D of a run: model.arch's networks, D built with model.d_norm's norm and, for the norms that take one, the
reference batch riding in front of every batch."""

from __future__ import annotations

import torch
from torch import nn

from ganablate.components.architectures import architecture
from ganablate.components.dcgan import Discriminator
from ganablate.components.norms import NORMS, NormFactory, reference_size


class ScoredDiscriminator(nn.Module):
    """A user architecture's D as the feeds call it: one logit per image as (B,), whichever of (B,) or (B, 1) D gives,
    and the reference batch of the norms that take one riding in front of every batch, as in Discriminator."""

    def __init__(self, discriminator: nn.Module, reference: torch.Tensor | None):
        super().__init__()
        self.discriminator = discriminator
        self.register_buffer("reference", reference)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.reference is None:
            return self.discriminator(x).flatten()
        return self.discriminator(torch.cat([self.reference, x])).flatten()[len(self.reference) :]


def build_generator(image_shape: tuple[int, int, int], model_cfg: dict) -> nn.Module:
    """G of model.arch (dcgan where the model config names none)."""
    return architecture(model_cfg.get("arch", "dcgan")).build_g(image_shape, model_cfg)


def build_discriminator(
    image_shape: tuple[int, int, int], model_cfg: dict, norm: str, reference: torch.Tensor | None = None
) -> nn.Module:
    """D of model.arch with NORMS[norm]; reference: for the norms that need one, reference_size(model_cfg) real images
    in the model's range, fixed for the run (the caller draws them from the run's seed)."""
    if norm not in NORMS:
        raise ValueError(f"norm: unknown normalization {norm!r}; allowed: {', '.join(NORMS)}")
    if NORMS[norm].reference:
        size = reference_size(model_cfg)
        if reference is None or len(reference) != size:
            given = "none" if reference is None else len(reference)
            raise ValueError(
                f"norm: {norm} needs a reference batch of model.reference_size={size} real images; given: {given}"
            )
    elif reference is not None:
        raise ValueError(f"norm: {norm} takes no reference batch; allowed with: reference, virtual")
    discriminator = architecture(model_cfg.get("arch", "dcgan")).build_d(
        image_shape, model_cfg, NormFactory(NORMS[norm], model_cfg)
    )
    if isinstance(discriminator, Discriminator):
        discriminator.reference = reference  # in its own state, where its runs have always kept it
        return discriminator
    return ScoredDiscriminator(discriminator, reference)

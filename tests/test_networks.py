"""The networks as runs build them (components/networks.py, over the DCGAN pair of components/dcgan.py): G's
output range, D's one logit per image under every norm, a per-sample norm blind to how a batch is fed, spectral
norm on the weights only."""

import pytest
import torch
from torch.nn.utils import parametrize

from ganablate.components.networks import build_discriminator, build_generator
from ganablate.components.norms import NORMS
from ganablate.training.step import buffers_restored

MODEL = {"z_dim": 16, "g_width": 8, "d_width": 8, "reference_size": 4}


def _discriminator(shape, norm):
    """D of a norm, with a reference batch for the norms that take one (as the run draws it from its seed)."""
    reference = torch.rand(MODEL["reference_size"], *shape) * 2 - 1 if NORMS[norm].reference else None
    model = MODEL | ({"ghost_chunk": 2} if norm == "ghost_mixed" else {})  # its chunks have a fixed size
    return build_discriminator(shape, model, norm, reference)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_generator_maps_z_to_images_in_tanh_range(shape):
    images = build_generator(shape, MODEL)(torch.randn(5, 16))
    assert images.shape == (5, *shape) and images.abs().max() <= 1


@pytest.mark.parametrize("norm", list(NORMS))
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_discriminator_gives_one_logit_per_image(norm, shape):
    assert _discriminator(shape, norm)(torch.randn(6, *shape)).shape == (6,)


@pytest.mark.parametrize("norm", list(NORMS))
def test_joint_batch_equals_split_batches_exactly_when_the_norm_is_per_sample(norm):
    torch.manual_seed(0)
    D = _discriminator((1, 28, 28), norm).train()
    a, b = torch.randn(8, 1, 28, 28), torch.randn(8, 1, 28, 28) * 3 + 1  # different statistics
    # One cached() block = one training step's view of D (one spectral-norm power iteration).
    with torch.no_grad(), buffers_restored(D), parametrize.cached():
        joint = D(torch.cat([a, b]))
    with torch.no_grad(), buffers_restored(D), parametrize.cached():
        split = torch.cat([D(a), D(b)])
    if NORMS[norm].per_sample:
        torch.testing.assert_close(joint, split, atol=1e-5, rtol=0)
    else:
        assert (joint - split).abs().max() > 1e-2


def test_spectral_norm_wraps_every_weight_and_adds_no_activation_norm():
    D = build_discriminator((1, 28, 28), MODEL, "spectral")
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)
    norms = (torch.nn.BatchNorm2d, torch.nn.GroupNorm, torch.nn.InstanceNorm2d)
    assert not any(isinstance(m, norms) for m in D.modules())


def test_unknown_norm_is_rejected_with_the_allowed_names():
    with pytest.raises(ValueError, match="allowed: none, batch, instance, layer, group, spectral"):
        build_discriminator((1, 28, 28), MODEL, "weight")

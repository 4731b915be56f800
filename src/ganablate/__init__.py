"""ganablate: a statistical ablation study of feed modes and discriminator normalizations in GAN training."""

__version__ = "0.1.0"

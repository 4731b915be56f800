"""ganablate: a statistical ablation study of feed modes and discriminator normalizations in GAN training."""

__version__ = "0.2.0"  # in plan.json: the verdict rules live in code

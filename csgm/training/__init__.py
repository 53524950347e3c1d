"""LightningModules that train generators, and the training run itself."""

from csgm.training.gan import GANModule
from csgm.training.vae import VAEModule

__all__ = ["GANModule", "VAEModule", "TRAINING_MODULES"]

TRAINING_MODULES = {"vae": VAEModule, "dcgan": GANModule}

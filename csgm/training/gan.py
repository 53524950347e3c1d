"""GAN training with manual optimisation (non-saturating loss, Adam 2e-4, beta1 0.5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from csgm.errors import check_range
from csgm.generators import DCGANDiscriminator
from csgm.training.base import GeneratorModule

__all__ = ["GANModule"]


class GANModule(GeneratorModule):
    """Alternates one discriminator and one generator step per batch (so ``max_steps`` counts both)."""

    method, generators = "adversarial", ("vae", "dcgan")

    def __init__(
        self,
        name: str,
        arch: dict,
        image_shape: tuple[int, int, int],
        dataset: str = "",
        range_error: dict | None = None,
        lr: float = 2e-4,
        beta1: float = 0.5,
        disc_base_channels: int = 64,
    ) -> None:
        check_range("generator.training.lr", lr, 0, low_open=True)
        check_range("generator.training.beta1", beta1, 0, 0.999)
        super().__init__(name, arch, image_shape, dataset, range_error)
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.discriminator = DCGANDiscriminator(image_shape, disc_base_channels)

    @staticmethod
    def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the discriminator's logits: real images labelled 1, generated ones 0."""
        return F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + F.binary_cross_entropy_with_logits(
            d_fake, torch.zeros_like(d_fake)
        )

    def generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        """The non-saturating generator objective: -log D(G(z)), mean over the batch."""
        d_gen = self.discriminator(fake)
        return F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))

    def training_step(self, batch, batch_idx):
        real = batch[0]
        opt_g, opt_d = self.optimizers()
        z = torch.randn(len(real), self.generator.latent_dim, device=real.device)
        fake = self.generator(z)

        d_real, d_fake = self.discriminator(real), self.discriminator(fake.detach())
        d_loss = self.discriminator_loss(d_real, d_fake)
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()

        g_loss = self.generator_loss(fake)
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()

        self.log_dict(
            {
                "train/d_loss": d_loss,
                "train/g_loss": g_loss,
                "train/d_real": torch.sigmoid(d_real).mean(),
                "train/d_fake": torch.sigmoid(d_fake).mean(),
            },
            prog_bar=True,
            on_step=True,
            on_epoch=True,
            batch_size=len(real),
        )

    def configure_optimizers(self):
        betas = (self.hparams.beta1, 0.999)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr, betas=betas)
        return opt_g, opt_d

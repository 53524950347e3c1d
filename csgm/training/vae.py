"""VAE training: maximise the ELBO with a Bernoulli or Gaussian likelihood."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from csgm.errors import check_choice, check_range
from csgm.generators import VAEEncoder
from csgm.training.base import GeneratorModule

__all__ = ["VAEModule", "negative_elbo"]

LIKELIHOODS = ("bernoulli", "gaussian")


def negative_elbo(
    x: torch.Tensor,
    logits: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    likelihood: str = "bernoulli",
    gaussian_std: float = 0.1,
) -> torch.Tensor:
    """Per-image negative ELBO in nats: -E_q[log p(x|z)] + KL(q(z|x) || N(0, I)), summed over pixels.

    Bernoulli treats grey levels in [0, 1] as probabilities (cross-entropy with the logits);
    Gaussian uses mean sigmoid(logits) and a fixed ``gaussian_std``.
    """
    if likelihood == "bernoulli":
        nll = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    else:
        sq = (torch.sigmoid(logits) - x).pow(2).flatten(1).sum(1)
        nll = sq / (2 * gaussian_std**2) + x[0].numel() * math.log(gaussian_std * math.sqrt(2 * math.pi))
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
    return nll + kl


class VAEModule(GeneratorModule):
    """Trains encoder q(z|x) and decoder G(z) by the reparameterised ELBO; logs ``{split}/nelbo`` in nats."""

    method, generators = "elbo", ("vae",)

    def __init__(
        self,
        name: str,
        arch: dict,
        image_shape: tuple[int, int, int],
        dataset: str = "",
        range_error: dict | None = None,
        likelihood: str = "bernoulli",
        gaussian_std: float = 0.1,
        lr: float = 1e-3,
    ) -> None:
        super().__init__(name, arch, image_shape, dataset, range_error)
        check_choice("likelihood", likelihood, LIKELIHOODS)
        check_range("generator.training.lr", lr, 0, low_open=True)
        check_range("generator.training.gaussian_std", gaussian_std, 0, low_open=True)
        self.save_hyperparameters()
        self.encoder = VAEEncoder(self.generator.latent_dim, image_shape, self.generator.hidden_dims)

    def nelbo(self, x: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.encoder(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return negative_elbo(
            x, self.generator.logits(z), mu, logvar, self.hparams.likelihood, self.hparams.gaussian_std
        )

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], split: str) -> torch.Tensor:
        loss = self.nelbo(batch[0]).mean()
        self.log(
            f"{split}/nelbo",
            loss,
            prog_bar=split != "test",
            on_epoch=True,
            on_step=False,
            batch_size=len(batch[0]),
            sync_dist=split != "train",
        )
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")
        super().validation_step(batch, batch_idx)

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

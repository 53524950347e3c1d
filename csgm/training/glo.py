"""GLO training (Bojanowski et al. 2017): a learned code per training image, fitted jointly with G.

Codes live in an embedding table (one row per training image, indexed by the dataset's image index), start
from the images' principal components (or random directions) and are projected onto the unit sphere (or
ball) after every step. Recovery needs a latent law: a Gaussian fitted to the codes becomes the generator's
input map (``LatentGaussian``), so the saved generator takes standard-normal latents like every other.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from csgm.errors import check_choice, check_range
from csgm.generators import Generator
from csgm.generators.base import LatentGaussian
from csgm.seeding import seeded_rng
from csgm.training.base import GeneratorModule

__all__ = ["GLOModule", "laplacian_l1", "project_codes"]

LOSSES = ("l2", "laplacian_l1")
PROJECTIONS = ("sphere", "ball")
INITS = ("pca", "random")


def laplacian_pyramid(x: torch.Tensor) -> list[torch.Tensor]:
    """Band-pass levels of ``x`` (N, C, H, W), finest first: level j = G_j - up(G_{j+1}) with G_{j+1} the 2x2 average
    of G_j while both sides stay even and >= 4; the last level is the coarsest G_J itself."""
    levels, current = [], x
    while current.shape[-1] % 2 == 0 and current.shape[-2] % 2 == 0 and min(current.shape[-2:]) >= 4:
        coarser = F.avg_pool2d(current, 2)
        levels.append(current - F.interpolate(coarser, scale_factor=2, mode="nearest"))
        current = coarser
    return [*levels, current]


def laplacian_l1(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The paper's Laplacian-pyramid L1 per image: sum_j 4^j |L_j(x_hat) - L_j(x)|_1 (coarser levels, with 4x fewer
    pixels each, weighted up so that every level counts alike)."""
    return sum(
        4**j * (a - b).abs().flatten(1).sum(1)
        for j, (a, b) in enumerate(zip(laplacian_pyramid(x_hat), laplacian_pyramid(x)))
    )


def project_codes(codes: torch.Tensor, projection: str) -> torch.Tensor:
    """Rows of ``codes`` onto the unit sphere, or into the unit ball."""
    norms = codes.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return codes / (norms if projection == "sphere" else norms.clamp_min(1.0))


class GLOModule(GeneratorModule):
    """Trains any image generator G and one code per training image by min sum_i loss(G(z_i), x_i); logs ``train/loss``."""

    method, generators = "glo", ("vae", "dcgan")

    def __init__(
        self,
        name: str,
        arch: dict,
        image_shape: tuple[int, int, int],
        dataset: str = "",
        range_error: dict | None = None,
        loss: str = "l2",
        projection: str = "sphere",
        init: str = "pca",
        lr: float = 1e-3,
        latent_lr: float = 1e-2,
    ) -> None:
        check_choice("generator.training.loss", loss, LOSSES)
        check_choice("generator.training.projection", projection, PROJECTIONS)
        check_choice("generator.training.init", init, INITS)
        check_range("generator.training.lr", lr, 0, low_open=True)
        check_range("generator.training.latent_lr", latent_lr, 0, low_open=True)
        super().__init__(name, arch, image_shape, dataset, range_error)
        self.save_hyperparameters()
        self.codes: nn.Parameter | None = None  # made in setup(): one row per training image

    def setup(self, stage: str) -> None:
        """The code table, initialised from the training images (the same on every process)."""
        if self.codes is not None or stage != "fit":
            return
        train = self.trainer.datamodule.splits["train"]
        k = self.generator.latent_dim
        if self.hparams.init == "pca":
            images = torch.stack([train[i][0] for i in range(len(train))]).flatten(1).double()
            centred = images - images.mean(0)
            left, singular, _ = torch.linalg.svd(centred, full_matrices=False)
            codes = left[:, :k] * singular[:k]
            if codes.shape[1] < k:  # fewer images or pixels than latent dimensions
                codes = torch.cat([codes, torch.zeros(len(codes), k - codes.shape[1], dtype=codes.dtype)], 1)
        else:
            codes = torch.randn(len(train), k, generator=seeded_rng("glo_codes", 0), dtype=torch.float64)
        self.codes = nn.Parameter(project_codes(codes, self.hparams.projection).float())

    def reconstruction_loss(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.loss == "l2":
            return (x_hat - x).pow(2).flatten(1).sum(1)
        return laplacian_l1(x_hat, x)

    def training_step(self, batch, batch_idx):
        x, index = batch
        loss = self.reconstruction_loss(self.generator.decode(self.codes[index]), x).mean()
        self.log("train/loss", loss, prog_bar=True, on_epoch=True, on_step=False, batch_size=len(x))
        return loss

    def optimizer_step(self, *args, **kwargs) -> None:
        """The step, then the codes back onto the sphere (or into the ball): complete before any callback sees them."""
        super().optimizer_step(*args, **kwargs)
        with torch.no_grad():
            self.codes.copy_(project_codes(self.codes, self.hparams.projection))

    def trained_generator(self) -> Generator:
        """A copy of G whose input map is the Gaussian fitted to the codes: latents ~ N(0, I) like any generator."""
        generator = copy.deepcopy(self.generator)
        generator.latent_map = LatentGaussian.fit(self.codes.detach().cpu()).to(self.codes.device)
        return generator

    def configure_optimizers(self):
        return torch.optim.Adam(
            [
                {"params": self.generator.parameters(), "lr": self.hparams.lr},
                {"params": [self.codes], "lr": self.hparams.latent_lr},
            ]
        )

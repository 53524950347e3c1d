"""Denoising diffusion training (Ho et al. 2020): the network predicts the noise (or v) of x_t from x_t and t."""

from __future__ import annotations

import copy
from typing import Sequence

import torch

from csgm.errors import check_range
from csgm.generators.diffusion import DiffusionGenerator
from csgm.seeding import seeded_rng
from csgm.training.base import GeneratorModule

__all__ = ["DiffusionModule"]


class DiffusionModule(GeneratorModule):
    """Minimises E_{t, eps} ||net(x_t, t) - target||^2 / n (target eps, or v for ``prediction: v_prediction``), t
    uniform over the schedule; logs ``{split}/loss``. Validation and test draw t and eps per image from its id
    (the same draws every epoch, so the curve is comparable), through the averaged weights. With ``ema_decay`` > 0 an exponential moving average
    of the weights (decay warmed up as min(decay, (1 + step) / (10 + step))) is the generator that checkpoints,
    sample grids and recovery use. ``val/range_error`` is not measured (each evaluation of G is ``sample_steps``
    network calls; the recovery benchmarks measure what it would)."""

    method, generators = "denoising", ("diffusion",)

    def __init__(
        self,
        name: str,
        arch: dict,
        image_shape: tuple[int, int, int],
        dataset: str = "",
        range_error: dict | None = None,
        lr: float = 1e-3,
        ema_decay: float = 0.999,
    ) -> None:
        check_range("generator.training.lr", lr, 0, low_open=True)
        check_range("generator.training.ema_decay", ema_decay, 0, 0.99999)
        super().__init__(name, arch, image_shape, dataset, range_error)
        self.save_hyperparameters()
        self.ema = copy.deepcopy(self.generator).requires_grad_(False) if ema_decay > 0 else None

    @property
    def diffusion(self) -> DiffusionGenerator:
        return self.generator  # type: ignore[return-value]

    def trained_generator(self) -> DiffusionGenerator:
        """The moving average of the weights (or the weights themselves with ``ema_decay`` = 0)."""
        return self.ema if self.ema is not None else self.diffusion

    def denoising_loss(
        self, x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, model: DiffusionGenerator | None = None
    ) -> torch.Tensor:
        """Per-image mean squared error of the network's target at x_t = sqrt(abar_t) u + sqrt(1 - abar_t) eps for
        images x (B, C, H, W) in [0, 1], timesteps t (B,) and noise eps (B, C, H, W); ``model``: the trained one."""
        model = model or self.diffusion
        u = model.from_pixels(x)
        a = model.alphas_cumprod.to(x.device)[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * u + (1 - a).sqrt() * eps
        target = eps if model.prediction == "epsilon" else a.sqrt() * eps - (1 - a).sqrt() * u
        return (model.network_at(x_t, t) - target).pow(2).flatten(1).mean(1)

    def seeded_draws(self, x: torch.Tensor, image_ids: Sequence[int], split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(t, eps) per image drawn from (split, image id): the same for an image in every epoch and batch."""
        ts, noises = [], []
        for i in image_ids:
            rng = seeded_rng("denoising", split, int(i))
            ts.append(torch.randint(0, self.diffusion.timesteps, (1,), generator=rng))
            noises.append(torch.randn(1, *x.shape[1:], generator=rng))
        return torch.cat(ts).to(x.device), torch.cat(noises).to(device=x.device, dtype=x.dtype)

    def _log(self, split: str, loss: torch.Tensor, count: int) -> None:
        self.log(
            f"{split}/loss",
            loss,
            prog_bar=split != "test",
            on_epoch=True,
            on_step=False,
            batch_size=count,
            sync_dist=split != "train",
        )

    def training_step(self, batch, batch_idx):
        x = batch[0]
        t = torch.randint(0, self.diffusion.timesteps, (len(x),), device=x.device)
        loss = self.denoising_loss(x, t, torch.randn_like(x)).mean()
        self._log("train", loss, len(x))
        return loss

    def optimizer_step(self, *args, **kwargs) -> None:
        """The optimiser's step, then the moving average's (before any callback saves a checkpoint of the batch)."""
        super().optimizer_step(*args, **kwargs)
        self.update_average()

    def update_average(self) -> None:
        """One step of the moving average towards the current weights."""
        if self.ema is None:
            return
        step = self.global_step
        decay = min(self.hparams.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for average, weight in zip(self.ema.parameters(), self.generator.parameters()):
                average.lerp_(weight, 1 - decay)

    def _held_out(self, batch, split: str) -> None:
        x, ids = batch[0], batch[1].tolist()
        t, eps = self.seeded_draws(x, ids, split)
        self._log(split, self.denoising_loss(x, t, eps, self.trained_generator()).mean(), len(x))

    def validation_step(self, batch, batch_idx):
        self._held_out(batch, "val")

    def test_step(self, batch, batch_idx):
        self._held_out(batch, "test")

    def configure_optimizers(self):
        return torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr)

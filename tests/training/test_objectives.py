"""Training objectives against closed forms, through the modules' own steps: the VAE's ELBO terms against
torch.distributions (Bernoulli / Normal likelihoods, the Gaussian KL), GLO's codes on the unit sphere after
Lightning ran its training steps, and the flow's log-density against a change of variables built from
torch.distributions transforms."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import distributions as D
from torch.utils.data import DataLoader, TensorDataset

from csgm.generators.flow import RealNVPFlow, squeeze
from csgm.training import GLOModule, VAEModule

SHAPE = (1, 4, 4)


def perturb(module: torch.nn.Module, scale: float, seed: int) -> None:
    """Move every parameter by N(0, scale^2) (so that log-variances and couplings are far from their start)."""
    rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(scale * torch.randn(parameter.shape, generator=rng, dtype=parameter.dtype))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_vae_training_step_is_the_negative_elbo_of_torch_distributions(likelihood):
    arch = {"latent_dim": 3, "hidden_dims": [16]}
    module = VAEModule("vae", arch, SHAPE, likelihood=likelihood, gaussian_std=0.3).double()
    perturb(module, 0.3, seed=0)
    x = torch.rand(6, *SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.manual_seed(5)
    loss = module.training_step((x, torch.arange(6)), 0)
    torch.manual_seed(5)  # the same reparameterisation noise
    with torch.no_grad():
        mu, logvar = module.encoder(x)
        assert float(logvar.abs().min()) > 1e-3  # a KL with log-variances away from 0
        posterior = D.Normal(mu, (0.5 * logvar).exp())
        z = mu + torch.randn_like(mu) * posterior.scale
        logits = module.generator.logits(z).flatten(1)
        if likelihood == "bernoulli":
            log_likelihood = D.Bernoulli(logits=logits, validate_args=False).log_prob(x.flatten(1)).sum(1)
        else:
            log_likelihood = D.Normal(torch.sigmoid(logits), 0.3).log_prob(x.flatten(1)).sum(1)
        kl = D.kl_divergence(posterior, D.Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(1)
    torch.testing.assert_close(loss.detach(), (kl - log_likelihood).mean(), rtol=1e-10, atol=1e-10)


class CodeTrackingData(pl.LightningDataModule):
    """The GLO module's data: ``splits['train']`` of (image, index) and its loader."""

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.splits = {"train": TensorDataset(images, torch.arange(len(images)))}

    def train_dataloader(self):
        return DataLoader(self.splits["train"], batch_size=8, shuffle=False)


class StartCodes(pl.Callback):
    def on_train_start(self, trainer, module):
        self.codes = module.codes.detach().clone()


@pytest.mark.parametrize("projection", ["sphere", "ball"])
def test_glo_codes_stay_on_the_sphere_after_the_modules_training_steps(projection):
    images = torch.rand(24, *SHAPE, generator=torch.Generator().manual_seed(0))
    module = GLOModule(
        "vae", {"latent_dim": 4, "hidden_dims": [16]}, SHAPE, init="random", projection=projection, latent_lr=0.5
    )
    start = StartCodes()
    trainer = pl.Trainer(
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        limit_val_batches=0,
        callbacks=[start],
    )
    trainer.fit(module, datamodule=CodeTrackingData(images))
    norms = module.codes.detach().norm(dim=1)
    if projection == "sphere":
        torch.testing.assert_close(start.codes.norm(dim=1), torch.ones(24))
        torch.testing.assert_close(norms, torch.ones(24))
    else:
        assert float(norms.max()) <= 1 + 1e-6
    moved = (module.codes.detach() - start.codes).norm(dim=1) > 1e-3
    assert bool(moved.all())  # three steps of 8 images: every code was trained (and then projected)


def test_flow_log_density_is_the_change_of_variables_of_torch_distributions():
    """With identity couplings the flow is x -> logit(alpha + (1 - 2 alpha) x) -> squeeze -> channel permutations ->
    affine (loc, log_scale): with loc and log_scale the same in every channel, its density is a standard normal
    pushed through those maps by torch.distributions transforms (permutations leave both unchanged)."""
    flow = RealNVPFlow(SHAPE, coupling_layers=2, hidden_channels=4, alpha=0.05).double()
    rng = torch.Generator().manual_seed(0)
    with torch.no_grad():
        flow.loc.copy_(0.5 * torch.randn(1, 2, 2, generator=rng, dtype=torch.float64))  # one value per position
        flow.log_scale.copy_(0.5 * torch.randn(1, 2, 2, generator=rng, dtype=torch.float64))
    scale = (-flow.log_scale).exp().flatten()
    to_image = [
        D.AffineTransform(-flow.loc.flatten() * scale, scale),
        D.SigmoidTransform(),
        D.AffineTransform(-0.05 / 0.9, 1 / 0.9),
    ]  # z -> u -> p -> x, in the squeezed order
    density = D.TransformedDistribution(D.Independent(D.Normal(torch.zeros(16, dtype=torch.float64), 1.0), 1), to_image)
    x = 0.05 + 0.9 * torch.rand(5, *SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(flow.log_prob(x), density.log_prob(squeeze(x).flatten(1)), rtol=1e-10, atol=1e-10)
    perturb(flow, 0.2, seed=2)  # with working couplings: the density of decode's pushforward (its own Jacobian)
    z, _ = flow.encode(x[:1])
    jacobian = torch.autograd.functional.jacobian(lambda v: flow.decode(v[None])[0].flatten(), z[0])
    expected = D.Normal(0.0, 1.0).log_prob(z[0]).sum() - torch.linalg.slogdet(jacobian)[1]
    torch.testing.assert_close(flow.log_prob(x[:1])[0], expected, rtol=1e-8, atol=1e-8)

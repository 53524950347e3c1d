"""Training makes progress: the VAE's negative ELBO falls, and the GAN's generator objective falls against
a fixed discriminator (each measured on a fixed batch with fixed noise)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Subset

from csgm.data import load_splits
from csgm.training import GANModule, VAEModule


def digits(count: int) -> torch.Tensor:
    train = load_splits({"name": "mnist10k", "val_size": 1000, "test_size": 1000, "split_seed": 0})["train"]
    return torch.stack([train[i][0] for i in range(count)])


def nelbo_on(module: VAEModule, batch: torch.Tensor) -> float:
    torch.manual_seed(0)  # the same reparameterisation noise before and after training
    with torch.no_grad():
        return float(module.nelbo(batch).mean())


def test_vae_negative_elbo_falls():
    pl.seed_everything(0, verbose=False)
    module = VAEModule("vae", arch={"latent_dim": 8, "hidden_dims": [64]}, image_shape=(1, 28, 28))
    batch = digits(256)
    before = nelbo_on(module, batch)
    train = load_splits({"name": "mnist10k", "val_size": 1000, "test_size": 1000, "split_seed": 0})["train"]
    trainer = pl.Trainer(
        max_steps=60,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        limit_val_batches=0,
    )
    trainer.fit(module, DataLoader(Subset(train, range(2000)), batch_size=50, shuffle=True))
    after = nelbo_on(module, batch)
    assert after < 0.6 * before, (before, after)  # 543 nats at initialisation; ~200 after 60 steps


def test_gan_generator_objective_falls_against_a_fixed_discriminator():
    torch.manual_seed(0)
    module = GANModule(
        "dcgan", arch={"latent_dim": 16, "base_channels": 8}, image_shape=(1, 28, 28), disc_base_channels=8
    )
    module.discriminator.eval().requires_grad_(False)  # fixed discriminator (batch-norm statistics frozen)
    optimizer = module.configure_optimizers()[0]  # the generator's Adam
    z = torch.randn(64, 16, generator=torch.Generator().manual_seed(1))
    losses = []
    for _ in range(100):
        loss = module.generator_loss(module.generator(z))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.9 * losses[0], losses  # 0.697 at the start, 0.600 after 100 steps
    assert sum(b < a for a, b in zip(losses, losses[1:])) >= 90  # and it falls at almost every step

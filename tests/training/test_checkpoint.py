"""Checkpoints hold everything to rebuild G; the ELBO is computed as documented."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from csgm.errors import CsgmError
from csgm.generators.checkpoint import load_generator
from csgm.recovery.paths import resolve_checkpoint
from csgm.training import FlowModule, GANModule, VAEModule
from csgm.training.vae import negative_elbo


def fit_and_save(module, shape, path):
    images = torch.rand(8, *shape)
    loader = DataLoader(TensorDataset(images, torch.arange(8)), batch_size=4)
    trainer = pl.Trainer(
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(module, loader)
    trainer.save_checkpoint(path)


@pytest.mark.parametrize(
    "module_cls,name,arch,shape",
    [
        (VAEModule, "vae", {"latent_dim": 5, "hidden_dims": [16]}, (1, 12, 12)),
        (GANModule, "dcgan", {"latent_dim": 6, "base_channels": 4}, (3, 16, 16)),
        (FlowModule, "flow", {"coupling_layers": 2, "hidden_channels": 4}, (1, 12, 12)),
    ],
)
def test_checkpoint_round_trip(tmp_path, module_cls, name, arch, shape):
    module = module_cls(name, arch=arch, image_shape=shape, dataset="toy")
    path = tmp_path / "model.ckpt"
    fit_and_save(module, shape, path)
    generator, meta = load_generator(path)
    assert meta["name"] == name and meta["training"] == module_cls.method
    z = torch.randn(4, generator.latent_dim)
    module.generator.eval()
    with torch.no_grad():
        assert torch.equal(generator(z), module.generator(z))
    assert meta["image_shape"] == list(shape) and meta["dataset"] == "toy"
    assert not any(p.requires_grad for p in generator.parameters()) and not generator.training


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CsgmError, match="does not exist; pass checkpoint=PATH"):
        load_generator(tmp_path / "nope.ckpt")


def test_corrupt_checkpoint(tmp_path):
    path = tmp_path / "bad.ckpt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CsgmError, match="not a readable torch checkpoint"):
        load_generator(path)


def test_foreign_checkpoint(tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CsgmError, match="not written by csgm's train.py"):
        load_generator(path)


def test_latest_checkpoint_is_the_newest(tmp_path):
    import os
    import time

    older = tmp_path / "train" / "a" / "checkpoints" / "last.ckpt"
    newer = tmp_path / "train-multirun" / "b" / "0" / "checkpoints" / "last.ckpt"
    for i, path in enumerate((older, newer)):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
        os.utime(path, (time.time() + i, time.time() + i))
    assert resolve_checkpoint("latest", tmp_path) == str(newer.resolve())
    assert resolve_checkpoint("given.ckpt", tmp_path) == "given.ckpt"
    with pytest.raises(CsgmError, match="run `python train.py` first"):
        resolve_checkpoint("latest", tmp_path / "empty")


def test_negative_elbo_known_answers():
    x = torch.full((2, 1, 2, 2), 0.5)
    zeros = torch.zeros(2, 3)
    # logits 0 -> p = 0.5: Bernoulli NLL = 4 log 2 per image; q = prior -> KL = 0.
    nelbo = negative_elbo(x, torch.zeros(2, 1, 2, 2), zeros, zeros)
    assert torch.allclose(nelbo, torch.full((2,), 4 * math.log(2.0)))
    # KL(N(mu, 1) || N(0, 1)) = mu^2 / 2 per dimension.
    nelbo_shift = negative_elbo(x, torch.zeros(2, 1, 2, 2), torch.ones(2, 3), zeros)
    assert torch.allclose(nelbo_shift - nelbo, torch.full((2,), 1.5))
    # Gaussian likelihood at the exact mean: n * log(sigma sqrt(2 pi)).
    x = torch.sigmoid(torch.zeros(1, 1, 2, 2))
    value = negative_elbo(x, torch.zeros(1, 1, 2, 2), zeros[:1], zeros[:1], "gaussian", 0.1)
    assert torch.allclose(value, torch.tensor([4 * math.log(0.1 * math.sqrt(2 * math.pi))]))


def test_kl_term_with_non_zero_log_variances():
    """KL(N(mu, diag exp(logvar)) || N(0, I)) against torch.distributions and the closed form by hand."""
    g = torch.Generator().manual_seed(3)
    mu, logvar = (
        torch.randn(4, 5, generator=g, dtype=torch.float64),
        torch.randn(4, 5, generator=g, dtype=torch.float64),
    )
    x = torch.full((4, 1, 2, 2), 0.5, dtype=torch.float64)
    kl = negative_elbo(x, torch.zeros(4, 1, 2, 2, dtype=torch.float64), mu, logvar) - 4 * math.log(2.0)
    posterior = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    prior = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    assert torch.allclose(kl, torch.distributions.kl_divergence(posterior, prior).sum(1), atol=1e-12)
    # one dimension by hand: sigma^2 = e, mu = 2 -> 0.5 (e + 4 - 1 - 1)
    one = negative_elbo(
        x[:1],
        torch.zeros(1, 1, 2, 2, dtype=torch.float64),
        torch.tensor([[2.0]], dtype=torch.float64),
        torch.tensor([[1.0]], dtype=torch.float64),
    )
    assert float(one) - 4 * math.log(2.0) == pytest.approx(0.5 * (math.e + 4 - 1 - 1), abs=1e-12)

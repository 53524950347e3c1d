"""GLO training: the Laplacian-pyramid loss, the code projection, and a run whose checkpoint carries the Gaussian
fitted to its codes (so that recovery draws latents from it); training methods are checked against generators."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from csgm.errors import CsgmError
from csgm.generators.checkpoint import load_generator
from csgm.training.glo import laplacian_l1, laplacian_pyramid, project_codes
from csgm.training.run import train
from tests.helpers import TINY_GENERATORS, TINY_TRAIN, compose_config


def test_laplacian_pyramid_reconstructs_the_image():
    x = torch.rand(2, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    levels = laplacian_pyramid(x)
    assert [level.shape[-1] for level in levels] == [28, 14, 7]  # 7 is odd: the coarsest level
    image = levels[-1]
    for level in reversed(levels[:-1]):
        image = level + F.interpolate(image, scale_factor=2, mode="nearest")
    torch.testing.assert_close(image, x)


def test_laplacian_l1_weights_coarse_levels_up():
    x = torch.zeros(1, 1, 8, 8)
    assert float(laplacian_l1(x, x)) == 0.0
    # a constant offset lives only in the coarsest level (2x2 after two halvings): 4 pixels x 0.1 x 4^2
    assert float(laplacian_l1(x + 0.1, x)) == pytest.approx(4 * 0.1 * 16)


def test_codes_are_projected_onto_the_sphere_or_into_the_ball():
    codes = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    torch.testing.assert_close(project_codes(codes, "sphere").norm(dim=1), torch.ones(2))
    torch.testing.assert_close(project_codes(codes, "ball"), torch.tensor([[0.6, 0.8], [0.3, 0.4]]))


def test_glo_run_saves_the_gaussian_of_its_codes(tmp_path):
    cfg = compose_config(
        "train", [*TINY_TRAIN, "generator=glo", *TINY_GENERATORS["glo"], "trainer.limit_train_batches=3"]
    )
    summary = train(cfg, tmp_path)
    generator, meta = load_generator(summary["checkpoint"])
    assert meta["training"] == "glo" and meta["name"] == "vae"
    mean, scale = generator.latent_map.mean, generator.latent_map.scale_tril
    assert mean.shape == (20,) and float(mean.norm()) < 1.0  # the mean of codes on the unit sphere
    assert torch.equal(scale, torch.tril(scale)) and bool((scale.diagonal() > 0).all())
    # the saved generator decodes mean + L w: the trained decoder behind the fitted map
    w = generator.sample_latents(3, torch.Generator().manual_seed(0))
    torch.testing.assert_close(generator(w), generator.decode(mean + w @ scale.T))


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_glo_training_lowers_the_reconstruction_loss(tmp_path):
    """150 of the module's own steps (its training_step, and its optimizer_step: the optimiser's, then the
    projection of the codes) on one batch."""
    from csgm.training import GLOModule

    module = GLOModule("vae", {"latent_dim": 8, "hidden_dims": [64]}, (1, 28, 28), loss="l2")
    module.codes = torch.nn.Parameter(
        project_codes(torch.randn(64, 8, generator=torch.Generator().manual_seed(0)), "sphere")
    )
    batch = (torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(1)).pow(4), torch.arange(64))
    optimiser = module.configure_optimizers()
    losses = []
    for _ in range(150):
        optimiser.zero_grad()
        loss = module.training_step(batch, 0)
        loss.backward()
        module.optimizer_step(0, 0, optimiser)
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])
    torch.testing.assert_close(module.codes.detach().norm(dim=1), torch.ones(64))


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["generator=flow", "generator/training=glo"], "generator.training.method=glo cannot train generator=flow"),
        (["generator=dcgan", "generator/training=elbo"], "generator.training.method=elbo cannot train generator=dcgan"),
        (["generator=vae", "generator/training=mle"], "generator.training.method=mle cannot train generator=vae"),
        (
            ["generator.training.method=vae"],
            "unknown generator.training.method 'vae'; choose one of: adversarial, denoising, elbo, glo, mle",
        ),
        (
            ["generator=glo", "generator.training.loss=l3"],
            "unknown generator.training.loss 'l3'; choose one of: l2, laplacian_l1",
        ),
        (["generator=glo", "+generator.training.likelihood=bernoulli"], "unknown key generator.training.likelihood"),
    ],
)
def test_training_methods_are_checked_against_the_generator(tmp_path, overrides, message):
    with pytest.raises(CsgmError, match=message):
        train(compose_config("train", [*TINY_TRAIN, *overrides]), tmp_path)

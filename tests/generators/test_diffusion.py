"""The diffusion prior's schedule and sampler steps against closed forms and diffusers' own schedulers."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler

from csgm.errors import CsgmError
from csgm.generators import build_generator
from csgm.generators.diffusion import ddim_times, require_diffusion
from tests.diffusion_helpers import GaussianDiffusion


def test_alpha_bar_is_the_cumulative_product_of_the_linear_betas():
    prior = GaussianDiffusion((1, 2, 2), timesteps=1000)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    torch.testing.assert_close(prior.alphas_cumprod.double(), torch.cumprod(1 - betas, 0), rtol=1e-5, atol=1e-7)
    assert prior.noise_level(0) == pytest.approx((1e-4 / (1 - 1e-4)) ** 0.5, rel=1e-4)


def test_ddim_times_are_trailing_and_end_before_the_clean_image():
    assert ddim_times(1000, 10) == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    assert ddim_times(50, 50) == list(range(49, -1, -1))


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_step_matches_diffusers(eta):
    """Our closed-form update equals DDIMScheduler.step (no clipping) at every step of a 10-step schedule."""
    prior = GaussianDiffusion((1, 4, 4), timesteps=1000)
    scheduler = DDIMScheduler(num_train_timesteps=1000, timestep_spacing="trailing", clip_sample=False)
    scheduler.set_timesteps(10)
    rng = torch.Generator().manual_seed(0)
    times = ddim_times(1000, 10)
    for t, t_prev in zip(times, [*times[1:], -1]):
        x_t, eps, noise = (torch.randn(3, 1, 4, 4, generator=rng) for _ in range(3))
        ours = prior.ddim_step(x_t, t, t_prev, eps, eta, noise)
        theirs = scheduler.step(eps, t, x_t, eta=eta, variance_noise=noise).prev_sample
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_ddim_with_eta_zero_is_deterministic_and_invertible():
    prior = GaussianDiffusion((1, 4, 4), mu=0.0, s=0.2, sample_steps=50)  # images well inside [0, 1]: no clipping
    z = torch.randn(5, 16, generator=torch.Generator().manual_seed(0))
    x = prior(z)
    torch.testing.assert_close(prior(z), x, rtol=0, atol=0)
    back = prior.ddim_invert(prior.from_pixels(x))
    torch.testing.assert_close(back, z, rtol=0, atol=1e-3)


def test_the_ddim_map_pushes_noise_to_the_data_law():
    """For the Gaussian data law the deterministic DDIM map is (near) affine: outputs have its mean and spread."""
    prior = GaussianDiffusion((1, 8, 8), mu=0.2, s=0.3, sample_steps=1000)  # fine steps: small Euler error
    x = prior(torch.randn(2000, 64, generator=torch.Generator().manual_seed(0)))
    u = prior.from_pixels(x)
    assert float(u.mean()) == pytest.approx(0.2, abs=0.01)
    assert float(u.std()) == pytest.approx(0.3, rel=0.03)


def test_v_prediction_gives_the_same_noise_estimate():
    """A network predicting v = sqrt(abar) eps - sqrt(1 - abar) u gives back eps through predict_noise."""
    prior = GaussianDiffusion((1, 4, 4), mu=0.1, s=0.5)
    v_prior = GaussianDiffusion((1, 4, 4), mu=0.1, s=0.5)
    v_prior.prediction = "v_prediction"
    eps_network = prior.network

    def v_network(x_t, t):
        a = prior.alpha_bar(t, x_t)
        eps = eps_network(x_t, t)
        u = (x_t - (1 - a).sqrt() * eps) / a.sqrt()
        return a.sqrt() * eps - (1 - a).sqrt() * u

    v_prior.network = v_network
    x_t = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    for t in (0, 300, 999):
        torch.testing.assert_close(v_prior.predict_noise(x_t, t), prior.predict_noise(x_t, t), rtol=1e-4, atol=1e-5)


def test_with_sample_steps_shares_the_network():
    prior = build_generator("diffusion", {"channels": [8, 8], "norm_groups": 4, "sample_steps": 4}, (1, 8, 8))
    fast = prior.with_sample_steps(2)
    assert fast.sample_steps == 2 and prior.sample_steps == 4 and fast.unet is prior.unet
    assert len(fast.stages()) == 2 and len(prior.stages()) == 4


@pytest.mark.parametrize(
    "arch,shape,fragment",
    [
        ({"channels": [8, 8, 8]}, (1, 30, 30), "multiples of 4, not 30x30"),
        ({"channels": [8, 12]}, (1, 28, 28), "each a multiple of generator.arch.norm_groups=8"),
        ({"sample_steps": 0}, (1, 28, 28), "generator.arch.sample_steps"),
        ({"prediction": "x0"}, (1, 28, 28), "generator.arch.prediction"),
    ],
)
def test_bad_architectures_are_named(arch, shape, fragment):
    with pytest.raises(CsgmError, match=fragment):
        build_generator("diffusion", arch, shape)


def test_score_solvers_refuse_other_generators_in_one_line():
    vae = build_generator("vae", {"latent_dim": 4, "hidden_dims": [8]}, (1, 4, 4))
    with pytest.raises(CsgmError, match="needs a diffusion prior's score, but the checkpoint holds a VAEDecoder"):
        require_diffusion(vae, "dps")
    with pytest.raises(CsgmError, match="needs a diffusion checkpoint"):
        require_diffusion(None, "dps")

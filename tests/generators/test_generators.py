"""Generator contract: (N, k) -> (N, C, H, W) in [0, 1]; layouts; clear errors for shapes G cannot make."""

from __future__ import annotations

import math

import pytest
import torch

from csgm.errors import CsgmError
from csgm.generators import GENERATORS, DCGANDiscriminator, build_generator
from csgm.generators.base import LatentGaussian
from csgm.generators.dcgan import dcgan_layout


TINY_ARCH = {
    "vae": {"latent_dim": 7},
    "dcgan": {"latent_dim": 7},
    "flow": {"coupling_layers": 2, "hidden_channels": 8},
    "diffusion": {"channels": [8, 8], "norm_groups": 4, "timesteps": 50, "sample_steps": 3},
}
FULL_DIMENSIONAL = ("flow", "diffusion")  # latent_dim = C*H*W


def test_every_generator_has_a_tiny_architecture_here():
    assert sorted(TINY_ARCH) == sorted(GENERATORS)


@pytest.mark.parametrize("name", sorted(GENERATORS))
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64), (1, 32, 48)])
@pytest.mark.parametrize("latent_map", [False, True])
def test_generator_contract(name, shape, latent_map):
    generator = build_generator(name, TINY_ARCH[name], shape).eval()
    k = generator.latent_dim
    assert generator.image_shape == shape and k == (math.prod(shape) if name in FULL_DIMENSIONAL else 7)
    if latent_map:  # a generator trained on other latents (GLO) carries their Gaussian at its input
        generator.latent_map = LatentGaussian(torch.full((k,), 0.3), 0.5 * torch.eye(k))
    z = generator.sample_latents(5, torch.Generator().manual_seed(0))
    assert z.shape == (5, k)
    with torch.no_grad():
        out = generator(z)
    assert out.shape == (5, *shape)
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    stages = generator.stages()
    if name == "flow":  # one invertible map: no intermediate layer to optimise
        assert len(stages) == 1
        with pytest.raises(CsgmError, match="RealNVPFlow exposes no intermediate layers"):
            generator.split(1)
        return
    assert len(stages) >= 3  # ILO needs intermediate layers
    with torch.no_grad():
        for layer in range(1, len(stages)):
            head, tail = generator.split(layer)
            torch.testing.assert_close(tail(head(z)), generator(z))  # every split composes back to G
    with pytest.raises(CsgmError, match=rf"solver.layer={len(stages)} is not an intermediate layer"):
        generator.split(len(stages))


def test_latent_gaussian_fit_recovers_mean_and_covariance():
    rng = torch.Generator().manual_seed(0)
    scale = torch.tensor([[1.0, 0.0], [0.8, 0.3]])
    codes = torch.tensor([2.0, -1.0]) + torch.randn(20000, 2, generator=rng) @ scale.T
    fitted = LatentGaussian.fit(codes, ridge=0.0)
    torch.testing.assert_close(fitted.mean, torch.tensor([2.0, -1.0]), atol=0.02, rtol=0)
    torch.testing.assert_close(fitted.scale_tril @ fitted.scale_tril.T, scale @ scale.T, atol=0.02, rtol=0)
    w = torch.randn(20000, 2, generator=rng)  # standard-normal latents through the map follow the fitted law
    torch.testing.assert_close(fitted(w).mean(0), fitted.mean, atol=0.03, rtol=0)


def test_vae_matches_the_paper_architecture():
    generator = build_generator("vae", {"latent_dim": 20, "hidden_dims": [500, 500]}, (1, 28, 28))
    linear = [m for m in generator.net if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linear] == [(20, 500), (500, 500), (500, 784)]


def test_dcgan_matches_the_paper_architecture_at_64():
    generator = build_generator("dcgan", {"latent_dim": 100}, (3, 64, 64))
    assert (generator.h0, generator.w0) == (4, 4)
    convs = [m for m in generator.body if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.in_channels for c in convs] == [512, 256, 128, 64]
    assert convs[-1].out_channels == 3


@pytest.mark.parametrize("size,expected", [(64, (4, 4, 4)), (28, (7, 7, 2)), (32, (4, 4, 3))])
def test_dcgan_layout(size, expected):
    assert dcgan_layout(size, size) == expected


@pytest.mark.parametrize("shape", [(1, 27, 27), (3, 10, 10), (3, 36, 36)])
def test_dcgan_rejects_shapes_it_cannot_make(shape):
    with pytest.raises(CsgmError, match=rf"DCGAN cannot produce {shape[1]}x{shape[2]} images"):
        build_generator("dcgan", {}, shape)


def test_discriminator_gives_one_logit_per_image():
    assert DCGANDiscriminator((3, 64, 64))(torch.rand(4, 3, 64, 64)).shape == (4,)


def test_unknown_generator_and_bad_arch_options():
    with pytest.raises(CsgmError, match="unknown generator 'gan'; choose one of: dcgan, diffusion, flow, vae"):
        build_generator("gan", {}, (1, 28, 28))
    with pytest.raises(
        CsgmError, match=r"unknown key generator.arch.layers \(value 3\); accepted keys: hidden_dims, latent_dim"
    ):
        build_generator("vae", {"layers": 3}, (1, 28, 28))
    with pytest.raises(CsgmError, match=r"generator.arch.latent_dim=0 must be >= 1"):
        build_generator("vae", {"latent_dim": 0}, (1, 28, 28))
    with pytest.raises(CsgmError, match=r"generator.arch.hidden_dims=\[\] must be a non-empty list"):
        build_generator("vae", {"hidden_dims": []}, (1, 28, 28))

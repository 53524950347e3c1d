"""The RealNVP flow: exactly invertible, its log-density matches the Jacobian determinant computed by autograd,
and its bits per dimension fall with training."""

from __future__ import annotations

import math

import pytest
import torch

from csgm.errors import CsgmError
from csgm.generators import build_generator
from csgm.generators.flow import RealNVPFlow, bits_per_dim, squeeze, unsqueeze


def perturbed_flow(shape=(1, 4, 4), layers=3, hidden=8, seed=0) -> RealNVPFlow:
    """A flow whose couplings are not the identity (their last layer starts at zero)."""
    flow = RealNVPFlow(shape, coupling_layers=layers, hidden_channels=hidden).double()
    rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in flow.parameters():
            parameter.add_(0.2 * torch.randn(parameter.shape, generator=rng, dtype=parameter.dtype))
    return flow


def test_squeeze_is_inverted_by_unsqueeze():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float64).view(2, 3, 4, 6)
    assert squeeze(x).shape == (2, 12, 2, 3)
    assert torch.equal(unsqueeze(squeeze(x)), x)
    assert torch.equal(squeeze(x)[0, :4, 0, 0], torch.tensor([0.0, 1.0, 6.0, 7.0]))  # one 2x2 block -> 4 channels


def test_decode_inverts_encode():
    flow = perturbed_flow((3, 6, 8))
    x = 0.02 + 0.96 * torch.rand(4, 3, 6, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    z, _ = flow.encode(x)
    assert z.shape == (4, 3 * 6 * 8)
    torch.testing.assert_close(flow.decode(z), x, atol=1e-10, rtol=0)


def test_log_determinant_matches_autograd():
    flow = perturbed_flow()
    x = 0.05 + 0.9 * torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(lambda v: flow.encode(v.view(1, 1, 4, 4))[0][0], x.flatten())
    torch.testing.assert_close(flow.encode(x)[1][0], torch.linalg.slogdet(jacobian)[1], atol=1e-9, rtol=0)
    z = flow.encode(x)[0]
    expected = -0.5 * z.pow(2).sum() - 8 * math.log(2 * math.pi) + torch.linalg.slogdet(jacobian)[1]
    torch.testing.assert_close(flow.log_prob(x)[0], expected, atol=1e-9, rtol=0)


def test_bits_per_dim_fall_with_maximum_likelihood():
    torch.manual_seed(0)
    flow = RealNVPFlow((1, 8, 8), coupling_layers=2, hidden_channels=8)
    x = (torch.rand(64, 1, 8, 8) > 0.7).float()  # binary images: learnable structure
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        before = float(bits_per_dim(flow, x, noise).mean())
    optimiser = torch.optim.Adam(flow.parameters(), lr=1e-2)
    for _ in range(100):
        loss = bits_per_dim(flow, x, torch.rand_like(x)).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        after = float(bits_per_dim(flow, x, noise).mean())
    assert after < 0.7 * before, (before, after)  # 11.2 -> 7.2 bits per dimension


@pytest.mark.parametrize(
    "arch,message",
    [
        ({"coupling_layers": 0}, "generator.arch.coupling_layers=0 must be >= 1"),
        ({"alpha": 0.5}, r"generator.arch.alpha=0.5 must be < 0.5"),
        ({"latent_dim": 20}, r"unknown key generator.arch.latent_dim"),
    ],
)
def test_bad_flow_options_fail_in_one_line(arch, message):
    with pytest.raises(CsgmError, match=message):
        build_generator("flow", arch, (1, 28, 28))


def test_odd_image_sides_are_refused():
    with pytest.raises(CsgmError, match=r"generator=flow needs even image sides .* not 27x27"):
        build_generator("flow", {}, (1, 27, 27))

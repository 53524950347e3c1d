"""Generator evaluation numbers (the paper's future work): the distance of test images to range(G), the
optimisation error on G's own images, and a computable proxy for G's Lipschitz constant."""

from __future__ import annotations

from typing import Sequence

import torch

from csgm.generators import Generator
from csgm.generators.flow import bits_per_dim
from csgm.measurement import MeasurementModel
from csgm.metrics import mean_ci95, per_pixel_error
from csgm.operators import build_operator
from csgm.seeding import seeded_rng
from csgm.solvers import build_solver

__all__ = ["range_errors", "range_error", "jacobian_spectral_norms", "pairwise_ratios", "test_bits_per_dim"]


def range_errors(
    generator: Generator,
    x: torch.Tensor,
    image_ids: Sequence[int],
    restarts: int,
    iterations: int,
    lr: float,
    seed: int = 0,
    by_inverse: bool = True,
) -> torch.Tensor:
    """min_z ||G(z) - x||^2 / n per image (float64): CSGM with A = I and no noise, ``restarts`` x ``iterations``
    Adam steps, batched over images and restarts. An invertible generator (a flow, with ``encode``) reaches every
    image: with ``by_inverse`` its minimiser is z = G^-1(x), and the error is that of the round trip G(G^-1(x))
    (rounding only); without, the search runs as for any generator (how well the search finds it)."""
    if by_inverse and hasattr(generator, "encode"):
        with torch.no_grad():
            return per_pixel_error(generator(generator.encode(x)[0]).double(), x.double())
    model = MeasurementModel(build_operator({"name": "identity"}, generator.image_shape).to(x.device))
    solver = build_solver({"name": "csgm", "restarts": restarts, "iterations": iterations, "lr": lr})
    out = solver.solve(model.measure(x, image_ids), model, image_ids, generator, seed)
    return per_pixel_error(out.x_hat.double(), x.double())


def range_error(
    generator: Generator,
    x: torch.Tensor,
    image_ids: Sequence[int],
    restarts: int,
    iterations: int,
    lr: float,
    seed: int = 0,
    by_inverse: bool = True,
) -> dict:
    """The mean of ``range_errors`` over the images and its 95% interval."""
    mean, half = mean_ci95(range_errors(generator, x, image_ids, restarts, iterations, lr, seed, by_inverse).tolist())
    return {"mean": mean, "ci95": half}


def _power_iteration(generator: Generator, z: torch.Tensor, iterations: int, seed: int) -> torch.Tensor:
    """The largest singular value of the Jacobian of G at every row of z, by power iteration on J^T J."""
    v = torch.randn(z.shape, generator=seeded_rng("lipschitz_power", seed), dtype=torch.float64).to(z)
    v = v / v.norm(dim=1, keepdim=True)
    sigma = torch.zeros(len(z), dtype=z.dtype, device=z.device)
    for _ in range(iterations):
        _, jv = torch.func.jvp(generator, (z,), (v,))
        _, pullback = torch.func.vjp(generator, z)
        (w,) = pullback(jv)
        sigma = jv.flatten(1).norm(dim=1)
        v = w / w.norm(dim=1, keepdim=True).clamp_min(1e-30)
    return sigma


def jacobian_spectral_norms(generator: Generator, samples: int, iterations: int, seed: int = 0) -> dict:
    """||J_G(z)||_2 (on the [0, 1] pixel scale) at ``samples`` latents z ~ N(0, I): median and maximum."""
    z = generator.sample_latents(samples, seeded_rng("lipschitz_z", seed))
    sigma = _power_iteration(generator, z, iterations, seed)
    return {"median": float(sigma.median()), "max": float(sigma.max()), "samples": samples}


def pairwise_ratios(generator: Generator, pairs: int, seed: int = 0) -> dict:
    """The largest and median ratio ||G(z1) - G(z2)|| / ||z1 - z2|| over ``pairs`` pairs of latents from N(0, I)."""
    rng = seeded_rng("lipschitz_pairs", seed)
    z1, z2 = generator.sample_latents(pairs, rng), generator.sample_latents(pairs, rng)
    with torch.no_grad():
        ratio = (generator(z1) - generator(z2)).flatten(1).norm(dim=1) / (z1 - z2).norm(dim=1)
    return {"max": float(ratio.max()), "median": float(ratio.median()), "pairs": pairs}


def test_bits_per_dim(generator: Generator, x: torch.Tensor, seed: int = 0) -> dict | None:
    """The test likelihood in bits per dimension (mean and 95% interval, uniformly dequantised 8-bit pixels, seeded)
    for generators that define a density; None for the others (a VAE decoder alone, a GAN, GLO)."""
    if not generator.defines_likelihood:
        return None
    noise = torch.rand(x.shape, generator=seeded_rng("dequantise", seed), dtype=x.dtype)
    with torch.no_grad():
        bits = bits_per_dim(generator, x, noise)
    mean, half = mean_ci95(bits.double().tolist())
    return {"mean": mean, "ci95": half}

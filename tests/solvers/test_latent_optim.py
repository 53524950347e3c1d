"""Per-row latent optimisers match torch.optim; successive halving and early stops save generator work."""

from __future__ import annotations

import pytest
import torch

from csgm.operators import build_operator
from csgm.solvers.csgm import CSGMSolver, _best_per_image
from csgm.solvers.latent_optim import LatentOptimizer


@pytest.mark.parametrize(
    "kind,reference",
    [
        ("adam", lambda p: torch.optim.Adam([p], lr=0.05)),
        ("sgd", lambda p: torch.optim.SGD([p], lr=0.05)),
        ("momentum", lambda p: torch.optim.SGD([p], lr=0.05, momentum=0.9)),
    ],
)
def test_matches_torch_optimizers(kind, reference):
    target = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ours = torch.zeros(6, 4, dtype=torch.float64)
    theirs = torch.zeros(6, 4, dtype=torch.float64, requires_grad=True)
    optimizer, torch_optimizer = LatentOptimizer(kind, ours), reference(theirs)
    for _ in range(50):
        optimizer.step(ours, None, 2 * (ours - target) ** 3, 0.05)
        torch_optimizer.zero_grad()
        ((theirs - target) ** 4 / 2).sum().backward()
        torch_optimizer.step()
    torch.testing.assert_close(ours, theirs.detach(), rtol=1e-9, atol=1e-9)


def test_a_subset_of_rows_steps_alone():
    z = torch.ones(4, 2)
    optimizer = LatentOptimizer("adam", z)
    optimizer.step(z, torch.tensor([1, 3]), torch.ones(2, 2), 0.1)
    assert torch.equal(z[[0, 2]], torch.ones(2, 2)) and bool((z[[1, 3]] < 1).all())


def test_best_per_image():
    loss = torch.tensor([5.0, 1.0, 3.0, 2.0, 9.0, 7.0, 8.0])
    image = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    assert _best_per_image(loss, image, 0.5).tolist() == [False, True, False, True, False, True, True]


def test_halving_saves_generator_evaluations_and_keeps_the_best_restart():
    from csgm.generators import build_generator

    torch.manual_seed(0)
    G = build_generator("vae", {"latent_dim": 4, "hidden_dims": [16]}, (1, 8, 8)).eval().requires_grad_(False)
    A = build_operator({"name": "gaussian"}, (1, 8, 8), seed=0, m=30)
    y = A(torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1)))
    full = CSGMSolver(lr=0.05, iterations=40, restarts=8).solve(y, A, [0, 1, 2], G)
    halved = CSGMSolver(lr=0.05, iterations=40, restarts=8, halving_every=10).solve(y, A, [0, 1, 2], G)
    assert full.generator_evaluations.tolist() == [8 * 40 + 8] * 3
    assert halved.generator_evaluations.tolist() == [8 * 10 + 4 * 10 + 2 * 10 + 1 * 10 + 8] * 3
    assert bool((halved.measurement_loss <= full.measurement_loss * 1.5).all())

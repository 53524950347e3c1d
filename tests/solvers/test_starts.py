"""Screened starts: each image's restarts start from its best bank latents, whatever the batch."""

from __future__ import annotations

import pytest
import torch

from csgm.errors import CsgmError
from csgm.generators import build_generator
from csgm.measurement import MeasurementModel
from csgm.operators import Noise, build_operator
from csgm.solvers import build_solver
from csgm.solvers.starts import StartBank

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    generator = build_generator("vae", {"latent_dim": 4, "hidden_dims": [32]}, SHAPE).eval().requires_grad_(False)
    model = MeasurementModel(build_operator({"name": "gaussian"}, SHAPE, seed=0, m=20), Noise("gaussian", 0.05), seed=0)
    x = generator(torch.randn(5, 4, generator=torch.Generator().manual_seed(1)))
    return generator, model, model.measure(x, range(5))


def test_starts_are_each_images_best_bank_latents(problem):
    generator, model, y = problem
    bank = StartBank(256)
    starts = bank.starts(y, model, generator, seed=3, restarts=3).view(5, 3, 4)
    z, images = bank.latents_and_images(generator, 3, y.device, y.dtype)
    terms = torch.stack([model.data_term(model.predict(images), row.expand(256, -1)) for row in y])
    best = terms.argsort(dim=1)[:, :3]
    torch.testing.assert_close(starts, z[best])
    alone = StartBank(256).starts(y[2:3], model, generator, seed=3, restarts=3)
    torch.testing.assert_close(alone, starts[2])  # independent of the batch


def test_screened_starts_begin_closer_than_prior_starts(problem):
    generator, model, y = problem
    screened = build_solver({"name": "csgm", "restarts": 2, "iterations": 1, "lr": 1e-9, "start_bank": 512})
    prior = build_solver({"name": "csgm", "restarts": 2, "iterations": 1, "lr": 1e-9})
    ids = list(range(5))
    assert float(screened.solve(y, model, ids, generator).measurement_loss.mean()) < float(
        prior.solve(y, model, ids, generator).measurement_loss.mean()
    )


def test_a_bank_smaller_than_the_restarts_is_refused():
    with pytest.raises(CsgmError, match=r"solver.start_bank=5 must hold at least the 10 restarts"):
        build_solver({"name": "csgm", "restarts": 10, "start_bank": 5})

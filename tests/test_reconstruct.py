"""``csgm.reconstruct``: the notebook API takes numpy or torch of any real dtype and finds an image of G's range;
bad inputs fail in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import csgm
from csgm.errors import CsgmError
from csgm.generators.checkpoint import load_generator


@pytest.fixture(scope="module")
def problem(vae_checkpoint):
    """x = G(z*) for two seeded z*, a Gaussian A (numpy float64) with 200 rows, noise-free y = A x."""
    generator, _ = load_generator(vae_checkpoint)
    with torch.no_grad():
        x = generator(torch.randn(2, generator.latent_dim, generator=torch.Generator().manual_seed(3)))
    A = np.random.default_rng(0).standard_normal((200, 784))
    y = x.flatten(1).double().numpy() @ A.T
    return vae_checkpoint, x, A, y


def test_recovers_an_image_of_the_range_from_numpy_float64(problem):
    checkpoint, x, A, y = problem
    out = csgm.reconstruct(y, A, checkpoint, noise_std=None, restarts=4, iterations=400)
    assert out.x_hat.shape == x.shape and out.x_hat.dtype == torch.float32
    error = (out.x_hat - x).pow(2).flatten(1).mean(1)
    assert error.max() < 1e-3, error  # the unperturbed image is in the range: the search finds it
    assert out.z.shape == (2, 20) and out.measurement_loss.shape == (2,)


def test_same_estimate_from_torch_float32_and_one_image_at_a_time(problem):
    checkpoint, _, A, y = problem
    generator, _ = load_generator(checkpoint)
    both = csgm.reconstruct(y, A, generator, restarts=2, iterations=50)
    as_torch = csgm.reconstruct(
        torch.tensor(y, dtype=torch.float32), torch.tensor(A, dtype=torch.float32), generator, restarts=2, iterations=50
    )
    second = csgm.reconstruct(y[1], A, generator, image_ids=[1], restarts=2, iterations=50)
    assert torch.equal(both.x_hat, as_torch.x_hat)
    torch.testing.assert_close(both.x_hat[1:], second.x_hat, rtol=1e-5, atol=1e-5)  # seeded by image id, not position


def test_samplers_return_samples_and_std(problem):
    checkpoint, _, A, y = problem
    out = csgm.reconstruct(y[:1], A, checkpoint, solver="langevin", keep_samples=3, steps=20, burn_in=10)
    assert out.samples.shape[:2] == (1, 3) and out.pixel_std.shape == (1, 1, 28, 28)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(y=None), "y=None: pass an array (numpy or torch)"),
        (dict(y="complex"), "y is complex (torch.complex128): pass real values"),
        (dict(y=np.array([["a", "b"]])), "y has dtype <U1: pass numbers"),
        (dict(y=np.full((1, 200), np.nan)), "y holds NaN or inf values"),
        (dict(y=np.zeros((2, 50))), "y has shape (2, 50) but A gives 200 values per image; pass y as (images, 200)"),
        (dict(A=np.zeros((200, 100))), "the matrix has shape (200, 100) but the images are 1x28x28 (n = 784)"),
        (dict(A=np.zeros(200)), "A has shape (200,): pass a 2-D (m, n) matrix or a csgm operator"),
        (
            dict(solver="lasso"),
            "solver 'lasso' chooses lambda_l1 on validation images (lambda_l1=auto); pass lambda_l1=VALUE",
        ),
        (dict(solver="nosuch"), "Could not find 'solver/nosuch'"),
        (dict(options={"restart": 2}), "unknown key solver.restart (value 2); did you mean solver.restarts?"),
        (dict(generator=None), "a dense A needs the image shape: pass a generator or image_shape=(C, H, W)"),
        (dict(image_ids=[0]), "image_ids has 1 ids for 2 rows of y; give one id per row"),
    ],
)
def test_bad_inputs_fail_in_one_line(problem, change, message):
    checkpoint, _, A, y = problem
    args = {"y": y, "A": A, "generator": checkpoint, "solver": "csgm", "image_ids": None, "options": {}, **change}
    if isinstance(args["y"], str):
        args["y"] = y.astype(complex)
    with pytest.raises(CsgmError) as raised:
        csgm.reconstruct(
            args["y"],
            args["A"],
            args["generator"],
            solver=args["solver"],
            image_ids=args["image_ids"],
            **args["options"],
        )
    assert message in str(raised.value) and "\n" not in str(raised.value)

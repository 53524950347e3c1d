"""Flushing float32 subnormals: the mode is on inside the block, restored after, and changes no result."""

from __future__ import annotations

import torch

from csgm.generators import build_generator
from csgm.numerics import denormals_flushed, flush_denormals
from csgm.operators import build_operator
from csgm.solvers.csgm import CSGMSolver


def test_flush_denormals_is_scoped_and_nests():
    assert not denormals_flushed()
    with flush_denormals():
        assert denormals_flushed()
        assert float(torch.tensor([1e-30]) * 1e-10) == 0.0  # a subnormal result is flushed
        with flush_denormals():
            assert denormals_flushed()
        assert denormals_flushed()  # the inner block does not switch off what the outer one set
    assert not denormals_flushed()
    assert float(torch.tensor([1e-30]) * 1e-10) > 0.0
    with flush_denormals(enabled=False):
        assert not denormals_flushed()


def test_flush_denormals_is_restored_after_an_error():
    try:
        with flush_denormals():
            raise ValueError("inside")
    except ValueError:
        pass
    assert not denormals_flushed()


def test_csgm_results_do_not_depend_on_flushing():
    torch.manual_seed(0)
    shape = (1, 8, 8)
    generator = build_generator("vae", {"latent_dim": 4, "hidden_dims": [16]}, shape).requires_grad_(False)
    with torch.no_grad():  # push pre-activations far below zero, where softplus and sigmoid underflow
        for layer in generator.modules():
            if isinstance(layer, torch.nn.Linear):
                layer.bias.sub_(60.0)
    operator = build_operator({"name": "gaussian"}, shape, seed=0, m=20)
    y = operator(torch.rand(2, *shape, generator=torch.Generator().manual_seed(1)))
    runs = [
        CSGMSolver(lr=0.05, iterations=30, restarts=2, flush_denormals=flag).solve(y, operator, [0, 1], generator)
        for flag in (True, False)
    ]
    torch.testing.assert_close(runs[0].x_hat, runs[1].x_hat, rtol=0, atol=1e-6)
    torch.testing.assert_close(runs[0].z, runs[1].z, rtol=1e-5, atol=1e-6)
    assert not denormals_flushed()

"""The maths contract every operator config must pass (pyxu-style): a new conf/operator/*.yaml is
tested here without new test code."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from csgm.cli import plain
from csgm.errors import CsgmError
from csgm.operators import build_operator, operator_class, operator_uses_m
from tests.helpers import ROOT, compose_config, conf_options

SHAPES = [(1, 16, 16), (3, 16, 12)]
SEED = 5


def operator_cfg(option: str) -> dict:
    return plain(compose_config("recover", [f"operator={option}"]))["operator"]


def make(option: str, shape, seed: int = SEED, dtype=torch.float64):
    cfg = operator_cfg(option)
    if cfg.get("mode") == "hole":
        cfg["hole_size"] = 4
    return build_operator(cfg, shape, seed=seed, m=0.3 if operator_uses_m(cfg) else None).to(dtype)


def probe(shape, count=3, dtype=torch.float64, seed=0):
    return torch.rand(count, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def is_linear(option: str) -> bool:
    return operator_class(operator_cfg(option)).linear


LINEAR = [o for o in conf_options("operator") if is_linear(o)]
NONLINEAR = [o for o in conf_options("operator") if not is_linear(o)]


@pytest.fixture(params=LINEAR)
def option(request):
    """Every linear operator config (the maths contract of LinearOperator)."""
    return request.param


@pytest.fixture(params=NONLINEAR)
def nonlinear_option(request):
    """Every nonlinear operator config (the contract of Operator: derivatives, shapes, seeding)."""
    return request.param


@pytest.fixture(params=SHAPES, ids=lambda s: "x".join(map(str, s)))
def shape(request):
    return request.param


class TestOperatorContract:
    @pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
    def test_adjointness(self, option, shape, dtype, tol):
        A = make(option, shape, dtype=dtype)
        x = probe(shape, dtype=dtype)
        y = torch.randn(3, A.output_size, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)
        Ax = A(x)
        error = abs(float((Ax * y).sum() - (x * A.adjoint(y)).sum())) / (float(Ax.norm()) * float(y.norm()))
        assert error < tol

    def test_linearity(self, option, shape):
        A = make(option, shape)
        x1, x2 = probe(shape, seed=1), probe(shape, seed=2)
        torch.testing.assert_close(A(2.5 * x1 - 0.7 * x2), 2.5 * A(x1) - 0.7 * A(x2))

    def test_shapes_and_counts(self, option, shape):
        A = make(option, shape)
        y = A(probe(shape, count=4))
        assert y.shape == (4, A.output_size) and y.dtype == torch.float64
        assert A.adjoint(y).shape == (4, *shape)
        assert 1 <= A.m <= A.n and A.output_size in (A.m, 2 * A.m)

    def test_dense_matrix_equals_operator(self, option, shape):
        A = make(option, shape)
        x = probe(shape)
        dense = A.to_dense()
        assert dense.shape == (A.output_size, A.n)
        torch.testing.assert_close(x.flatten(1) @ dense.T, A(x))

    def test_norm_estimate_matches_the_spectral_norm(self, option, shape):
        A = make(option, shape)
        exact = float(torch.linalg.matrix_norm(A.to_dense(), ord=2)) ** 2
        assert A.norm_squared(iterations=500, tol=1e-12) == pytest.approx(exact, rel=1e-3)

    def test_same_seed_same_operator(self, option, shape):
        torch.testing.assert_close(make(option, shape, seed=3).to_dense(), make(option, shape, seed=3).to_dense())

    def test_seed_changes_random_operators(self, option, shape):
        cfg = operator_cfg(option)
        if not operator_uses_m(cfg) or cfg["name"] not in ("gaussian", "fourier", "inpaint"):
            pytest.skip("operator has no random draw")
        if cfg.get("mask") == "radial":
            pytest.skip("radial spokes are deterministic")
        assert not torch.equal(make(option, shape, seed=3).to_dense(), make(option, shape, seed=4).to_dense())

    def test_float32_and_float64_agree(self, option, shape):
        x = probe(shape)
        y64 = make(option, shape, dtype=torch.float64)(x)
        y32 = make(option, shape, dtype=torch.float32)(x.float())
        torch.testing.assert_close(y32.double(), y64, rtol=1e-4, atol=1e-4)

    def test_wrong_image_shape_is_a_clear_error(self, option, shape):
        A = make(option, shape)
        with pytest.raises(CsgmError, match="was built for images of shape"):
            A(torch.zeros(1, shape[0], shape[1] + 4, shape[2]))
        with pytest.raises(CsgmError, match="expects measurements of shape"):
            A.adjoint(torch.zeros(1, A.output_size + 1))

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    def test_cuda_matches_cpu(self, option, shape):
        A = make(option, shape, dtype=torch.float32)
        x = probe(shape, dtype=torch.float32)
        torch.testing.assert_close(A.to("cuda")(x.cuda()).cpu(), A(x), rtol=1e-4, atol=1e-4)


class TestNonlinearOperatorContract:
    def test_jacobian_vector_product_matches_finite_differences(self, nonlinear_option, shape):
        """d/dt A(x + t v) at t = 0 by autograd (torch.func.jvp) against central differences, float64, for the
        map solvers differentiate: ``pre_noise`` (A itself, or A x + dither before a quantiser)."""
        A = make(nonlinear_option, shape)
        x, v = probe(shape, count=2, seed=1), probe(shape, count=2, seed=2) - 0.5
        _, jvp = torch.func.jvp(A.pre_noise, (x,), (v,))
        step = 1e-6
        finite = (A.pre_noise(x + step * v) - A.pre_noise(x - step * v)) / (2 * step)
        torch.testing.assert_close(jvp, finite, rtol=1e-5, atol=1e-6)

    def test_gradients_flow_to_the_image(self, nonlinear_option, shape):
        A = make(nonlinear_option, shape)
        x = probe(shape).requires_grad_(True)
        A.pre_noise(x).pow(2).sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0

    def test_measurements_come_from_the_noisy_values(self, nonlinear_option, shape):
        """y = post_noise(pre_noise(x)); a quantiser's cell of y holds the value it came from."""
        A = make(nonlinear_option, shape)
        x = probe(shape)
        values = A.pre_noise(x)
        torch.testing.assert_close(A(x), A.post_noise(values))
        if A.quantized:
            lower, upper = A.cell(A(x))
            assert bool(((lower <= values) & (values <= upper)).all())
            assert torch.equal(A.post_noise(A(x)), A(x))  # a cell's value lies in its own cell

    def test_shapes_counts_and_oversampling(self, nonlinear_option, shape):
        A = make(nonlinear_option, shape)
        assert A(probe(shape, count=4)).shape == (4, A.output_size) and not A.linear
        n = shape[0] * shape[1] * shape[2]
        big = build_operator(operator_cfg(nonlinear_option), shape, seed=SEED, m=8 * n)
        assert big.m == 8 * n and big(probe(shape)).shape == (3, 8 * n)
        with pytest.raises(CsgmError, match=r"m=.* is out of range"):
            build_operator(operator_cfg(nonlinear_option), shape, seed=SEED, m=8 * n + 1)

    def test_seeding(self, nonlinear_option, shape):
        x = probe(shape)
        torch.testing.assert_close(make(nonlinear_option, shape, seed=3)(x), make(nonlinear_option, shape, seed=3)(x))
        assert not torch.equal(make(nonlinear_option, shape, seed=3)(x), make(nonlinear_option, shape, seed=4)(x))

    def test_float32_and_float64_agree(self, nonlinear_option, shape):
        x = probe(shape)
        y64 = make(nonlinear_option, shape, dtype=torch.float64).pre_noise(x)
        y32 = make(nonlinear_option, shape, dtype=torch.float32).pre_noise(x.float())
        torch.testing.assert_close(y32.double(), y64, rtol=1e-4, atol=1e-4)

    def test_wrong_image_shape_is_a_clear_error(self, nonlinear_option, shape):
        with pytest.raises(CsgmError, match="was built for images of shape"):
            make(nonlinear_option, shape)(torch.zeros(1, shape[0], shape[1] + 4, shape[2]))

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    def test_cuda_matches_cpu(self, nonlinear_option, shape):
        A = make(nonlinear_option, shape, dtype=torch.float32)
        x = probe(shape, dtype=torch.float32)
        torch.testing.assert_close(A.to("cuda")(x.cuda()).cpu(), A(x), rtol=1e-4, atol=1e-4)


CROSS_PROCESS = """
import json, sys, torch
sys.path.insert(0, {root!r})
from tests.operators.test_contract import make, probe, SHAPES
print(json.dumps({{o: make(o, SHAPES[1])(probe(SHAPES[1])).tolist() for o in {options!r}}}))
"""


def test_operators_are_identical_across_processes():
    options = conf_options("operator")
    code = CROSS_PROCESS.format(root=str(ROOT), options=options)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    other = json.loads(result.stdout.strip().splitlines()[-1])
    for o in options:
        assert torch.equal(torch.tensor(other[o], dtype=torch.float64), make(o, SHAPES[1])(probe(SHAPES[1]))), o

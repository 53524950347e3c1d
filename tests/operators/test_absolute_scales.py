"""Absolute operator checks, not self-consistency: every random operator has the paper's Gaussian scale
(E ||A x||^2 = m ||x||^2, rows of squared norm n) on image sizes that are not powers of two; phase retrieval is
|A x| of its Gaussian A; dithered quantisers record the dithered values; Fourier, super-resolution and blur
give what numpy / scipy give on small hand-made images."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from scipy import ndimage, stats

from csgm.cli import plain
from csgm.measurement import MeasurementModel
from csgm.operators import Noise, build_operator
from csgm.operators.gaussian import gaussian_matrix
from tests.helpers import compose_config

# n = 65 and 147: just above a power of two (padded to 128 and 256), where an unpadded scale is far off
SHAPES = [(1, 5, 13), (3, 7, 7)]
RANDOM = ["gaussian", "srht", "random_convolution", "phase_retrieval", "quantize", "one_bit"]


@functools.cache
def config(option: str) -> dict:
    return plain(compose_config("recover", [f"operator={option}"]))["operator"]


def dense(operator) -> torch.Tensor:
    """The operator's (m, n) real matrix: its forward on the identity (phase retrieval and quantisers: the
    linear map inside them)."""
    if operator.name == "phase_retrieval":
        return operator.matrix.double()
    linear = operator.linear_part if operator.quantized else operator
    return linear.double().to_dense()


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("option", RANDOM)
def test_random_operators_have_the_gaussian_scale(option, shape, normalize):
    """trace(A^T A) = E_x ||A x||^2 / E_x ||x||^2 * n over isotropic x: m n for N(0, 1) rows (n with normalize).
    Structured operators meet it exactly, Gaussian ones within 5 standard deviations of the chi-square."""
    n = math.prod(shape)
    m = n // 2
    operator = build_operator({**config(option), "normalize": normalize}, shape, seed=3, m=m)
    expected = n * (1.0 if normalize else m)
    frobenius = float(dense(operator).pow(2).sum())
    tolerance = 5 * math.sqrt(2 / (m * n)) if option in ("gaussian", "phase_retrieval", "quantize", "one_bit") else 1e-5
    assert frobenius / expected == pytest.approx(1.0, abs=tolerance)
    gaussian = build_operator({"name": "gaussian", "normalize": normalize}, shape, seed=3, m=m)
    x = torch.randn(400, *shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ratio = (dense(operator) @ x.flatten(1).T).pow(2).sum() / (dense(gaussian) @ x.flatten(1).T).pow(2).sum()
    assert float(ratio) == pytest.approx(1.0, abs=0.15)  # E ||A x||^2 alike for the same m and x


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("option", ["srht", "random_convolution"])
def test_structured_rows_have_squared_norm_n(option, shape):
    """Each row of a structured operator has squared norm n, like a Gaussian row on average."""
    n = math.prod(shape)
    rows = dense(build_operator(config(option), shape, seed=1, m=n // 3)).pow(2).sum(1)
    torch.testing.assert_close(rows, torch.full_like(rows, float(n)), rtol=1e-5, atol=0)


@pytest.mark.parametrize("normalize", [False, True])
def test_phase_retrieval_is_the_magnitude_of_its_gaussian_measurements(normalize):
    shape, m = (1, 5, 13), 150
    n = math.prod(shape)
    operator = build_operator({**config("phase_retrieval"), "normalize": normalize}, shape, seed=4, m=m).double()
    matrix = gaussian_matrix(m, n, 4, normalize, key="phase_retrieval").double()
    assert stats.kstest((matrix * (math.sqrt(m) if normalize else 1.0)).flatten().numpy(), "norm").pvalue > 1e-3
    x = torch.rand(3, *shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.testing.assert_close(operator(x), (x.flatten(1) @ matrix.T).abs())
    torch.testing.assert_close(operator(-x), operator(x))  # the sign is lost


@pytest.mark.parametrize("option,overrides", [("quantize", {"bits": 3, "range": 12.0}), ("one_bit", {})])
def test_dithered_quantisers_record_the_dithered_values(option, overrides):
    """The nonlinear contract with dither > 0: y = Q(A x + tau) for the Gaussian operator's A, every cell holds its
    dithered value, and tau ~ U[-D, D] shifts the recorded values."""
    shape, m, dither = (3, 13, 13), 2000, 0.75 if option == "quantize" else 3.0
    operator = build_operator({**config(option), **overrides, "dither": dither}, shape, seed=6, m=m).double()
    matrix = gaussian_matrix(m, math.prod(shape), 6, False).double()  # the gaussian operator's A for (seed, m)
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    values = operator.pre_noise(x)
    tau = values - x.flatten(1) @ matrix.T
    assert float(tau.abs().max()) <= dither
    assert stats.kstest(tau[0].numpy(), "uniform", args=(-dither, 2 * dither)).pvalue > 1e-3
    torch.testing.assert_close(tau[0], tau[1])  # one tau per measurement, the same for every image
    y = MeasurementModel(operator, Noise("none")).measure(x, [0, 1])
    torch.testing.assert_close(operator(x), y)
    lower, upper = operator.cell(y)
    assert bool(((lower <= values) & (values <= upper)).all())
    undithered = operator.post_noise(x.flatten(1) @ matrix.T)
    assert float((y != undithered).double().mean()) > 0.02


def test_subtractive_dither_makes_the_quantisation_error_uniform():
    """With tau ~ U[-step/2, step/2] (half a cell), Q(v + tau) - tau - v is U[-step/2, step/2] whatever v: mean 0 and
    variance step^2 / 12 (without dither in y it would be step^2 / 6)."""
    shape, m = (3, 13, 13), 4000
    cfg = {**config("quantize"), "bits": 4, "range": 40.0, "dither": 2.5}
    operator = build_operator(cfg, shape, seed=8, m=m).double()
    x = 0.5 * torch.rand(1, *shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)  # |A x| < range
    error = operator.dequantized(MeasurementModel(operator).measure(x, [0])) - operator.linear_part(x)
    step = 5.0
    assert float(error.abs().max()) <= step / 2 + 1e-9
    assert float(error.mean()) == pytest.approx(0.0, abs=4 * step / math.sqrt(12 * m))
    assert float(error.var()) == pytest.approx(step**2 / 12, rel=0.1)


def test_fourier_of_hand_made_images():
    """A constant image has only its DC coefficient (c sqrt(HW)); any image's kept coefficients are numpy's
    orthonormal FFT at the mask's frequencies (real parts, then imaginary parts)."""
    shape = (1, 6, 10)
    full = build_operator({**config("fourier"), "mask": "uniform"}, shape, seed=0, m=60).double()
    constant = torch.full((1, *shape), 0.3, dtype=torch.float64)
    expected = torch.zeros(1, 120, dtype=torch.float64)
    expected[0, 0] = 0.3 * math.sqrt(60)
    torch.testing.assert_close(full(constant), expected)
    for option in ("fourier", "fourier_radial"):
        operator = build_operator(config(option), (2, 6, 10), seed=1, m=40).double()
        x = torch.rand(2, 2, 6, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        kept = operator.mask().flatten().bool().numpy()
        coefficients = np.fft.fft2(x.numpy(), norm="ortho").reshape(2, 2, -1)[..., kept]
        reference = np.concatenate([coefficients.real.reshape(2, -1), coefficients.imag.reshape(2, -1)], 1)
        np.testing.assert_allclose(operator(x).numpy(), reference, atol=1e-12)


def test_superres_of_hand_made_images():
    """Block averages by hand; the Gaussian mode is scipy's Gaussian filter (zero boundary) sampled every f pixels."""
    x = torch.arange(16, dtype=torch.float64).view(1, 1, 4, 4)
    average = build_operator({**config("superres"), "factor": 2}, (1, 4, 4)).double()
    torch.testing.assert_close(average(x), torch.tensor([[2.5, 4.5, 10.5, 12.5]], dtype=torch.float64))
    image = torch.rand(1, 1, 16, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gaussian = build_operator(config("superres_gaussian"), (1, 16, 12)).double()
    blurred = ndimage.gaussian_filter(image[0, 0].numpy(), sigma=2.0, mode="constant", truncate=3.0)
    np.testing.assert_allclose(gaussian(image).numpy()[0], blurred[::4, ::4].flatten(), atol=1e-12)


def test_blur_of_hand_made_images():
    """A unit impulse blurs into the normalised Gaussian kernel (the point spread function, by hand); any image
    blurs as scipy's Gaussian filter with a zero boundary."""
    operator = build_operator(config("blur"), (1, 13, 13)).double()
    impulse = torch.zeros(1, 1, 13, 13, dtype=torch.float64)
    impulse[0, 0, 6, 6] = 1.0
    t = np.arange(-5, 6)
    kernel = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * 1.5**2))
    psf = np.zeros((13, 13))
    psf[1:12, 1:12] = kernel / kernel.sum()
    np.testing.assert_allclose(operator(impulse).numpy()[0], psf.flatten(), atol=1e-12)
    image = torch.rand(1, 2, 9, 11, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    operator = build_operator(config("blur"), (2, 9, 11)).double()
    reference = np.stack(
        [ndimage.gaussian_filter(channel, sigma=1.5, mode="constant", truncate=3.0) for channel in image[0].numpy()]
    )
    np.testing.assert_allclose(operator(image).numpy()[0], reference.flatten(), atol=1e-12)

"""Sparsifying bases: perfect reconstruction, orthonormality, references (scipy.fft, PyWavelets), bad input."""

from __future__ import annotations

import numpy as np
import pytest
import pywt
import scipy.fft
import torch

from csgm.cli import plain
from csgm.errors import CsgmError
from csgm.solvers.sparsity_bases import build_basis
from tests.helpers import compose_config, conf_options


def basis_configs() -> list[tuple[str, dict]]:
    """(solver option, basis kwargs) for every solver config that uses a basis."""
    found = []
    for option in conf_options("solver"):
        cfg = plain(compose_config("recover", [f"solver={option}"]))["solver"]
        if "basis" in cfg:
            extra = {"wavelet": cfg["wavelet"], "levels": cfg["levels"]} if cfg["basis"] == "wavelet" else {}
            found.append((option, {"name": cfg["basis"], **extra}))
    return found


@pytest.mark.parametrize("option,spec", basis_configs(), ids=[o for o, _ in basis_configs()])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64)])
def test_every_basis_config_is_orthonormal(option, spec, shape):
    spec = dict(spec)
    basis = build_basis(spec.pop("name"), shape, **spec)
    x = torch.rand(4, *shape, dtype=torch.float64)
    c = basis.analysis(x)
    assert c.shape == (4, basis.n)
    torch.testing.assert_close(basis.synthesis(c), x, rtol=0, atol=1e-6)  # perfect reconstruction
    torch.testing.assert_close(c.norm(dim=1), x.flatten(1).norm(dim=1), rtol=1e-6, atol=0)  # energy preserved
    u = torch.randn(4, basis.n, dtype=torch.float64)
    assert abs(float((c * u).sum() - (x * basis.synthesis(u)).sum())) < 1e-8  # synthesis is the adjoint
    x32 = x.float()
    assert float((basis.synthesis(basis.analysis(x32)) - x32).abs().max()) < 1e-5


def test_dct_matches_scipy():
    x = torch.rand(2, 3, 28, 20, dtype=torch.float64)
    ours = build_basis("dct", (3, 28, 20)).analysis(x).view(2, 3, 28, 20).numpy()
    np.testing.assert_allclose(ours, scipy.fft.dctn(x.numpy(), axes=(2, 3), norm="ortho"), atol=1e-12)


@pytest.mark.parametrize(
    "wavelet,levels,shape",
    [("haar", 3, (32, 32)), ("db4", 2, (28, 28)), ("db2", 3, (64, 48)), ("sym4", 2, (32, 32)), ("coif1", 1, (16, 16))],
)
def test_wavelets_match_pywavelets(wavelet, levels, shape):
    x = torch.rand(1, 2, *shape, dtype=torch.float64)
    ours = build_basis("wavelet", (2, *shape), wavelet=wavelet, levels=levels).analysis(x).view(2, *shape)
    for channel in range(2):
        coeffs = pywt.wavedec2(x[0, channel].numpy(), wavelet, level=levels, mode="periodization")
        reference, _ = pywt.coeffs_to_array(coeffs)
        np.testing.assert_allclose(ours[channel].numpy(), reference, atol=1e-12)


def test_daubechies_is_sparse_on_smooth_images():
    ramp = torch.linspace(0, 1, 32, dtype=torch.float64)
    x = (ramp[:, None] * ramp[None, :]).view(1, 1, 32, 32)

    def top64(c):
        return float(c.pow(2).sort(descending=True).values[0, :64].sum() / c.pow(2).sum())

    wavelet = top64(build_basis("wavelet", (1, 32, 32), wavelet="db4", levels=2).analysis(x))
    pixel = top64(build_basis("pixel", (1, 32, 32)).analysis(x))
    assert wavelet > 0.95 and pixel < 0.4  # 64 of 1024 coefficients hold the energy in wavelets, not in pixels


@pytest.mark.parametrize(
    "shape,options,match",
    [
        ((1, 28, 28), {"wavelet": "db4", "levels": 3}, r"levels=3 is too deep for 28x28 images .* use levels <= 2"),
        ((1, 27, 27), {"wavelet": "haar", "levels": 1}, r"use levels <= 0 or resize the images"),
        ((1, 16, 16), {"wavelet": "bior2.2", "levels": 1}, r"wavelet='bior2.2' is not an orthogonal discrete wavelet"),
        ((1, 16, 16), {"wavelet": "db2", "levels": 0}, r"levels=0 must be an integer >= 1"),
        ((1, 12, 12), {"wavelet": "db2", "levels": 3}, r"levels=3 is too deep for 12x12 images .* use levels <= 2"),
    ],
)
def test_bases_that_do_not_fit(shape, options, match):
    with pytest.raises(CsgmError, match=match):
        build_basis("wavelet", shape, **options)


def test_unknown_basis():
    with pytest.raises(CsgmError, match="unknown basis 'curvelet'; choose one of: dct, pixel, wavelet"):
        build_basis("curvelet", (1, 8, 8))

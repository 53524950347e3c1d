"""Known answers of individual operators, matrix-free memory, and bad input."""

from __future__ import annotations

import resource

import pytest
import torch

from csgm.errors import CsgmError
from csgm.operators import build_operator
from csgm.operators.fourier import MASKS


def test_fourier_full_mask_is_an_isometry():
    A = build_operator({"name": "fourier", "mask": "uniform"}, (2, 8, 8), m=1.0).double()
    x = torch.rand(3, 2, 8, 8, dtype=torch.float64)
    torch.testing.assert_close(A(x).norm(dim=1), x.flatten(1).norm(dim=1))
    torch.testing.assert_close(A.adjoint(A(x)), x)


@pytest.mark.parametrize("mask", MASKS)
def test_fourier_masks_keep_exactly_m(mask):
    A = build_operator({"name": "fourier", "mask": mask}, (1, 32, 32), seed=2, m=300)
    assert A.m == 300 and int(A.mask().sum()) == 300


def test_variable_density_keeps_the_centre():
    A = build_operator({"name": "fourier", "mask": "variable_density", "center_fraction": 0.05}, (1, 32, 32), m=200)
    assert A.mask()[0, 0] == 1  # DC
    low = A.mask()[:4, :4].mean() + A.mask()[-4:, -4:].mean()
    high = A.mask()[12:20, 12:20].mean()
    assert low > high


def test_block_average_of_a_constant_is_the_constant():
    A = build_operator({"name": "superres", "factor": 4}, (3, 28, 28))
    y = A(torch.full((2, 3, 28, 28), 0.37))
    assert A.m == 3 * 7 * 7
    torch.testing.assert_close(y, torch.full_like(y, 0.37))


def test_inpaint_keeps_the_configured_fraction():
    A = build_operator({"name": "inpaint", "mode": "random"}, (3, 64, 64), seed=1, m=0.3)
    assert abs(float(A.mask().mean()) - 0.3) < 0.01
    assert A.m == 3 * int(A.mask().sum())


def test_inpaint_hole_is_exact():
    A = build_operator({"name": "inpaint", "mode": "hole", "hole_size": 10, "hole_position": [3, 5]}, (1, 28, 28))
    mask = A.mask()
    assert mask[3:13, 5:15].sum() == 0 and mask.sum() == 28 * 28 - 100
    centred = build_operator({"name": "inpaint", "mode": "hole", "hole_size": 8}, (1, 28, 28)).mask()
    assert centred[10:18, 10:18].sum() == 0


def test_identity_and_gaussian_normalisation():
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(build_operator({"name": "identity"}, (1, 8, 8))(x), x.flatten(1))
    plain = build_operator({"name": "gaussian"}, (1, 8, 8), seed=0, m=40)
    scaled = build_operator({"name": "gaussian", "normalize": True}, (1, 8, 8), seed=0, m=40)
    torch.testing.assert_close(scaled.matrix * 40**0.5, plain.matrix)


def test_gaussian_entries_are_standard_normal():
    A = build_operator({"name": "gaussian"}, (1, 28, 28), seed=0, m=500).matrix
    assert abs(float(A.mean())) < 0.01 and abs(float(A.std()) - 1.0) < 0.01


def test_gaussian_accepts_a_fraction_of_n():
    assert build_operator({"name": "gaussian"}, (1, 10, 10), m=0.25).m == 25


def test_matrix_free_operators_never_build_a_matrix():
    shape, n = (3, 256, 256), 3 * 256 * 256
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    x = torch.rand(2, *shape)
    for cfg, m in [
        ({"name": "fourier"}, 0.25),
        ({"name": "fourier", "mask": "radial"}, 0.1),
        ({"name": "superres", "factor": 4}, None),
        ({"name": "superres", "factor": 4, "mode": "gaussian"}, None),
        ({"name": "inpaint"}, 0.5),
        ({"name": "inpaint", "mode": "hole", "hole_size": 64}, None),
        ({"name": "blur"}, None),
        ({"name": "identity"}, None),
    ]:
        A = build_operator(cfg, shape, m=m)
        assert sum(b.numel() for b in A.buffers()) <= n, cfg
        assert A.adjoint(A(x)).shape == x.shape
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 1024  # a dense m x n matrix here would need > 75 GiB


@pytest.mark.parametrize(
    "cfg,m,match",
    [
        ({"name": "gaussian"}, 0, r"m=0 is out of range; it must be in \[1, 64\]"),
        ({"name": "gaussian"}, -3, r"m=-3 is out of range"),
        ({"name": "gaussian"}, 65, r"m=65 is out of range; it must be in \[1, 64\]"),
        ({"name": "gaussian"}, 1.5, r"m=1.5 is not a fraction in \(0, 1\]"),
        ({"name": "gaussian"}, 0.0, r"m=0.0 is not a fraction"),
        ({"name": "fourier"}, 100, r"m=100 is out of range"),
        ({"name": "inpaint"}, -0.2, r"m=-0.2 is not a fraction"),
        (
            {"name": "superres", "factor": 3},
            None,
            r"factor=3 must be a positive integer that divides the image size 8x8",
        ),
        ({"name": "inpaint", "mode": "hole", "hole_size": 9}, None, r"hole_size=9 must be an integer in \[1, 7\]"),
        ({"name": "blur", "sigma": -1.0}, None, r"sigma=-1.0 must be > 0"),
        ({"name": "fourier", "mask": "spiral"}, 10, r"unknown fourier mask 'spiral'; choose one of"),
        (
            {"name": "radon"},
            None,
            r"unknown operator 'radon'; choose one of: blur, fourier, gaussian, identity, inpaint, one_bit, phase_retrieval, quantize, random_convolution, srht, superres",
        ),
    ],
)
def test_bad_operator_input(cfg, m, match):
    with pytest.raises(CsgmError, match=match):
        build_operator(cfg, (1, 8, 8), m=m)


def test_channel_multiple_is_named():
    with pytest.raises(CsgmError, match="m=100 is not a multiple of the 3 image channels; use 99 or 102"):
        build_operator({"name": "fourier"}, (3, 8, 8), m=100)

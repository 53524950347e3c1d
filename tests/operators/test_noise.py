"""Noise is seeded per (seed, operator, m, image id): independent of batch, reproducible, right law."""

from __future__ import annotations

import pytest
import torch

from csgm.errors import CsgmError
from csgm.operators import Noise, build_noise


def test_noise_does_not_depend_on_the_batch():
    noise = Noise("gaussian", 0.1)
    y = torch.zeros(6, 50)
    together = noise(y, [10, 11, 12, 13, 14, 15], key=(0, "gaussian", 50))
    apart = torch.cat(
        [noise(y[:2], [10, 11], key=(0, "gaussian", 50)), noise(y[2:], [12, 13, 14, 15], key=(0, "gaussian", 50))]
    )
    torch.testing.assert_close(together, apart)
    other_seed = noise(y, [10, 11, 12, 13, 14, 15], key=(1, "gaussian", 50))
    assert not torch.equal(together, other_seed)


def test_gaussian_noise_has_the_configured_std():
    sample = Noise("gaussian", 0.1).sample(20000, [0], key=(0, "gaussian", 1))
    assert float(sample.std()) == pytest.approx(0.1, rel=0.03)
    assert abs(float(sample.mean())) < 0.003


def test_student_t_is_heavy_tailed():
    t = Noise("student_t", 0.1, df=2.5).sample(50000, [0], key=(0, "x", 1))
    g = Noise("gaussian", 0.1).sample(50000, [0], key=(0, "x", 1))
    kurtosis = lambda v: float(((v - v.mean()) ** 4).mean() / v.var() ** 2)  # noqa: E731
    assert kurtosis(t) > 2 * kurtosis(g)


def test_none_and_zero_std_leave_y_unchanged():
    y = torch.rand(3, 7)
    assert torch.equal(Noise("none")(y, [0, 1, 2], key=(0, "g", 7)), y)
    assert torch.equal(Noise("gaussian", 0.0)(y, [0, 1, 2], key=(0, "g", 7)), y)


@pytest.mark.parametrize(
    "cfg,match",
    [
        ({"name": "gaussian", "std": -1.0}, "noise.std=-1.0 must be >= 0"),
        ({"name": "student_t", "df": 0.0}, "noise.df=0.0 must be > 0"),
        ({"name": "laplace"}, "unknown noise 'laplace'"),
        ({"name": "gaussian", "sigma": 0.1}, r"unknown key noise.sigma \(value 0.1\); accepted keys: std"),
    ],
)
def test_bad_noise_config(cfg, match):
    with pytest.raises(CsgmError, match=match):
        build_noise(cfg)

"""SBC rank tests against known answers: exact posterior draws of a linear-Gaussian model (ranks uniform by
construction, but dependent across one image's coordinates) and draws with a wrong spread."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import chi2

from csgm.evaluation.rank_tests import clustered_rank_uniformity, rank_uniformity

DRAWS, BINS, IMAGES, K = 40, 10, 100, 20


def gaussian_ranks(generator: torch.Generator, jacobian: torch.Tensor, spread: float = 1.0) -> torch.Tensor:
    """Ranks (IMAGES, K) of z* ~ N(0, I) among DRAWS draws of p(z | y), y = J z* + N(0, I), with the posterior's
    covariance scaled by spread^2 (1: exact draws)."""
    precision = jacobian.T @ jacobian + torch.eye(K, dtype=torch.float64)
    covariance = torch.linalg.inv(precision)
    z = torch.randn(IMAGES, K, generator=generator, dtype=torch.float64)
    y = z @ jacobian.T + torch.randn(IMAGES, len(jacobian), generator=generator, dtype=torch.float64)
    mean = y @ jacobian @ covariance
    noise = torch.randn(IMAGES, DRAWS, K, generator=generator, dtype=torch.float64)
    draws = mean[:, None] + spread * noise @ torch.linalg.cholesky(covariance).T
    return (draws < z[:, None]).sum(1)


@pytest.fixture(scope="module")
def correlated_jacobian() -> torch.Tensor:
    """A 25 x 20 Jacobian with singular values from 10 to 10^4 in a random basis: a strongly correlated posterior."""
    g = torch.Generator().manual_seed(1)
    left = torch.linalg.qr(torch.randn(25, K, generator=g, dtype=torch.float64))[0]
    right = torch.linalg.qr(torch.randn(K, K, generator=g, dtype=torch.float64))[0]
    return left @ torch.diag(10 * torch.logspace(0, 3, K, dtype=torch.float64)) @ right


def test_rank_uniformity_is_pearsons_chi_square_over_bins_of_equal_rank_counts():
    ranks = torch.tensor([0, 0, 1, 2, 3, 4, 4, 4])  # 5 rank values in 2 bins: {0, 1} and {2, 3, 4}
    result = rank_uniformity(ranks, 4, 2)
    assert result["histogram"] == [3, 5] and result["expected"] == [3.2, 4.8]
    statistic = 0.2**2 / 3.2 + 0.2**2 / 4.8
    assert result["chi_square"] == round(statistic, 2)
    assert result["p_value"] == pytest.approx(chi2.sf(statistic, 1))


def test_by_image_test_holds_its_size_where_the_pooled_chi_square_does_not(correlated_jacobian):
    """Exact draws, 200 seeded SBC runs of 100 images x 20 coordinates: the by-image test rejects at the 5% level
    in about 5% of runs; the pooled chi-square, treating an image's 20 dependent ranks as independent, far more."""
    g = torch.Generator().manual_seed(0)
    clustered, pooled = [], []
    for _ in range(200):
        ranks = gaussian_ranks(g, correlated_jacobian)
        clustered.append(clustered_rank_uniformity(ranks, DRAWS, BINS)["p_value"] < 0.05)
        pooled.append(rank_uniformity(ranks, DRAWS, BINS)["p_value"] < 0.05)
    assert 0.01 <= sum(clustered) / 200 <= 0.09
    assert sum(pooled) / 200 >= 0.15


@pytest.mark.parametrize("spread", [0.7, 1.4])
def test_by_image_test_rejects_draws_with_the_wrong_spread(correlated_jacobian, spread):
    """Draws 30% too narrow or 40% too wide: rejected at the 1% level in at least 9 of 10 SBC runs."""
    g = torch.Generator().manual_seed(2)
    rejected = [
        clustered_rank_uniformity(gaussian_ranks(g, correlated_jacobian, spread), DRAWS, BINS)["p_value"] < 0.01
        for _ in range(10)
    ]
    assert sum(rejected) >= 9


def test_by_image_test_needs_more_images_than_bins():
    with pytest.raises(ValueError, match="needs more images than 9, got 5"):
        clustered_rank_uniformity(torch.zeros(5, 20, dtype=torch.long), DRAWS, BINS)

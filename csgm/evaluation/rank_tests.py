"""Uniformity tests of simulation-based calibration ranks (Talts et al. 2018).

``rank_uniformity`` is Pearson's chi-square over rank bins: right when every rank is independent (one coordinate
over independent images). ``clustered_rank_uniformity`` pools several ranks per image (all latent coordinates,
several pixel functionals), whose ranks are dependent through the posterior's correlations: it treats each image's
bin counts as one observation and tests their mean with Hotelling's T^2, so the dependence within an image does
not inflate the statistic the way pooling into one chi-square does.
"""

from __future__ import annotations

import math

import torch

__all__ = ["clustered_rank_uniformity", "rank_uniformity"]


def _bins(count: int, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The bin of every rank value 0..count (``bins`` bins of nearly equal width) and each bin's probability."""
    edges = torch.linspace(0, count + 1, bins + 1).double()
    bin_of = torch.bucketize(torch.arange(count + 1).double() + 0.5, edges, right=True) - 1
    return bin_of, torch.bincount(bin_of, minlength=bins).double() / (count + 1)


def rank_uniformity(ranks: torch.Tensor, count: int, bins: int) -> dict:
    """Histogram of ranks in {0..count} over ``bins`` bins and Pearson's chi-square test of uniformity (each bin's
    expected count from the number of rank values it holds), treating every rank as independent."""
    bin_of, probability = _bins(count, bins)
    histogram = torch.bincount(bin_of[ranks.flatten().long()], minlength=bins).double()
    expected_counts = ranks.numel() * probability
    statistic = float(((histogram - expected_counts) ** 2 / expected_counts).sum())
    p_value = float(torch.special.gammaincc(torch.tensor((bins - 1) / 2), torch.tensor(statistic / 2)))
    return {
        "histogram": histogram.long().tolist(),
        "expected": [round(float(v), 2) for v in expected_counts],
        "chi_square": round(statistic, 2),
        "degrees_of_freedom": bins - 1,
        "p_value": p_value,
    }


def clustered_rank_uniformity(ranks: torch.Tensor, count: int, bins: int) -> dict:
    """Uniformity of ranks (images, per_image) in {0..count}, dependent within an image, independent across images:
    Hotelling's T^2 test that the mean over images of each image's bin counts (less their expectation; the last bin
    dropped, as the counts sum to ``per_image``) is zero, with its F(q, N - q) p-value (q = bins - 1). Needs more
    images than bins; NaN p-value when an image's counts do not vary (a degenerate covariance)."""
    images, per_image = ranks.shape
    bin_of, probability = _bins(count, bins)
    counts = torch.nn.functional.one_hot(bin_of[ranks.long()], bins).sum(1).double()  # (images, bins)
    excess = (counts - per_image * probability)[:, :-1]
    q = bins - 1
    if images <= q:
        raise ValueError(f"clustered_rank_uniformity needs more images than {q}, got {images}")
    mean, covariance = excess.mean(0), torch.cov(excess.T).reshape(q, q)
    try:
        t_squared = images * float(mean @ torch.linalg.solve(covariance, mean))
    except torch.linalg.LinAlgError:
        t_squared = math.nan
    statistic = t_squared * (images - q) / (q * (images - 1))
    from scipy.stats import f as f_distribution  # scipy comes with arviz

    p_value = float(f_distribution.sf(statistic, q, images - q))
    return {
        "histogram": counts.sum(0).long().tolist(),
        "hotelling_t2": round(t_squared, 2),
        "degrees_of_freedom": [q, images - q],
        "p_value": p_value,
    }

"""The headline metrics against independent oracles: hand-computed values and scikit-image, per image,
on [0, 1] images of odd sizes with 1 and 3 channels; and results.csv against a recomputation."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from csgm.metrics import image_metrics, mean_ci95, per_pixel_error, psnr, ssim

skimage_metrics = pytest.importorskip("skimage.metrics")

SHAPES = [(1, 13, 17), (3, 21, 15), (1, 28, 28), (3, 11, 11)]


def pair(shape, seed=0, noise=0.1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(4, *shape, generator=g, dtype=torch.float64)
    x_hat = (x + noise * torch.randn(4, *shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return x_hat, x


def test_per_pixel_error_and_psnr_by_hand():
    x = torch.zeros(2, 1, 3, 5, dtype=torch.float64)
    x_hat = x.clone()
    x_hat[0, 0, 0, 0] = 0.5  # one pixel off by 0.5: 0.25 / 15
    x_hat[1] = 0.1  # every pixel off by 0.1: 0.01
    assert per_pixel_error(x_hat, x).tolist() == pytest.approx([0.25 / 15, 0.01], abs=1e-15)
    assert psnr(x_hat, x).tolist() == pytest.approx([10 * math.log10(15 / 0.25), 20.0], abs=1e-12)
    assert math.isinf(float(psnr(x, x)[0]))


@pytest.mark.parametrize("shape", SHAPES)
def test_metrics_match_scikit_image_per_image(shape):
    x_hat, x = pair(shape, seed=sum(shape))
    ours = image_metrics(x_hat, x)
    for i in range(len(x)):
        a, b = x_hat[i].permute(1, 2, 0).numpy(), x[i].permute(1, 2, 0).numpy()
        assert float(ours["mse"][i]) == pytest.approx(float(np.mean((a - b) ** 2)), rel=1e-12)
        assert float(ours["psnr"][i]) == pytest.approx(
            skimage_metrics.peak_signal_noise_ratio(b, a, data_range=1.0), abs=1e-9
        )
        reference = skimage_metrics.structural_similarity(
            a, b, data_range=1.0, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        assert float(ours["ssim"][i]) == pytest.approx(reference, abs=1e-9)


def test_ssim_by_hand_for_constant_images():
    """Constant images: SSIM = (2 a b + C1) / (a^2 + b^2 + C1) with C1 = (0.01)^2 (no variance term)."""
    a, b = 0.3, 0.6
    x, x_hat = torch.full((1, 1, 15, 15), a, dtype=torch.float64), torch.full((1, 1, 15, 15), b, dtype=torch.float64)
    c1 = 0.01**2
    assert float(ssim(x_hat, x)[0]) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-9)
    assert float(ssim(x, x)[0]) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 7, 9), (1, 10, 6), (1, 28, 28)])
def test_ssim_matches_torchmetrics_full_map_on_small_and_mnist_images(shape):
    """Under 11 px no window fits: the map of torchmetrics (window reflected at the border) averaged over the
    positions (k - 1) / 2 px from the border, k the largest odd side that fits; at 28 px the valid positions."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    x_hat, x = pair(shape, seed=7)
    side = min(11, *shape[1:])
    kernel = side if side % 2 else side - 1
    _, full = structural_similarity_index_measure(
        x_hat, x, data_range=1.0, reduction="none", kernel_size=kernel, return_full_image=True
    )
    margin = (kernel - 1) // 2
    reference = full[..., margin:-margin, margin:-margin].flatten(1).mean(1)
    assert ssim(x_hat, x).tolist() == pytest.approx(reference.tolist(), abs=1e-13)


def test_mean_and_interval_by_hand():
    mean, half = mean_ci95([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5 and half == pytest.approx(1.96 * math.sqrt(5 / 3) / 2)


def test_results_csv_holds_the_metrics_of_the_stored_estimates(vae_checkpoint, tmp_path):
    """Each row's mse, PSNR and SSIM equal scikit-image's on the stored x_hat and the original image."""
    from csgm.data import load_splits
    from csgm.recovery.run import recover
    from tests.helpers import TINY_RECOVER, compose_config

    cfg = compose_config(
        "recover",
        [
            *TINY_RECOVER,
            f"checkpoint={vae_checkpoint}",
            f"paths.output_root={tmp_path}",
            "measurements=[30]",
            "num_images=3",
        ],
    )
    recover(cfg, tmp_path / "run")
    merged = torch.load(tmp_path / "run" / "reconstructions.pt", weights_only=True)
    estimates = {tuple(k): v for k, v in zip(merged["keys"].tolist(), merged["x_hat"])}
    test = load_splits({"name": "mnist10k", "val_size": 1000, "test_size": 1000, "split_seed": 0})["test"]
    with open(tmp_path / "run" / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    for row in rows:
        a = estimates[(30, int(row["image_id"]))][0].double().numpy()
        b = test[int(row["image_id"])][0][0].double().numpy()
        assert float(row["mse"]) == pytest.approx(float(np.mean((a - b) ** 2)), rel=1e-6)
        assert float(row["psnr"]) == pytest.approx(
            skimage_metrics.peak_signal_noise_ratio(b, a, data_range=1.0), abs=1e-4
        )
        assert float(row["ssim"]) == pytest.approx(
            skimage_metrics.structural_similarity(
                a, b, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
            ),
            abs=1e-6,
        )


def test_std_error_correlation():
    from csgm.metrics import std_error_correlation

    x = torch.zeros(2, 1, 2, 2)
    x_hat = torch.tensor([[[[0.1, 0.2], [0.3, 0.4]]], [[[0.4, 0.3], [0.2, 0.1]]]])
    std = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]).expand(2, 1, 2, 2)
    torch.testing.assert_close(std_error_correlation(std, x_hat, x), torch.tensor([1.0, -1.0], dtype=torch.float64))

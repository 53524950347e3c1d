"""Figures a person reads: bands on a log axis stay above zero, grey images are saved grey."""

from __future__ import annotations

import io
import math

import torch
from PIL import Image

from csgm.reporting.plots import band, image_png


def test_linear_band_is_mean_plus_minus_half_width():
    assert band([1.0, 2.0], [0.5, 3.0], log_axis=False) == ([0.5, -1.0], [1.5, 5.0])


def test_log_band_is_the_delta_method_interval_of_the_log_mean_and_stays_positive():
    low, high = band([0.01, 2.0], [0.02, 0.1], log_axis=True)  # the first half-width exceeds its mean
    assert all(v > 0 for v in low)
    assert math.isclose(math.log(high[0] / 0.01), math.log(0.01 / low[0]))  # symmetric in log space
    assert math.isclose(math.log(high[1] / 2.0), 0.1 / 2.0)  # half-width of log(mean) = se / mean


def test_grey_image_is_a_one_channel_png_with_torchvision_rounding():
    image = torch.tensor([[[0.0, 0.5], [0.25, 1.0]]])
    png = Image.open(io.BytesIO(image_png(image)))
    assert png.mode == "L"
    assert list(png.getdata()) == [0, 128, 64, 255]  # round(255 x + 0.5) as torchvision's save_image


def test_colour_image_stays_rgb():
    png = Image.open(io.BytesIO(image_png(torch.rand(3, 4, 5))))
    assert png.mode == "RGB" and png.size == (5, 4)

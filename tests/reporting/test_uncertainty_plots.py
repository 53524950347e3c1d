"""A sampler's figures: the posterior grid with a colour bar on its std rows, and the reliability diagram."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from csgm.reporting.plots import image_rows_png, posterior_grid_png, reliability_diagram_png

ROWS = [
    torch.zeros(4, 1, 28, 28),
    torch.full((4, 1, 28, 28), 0.5),
    torch.linspace(0, 0.08, 784).view(1, 1, 28, 28).repeat(4, 1, 1, 1),
]
LABELS = ["original", "m = 25: mean", "std"]


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def coloured(array: np.ndarray) -> int:
    """How many pixels are not grey (R, G, B differ)."""
    return int(((array.max(2) - array.min(2)) > 30).sum())


def test_std_rows_are_drawn_in_colour_with_a_colour_bar():
    """The std row gets a colour map and a bar beside the grid (a wider figure); grey rows stay grey."""
    grid = pixels(posterior_grid_png(ROWS, LABELS, std_rows=[2], title="hmc"))
    plain = pixels(image_rows_png(ROWS, LABELS, "hmc"))
    assert coloured(plain) == 0 and coloured(grid) > 4 * 56 * 56 // 2
    assert grid.shape[1] > plain.shape[1] + 30  # the colour bar and its ticks
    assert coloured(pixels(posterior_grid_png(ROWS, LABELS, std_rows=[]))) == 0


def test_posterior_grid_refuses_a_std_row_it_does_not_have():
    with pytest.raises(ValueError, match=r"std_rows \[3\] must index the 3 rows"):
        posterior_grid_png(ROWS, LABELS, std_rows=[3])


def test_reliability_diagram_draws_each_method():
    calibrated = {"conformal": [(0.5, 0.5), (0.8, 0.8), (0.9, 0.9), (0.95, 0.95)]}
    overconfident = {**calibrated, "raw": [(0.5, 0.1), (0.8, 0.15), (0.9, 0.2), (0.95, 0.25)]}
    one, two = pixels(reliability_diagram_png(calibrated)), pixels(reliability_diagram_png(overconfident))
    assert one.shape == two.shape and one.shape[0] > 300
    assert coloured(two) > coloured(one)  # the second curve adds coloured pixels

"""The measurement model: an operator A and a noise model with the seeds that make y reproducible.

``MeasurementModel(A, noise, seed).measure(x, image_ids)`` gives y = A x + noise, the noise of each image
drawn from (seed, operator, m, image id[, split]) on the CPU, so y never depends on the batch, the rank
or the device, and every solver sees the same y. The seed key is built here and nowhere else.
"""

from __future__ import annotations

from typing import Sequence

import torch

from csgm.operators import Noise, Operator

__all__ = ["MeasurementModel"]


class MeasurementModel:
    """y = A x + noise for images with stable ids; ``split`` keeps validation noise apart from test noise."""

    def __init__(self, operator: Operator, noise: Noise, seed: int = 0, split: str = "test") -> None:
        self.operator, self.noise, self.seed, self.split = operator, noise, int(seed), split

    @property
    def noise_key(self) -> tuple:
        """The key every image's noise seed derives from (with the image id)."""
        key = (self.seed, self.operator.name, self.operator.m)
        return key if self.split == "test" else (*key, self.split)

    def measure(self, x: torch.Tensor, image_ids: Sequence[int]) -> torch.Tensor:
        """y (B, output_size) for images x (B, C, H, W) with ids ``image_ids``."""
        with torch.no_grad():
            return self.noise(self.operator(x), list(image_ids), key=self.noise_key)

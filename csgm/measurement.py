"""The measurement model (deepinv's "physics"): an operator A, a noise model and the seeds that make y reproducible.

``MeasurementModel(A, noise, seed).measure(x, image_ids)`` gives y: noise is added to ``A.pre_noise(x)`` (A x,
or A x + dither before a quantiser) and the instrument records ``A.post_noise`` of that. Each image's noise
is drawn from (seed, operator, m, image id[, split]) on the CPU, so y never depends on the batch, the rank
or the device; the seed key is built here and nowhere else. ``data_term`` is what generative solvers
minimise: 2 sigma^2 times the negative log-likelihood of y (csgm.operators.noise), which for Gaussian
noise is the paper's ||A x - y||^2.
"""

from __future__ import annotations

from typing import Sequence

import torch

from csgm.errors import CsgmError
from csgm.operators import Noise, Operator
from csgm.operators.noise import interval_data_term

__all__ = ["MeasurementModel", "as_measurement"]


class MeasurementModel:
    """y = post_noise(A x + noise) for images with stable ids; ``split`` keeps validation noise apart from test noise."""

    def __init__(self, operator: Operator, noise: Noise | None = None, seed: int = 0, split: str = "test") -> None:
        noise = noise if noise is not None else Noise("none")
        if operator.quantized and noise.kind not in ("none", "gaussian"):
            raise CsgmError(f"operator {operator.name!r} quantises after the noise; its likelihood is defined for "
                            f"noise=gaussian or noise=none, not noise={noise.kind}")
        if noise.kind == "poisson" and not operator.nonnegative:
            raise CsgmError(f"poisson noise needs measurements A x >= 0 but operator {operator.name!r} gives signed values; "
                            "use identity, inpaint, blur, superres or phase_retrieval, or noise=gaussian")
        self.operator, self.noise, self.seed, self.split = operator, noise, int(seed), split

    @property
    def noise_key(self) -> tuple:
        """The key every image's noise seed derives from (with the image id)."""
        key = (self.seed, self.operator.name, self.operator.m)
        return key if self.split == "test" else (*key, self.split)

    def measure(self, x: torch.Tensor, image_ids: Sequence[int]) -> torch.Tensor:
        """y (B, output_size) for images x (B, C, H, W) with ids ``image_ids``."""
        with torch.no_grad():
            noisy = self.noise(self.operator.pre_noise(x), list(image_ids), key=self.noise_key)
            return self.operator.post_noise(noisy)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The noise-free values the likelihood of y is a function of (``A.pre_noise(x)``), differentiable in x."""
        return self.operator.pre_noise(x)

    def data_term(self, prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample 2 sigma^2 * NLL(y | prediction) + const (>= 0): ||prediction - y||^2 for Gaussian noise,
        the interval (probit) likelihood of y's quantiser cells for quantised operators. Signs without dither
        measure only the direction of A x, so neither its norm nor sigma relative to it can be fitted: their
        term is the squared distance to the cells (BIHT's objective, the sigma -> 0 limit) at ||prediction||^2
        = m, else a vanishing image would fit every sign (and with noise, the brightest image would)."""
        if self.operator.quantized:
            if self.operator.scale_invariant:  # only the direction is measured: fix the scale
                prediction = prediction * (prediction.shape[1] ** 0.5 / prediction.norm(dim=1, keepdim=True).clamp_min(1e-12))
                return interval_data_term(prediction, *self.operator.cell(y), 0.0)
            return interval_data_term(prediction, *self.operator.cell(y), self.noise.level)
        return self.noise.data_term(prediction, y)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The data term of images x (B, C, H, W) against y: the measurement loss results report."""
        return self.data_term(self.predict(x), y)


def as_measurement(model: MeasurementModel | Operator) -> MeasurementModel:
    """A measurement model as given, or an operator's noise-free one (the data term ||A x - y||^2)."""
    return model if isinstance(model, MeasurementModel) else MeasurementModel(model)

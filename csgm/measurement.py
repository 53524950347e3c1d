"""The measurement model (deepinv's "physics"): an operator A, a noise model and the seeds that make y reproducible.

``MeasurementModel(A, noise, seed).measure(x, image_ids)`` gives y: noise is added to ``A.pre_noise(x)`` (A x,
or A x + dither before a quantiser) and the instrument records ``A.post_noise`` of that. Each image's noise
is drawn from (seed, operator, m, image id[, split]) on the CPU, so y never depends on the batch, the rank
or the device; the seed key is built here and nowhere else. ``data_term`` is what generative solvers
minimise: 2 sigma^2 times the negative log-likelihood of y, owned by the noise model (csgm.operators.noise) or,
for quantised operators, by csgm.operators.likelihood; for Gaussian noise it is the paper's ||A x - y||^2.
"""

from __future__ import annotations

from typing import Sequence

import torch

from csgm.errors import CsgmError
from csgm.operators import NoNoise, Noise, Operator
from csgm.operators.likelihood import QuantizedLikelihood

__all__ = ["MeasurementModel", "as_measurement"]


class MeasurementModel:
    """y = post_noise(A x + noise) for images with stable ids; ``split`` keeps validation noise apart from test noise."""

    def __init__(self, operator: Operator, noise: Noise | None = None, seed: int = 0, split: str = "test") -> None:
        noise = noise if noise is not None else NoNoise()
        self.likelihood = QuantizedLikelihood(operator, noise) if operator.quantized else noise
        if noise.needs_nonnegative and not operator.nonnegative:
            raise CsgmError(
                f"{noise.name} noise needs measurements A x >= 0 but operator {operator.name!r} gives signed "
                "values; use identity, inpaint, blur, superres or phase_retrieval, or noise=gaussian"
            )
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

    def check_measurements(self, y: torch.Tensor, where: str) -> None:
        """Refuse recorded measurements y (N, output_size), e.g. from a file named ``where``, that this operator
        and noise cannot give: a quantiser's off-level values, negative values of a nonnegative operator without
        noise, Poisson values that are not counts."""
        self.operator.check_measurements(y, where)
        self.noise.check_measurements(y, where, self.operator.nonnegative)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The noise-free values the likelihood of y is a function of (``A.pre_noise(x)``), differentiable in x."""
        return self.operator.pre_noise(x)

    def data_term(self, prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample 2 sigma^2 * NLL(y | prediction) + const (>= 0): the noise model's, or the quantiser cells'
        likelihood for quantised operators (||prediction - y||^2 for Gaussian noise)."""
        return self.likelihood.data_term(prediction, y)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The data term of images x (B, C, H, W) against y: the measurement loss results report."""
        return self.data_term(self.predict(x), y)


def as_measurement(model: MeasurementModel | Operator) -> MeasurementModel:
    """A measurement model as given, or an operator's noise-free one (the data term ||A x - y||^2)."""
    return model if isinstance(model, MeasurementModel) else MeasurementModel(model)

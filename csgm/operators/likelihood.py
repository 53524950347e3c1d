"""The likelihood of quantised measurements: y records the quantiser cell each noisy value A x + tau + e fell into.

``QuantizedLikelihood(operator, noise).data_term(prediction, y)`` is 2 sigma^2 * -log P(cell | prediction) for
Gaussian noise of level sigma (the probit likelihood for 1 bit), and its sigma -> 0 limit (the squared
distance to the cell) without noise. Signs without dither measure only the direction of A x: their term is
the squared distance to the cells at ||prediction||^2 = m (BIHT's objective).
"""

from __future__ import annotations

import torch

from csgm.errors import CsgmError
from csgm.operators.base import Operator
from csgm.operators.noise import Noise

__all__ = ["QuantizedLikelihood", "interval_data_term"]


def _log_normal_interval(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log(Phi(b) - Phi(a)) for a <= b (either may be infinite), stable in both tails and with finite gradients:
    one-sided cells use log Phi directly; finite ones mirror intervals above 0 below it."""
    low_open, high_open = torch.isinf(a), torch.isinf(b)
    a, b = (
        torch.where(low_open, torch.zeros_like(a), a),
        torch.where(high_open, torch.zeros_like(b), b),
    )  # finite stand-ins
    flip = a > 0
    a2, b2 = torch.where(flip, -b, a), torch.where(flip, -a, b)
    upper, lower = torch.special.log_ndtr(b2), torch.special.log_ndtr(a2)
    two_sided = upper + torch.log(-torch.expm1((lower - upper).clamp(max=-1e-30)))
    return torch.where(
        low_open, torch.special.log_ndtr(b), torch.where(high_open, torch.special.log_ndtr(-a), two_sided)
    )


def interval_data_term(values: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor, std: float) -> torch.Tensor:
    """Per-sample 2 std^2 * -log P(values + N(0, std^2) in [lower, upper]), summed over measurements; with
    std = 0 its limit, the squared distance of the values to their cells (BIHT's one-sided objective)."""
    if std == 0.0:
        return ((lower - values).clamp_min(0).pow(2) + (values - upper).clamp_min(0).pow(2)).sum(1)
    nll = -_log_normal_interval((lower - values) / std, (upper - values) / std)
    return 2 * std**2 * nll.sum(1)


class QuantizedLikelihood:
    """The data term of y from a quantised operator (``operator.quantized``) with noise before the quantiser;
    defined for noise models whose cells have a Gaussian probability (``noise.quantizable``)."""

    def __init__(self, operator: Operator, noise: Noise) -> None:
        if not noise.quantizable:
            raise CsgmError(
                f"operator {operator.name!r} quantises after the noise; its likelihood is defined for "
                f"noise=gaussian or noise=none, not noise={noise.name}"
            )
        self.operator, self.noise = operator, noise

    def data_term(self, prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample 2 sigma^2 * NLL(y's cells | prediction) + const (>= 0)."""
        if self.operator.scale_invariant:  # only the direction is measured: fix the scale
            prediction = prediction * (
                prediction.shape[1] ** 0.5 / prediction.norm(dim=1, keepdim=True).clamp_min(1e-12)
            )
            return interval_data_term(prediction, *self.operator.cell(y), 0.0)
        return interval_data_term(prediction, *self.operator.cell(y), self.noise.std)

"""Measurement noise and its likelihood: none, Gaussian, heavy-tailed Student-t, Poisson photon counts, and
Gaussian noise with a fraction of grossly corrupted measurements (``outliers``, for robustness studies).

Noise is seeded per (run seed, operator, m, image id). Each model also gives the data term generative
solvers minimise: 2 sigma^2 times its negative log-likelihood up to a constant, so that Gaussian noise gives
exactly the paper's ||A G(z) - y||^2 and every term has the units of a squared residual. For values that
were quantised after the noise, ``interval_data_term`` is the same for the cell each value fell into
(the probit likelihood for 1 bit), and its sigma -> 0 limit (the squared distance to the cell) without noise.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from csgm.errors import CsgmError, check_choice, check_range
from csgm.options import instantiate, resolve_target
from csgm.seeding import derive_seed

__all__ = ["Noise", "build_noise", "noise_class", "interval_data_term", "NOISES"]


def _log_normal_interval(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log(Phi(b) - Phi(a)) for a <= b (either may be infinite), stable in both tails and with finite gradients:
    one-sided cells use log Phi directly; finite ones mirror intervals above 0 below it."""
    low_open, high_open = torch.isinf(a), torch.isinf(b)
    a, b = torch.where(low_open, torch.zeros_like(a), a), torch.where(high_open, torch.zeros_like(b), b)  # finite stand-ins
    flip = a > 0
    a2, b2 = torch.where(flip, -b, a), torch.where(flip, -a, b)
    upper, lower = torch.special.log_ndtr(b2), torch.special.log_ndtr(a2)
    two_sided = upper + torch.log(-torch.expm1((lower - upper).clamp(max=-1e-30)))
    return torch.where(low_open, torch.special.log_ndtr(b), torch.where(high_open, torch.special.log_ndtr(-a), two_sided))


def interval_data_term(values: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor, std: float) -> torch.Tensor:
    """Per-sample 2 std^2 * -log P(values + N(0, std^2) in [lower, upper]), summed over measurements; with
    std = 0 its limit, the squared distance of the values to their cells (BIHT's one-sided objective)."""
    if std == 0.0:
        return ((lower - values).clamp_min(0).pow(2) + (values - upper).clamp_min(0).pow(2)).sum(1)
    nll = -_log_normal_interval((lower - values) / std, (upper - values) / std)
    return 2 * std ** 2 * nll.sum(1)

NOISES = ("none", "gaussian", "student_t", "poisson", "outliers")


class Noise(nn.Module):
    """Adds i.i.d. noise to measurements. Each image's noise comes from its own seed
    (seed, operator, m, image id), so it does not depend on batch size, rank or device.
    """

    def __init__(self, kind: str = "gaussian", std: float = 0.1, df: float = 3.0, scale: float = 100.0,
                 fraction: float = 0.05, magnitude: float = 1000.0) -> None:
        super().__init__()
        check_choice("noise", kind, NOISES)
        if kind in ("gaussian", "student_t", "outliers"):
            check_range("noise.std", std, 0)
        if kind == "outliers":
            check_range("noise.fraction", fraction, 0, 1)
            check_range("noise.magnitude", magnitude, 0)
        if kind == "student_t":
            check_range("noise.df", df, 0, low_open=True)
        if kind == "poisson":
            check_range("noise.scale", scale, 0, low_open=True)
        self.kind, self.std, self.df, self.scale = kind, float(std), float(df), float(scale)
        self.fraction, self.magnitude = float(fraction), float(magnitude)

    @property
    def is_zero(self) -> bool:
        return self.kind == "none" or (self.kind in ("gaussian", "student_t") and self.std == 0.0) or (
            self.kind == "outliers" and self.std == 0.0 and (self.fraction == 0.0 or self.magnitude == 0.0))

    @property
    def level(self) -> float:
        """The noise's standard deviation (for Poisson: at unit intensity, 1 / sqrt(scale)); 0 without noise."""
        if self.kind == "poisson":
            return self.scale ** -0.5
        return 0.0 if self.kind == "none" else self.std

    @property
    def label(self) -> str:
        """A short description for titles: 'no noise', 'gaussian std 0.1', 'poisson scale 100'."""
        if self.kind == "none":
            return "no noise"
        if self.kind == "outliers":
            return f"gaussian std {self.std:g} + {self.fraction:.0%} outliers of {self.magnitude:g}"
        return f"poisson scale {self.scale:g}" if self.kind == "poisson" else f"{self.kind} std {self.std:g}"

    def data_term(self, prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample 2 sigma^2 * NLL(y | prediction) + const, >= 0 and 0 at y = prediction: ||prediction - y||^2
        for none and Gaussian noise (the paper's term), sigma^2 (df + 1) sum log(1 + r^2 / (df sigma^2)) for
        Student-t, 2 sum(u - y + y log(y / u)) (the Poisson deviance in intensity units) for Poisson."""
        if self.kind == "student_t" and self.std > 0:
            return self.std ** 2 * (self.df + 1) * torch.log1p((prediction - y).pow(2) / (self.df * self.std ** 2)).sum(1)
        if self.kind == "poisson":
            rate = prediction.clamp_min(1e-12)
            return 2 * (rate - y + torch.xlogy(y, y) - torch.xlogy(y, rate)).sum(1)
        return (prediction - y).pow(2).sum(1)

    @staticmethod
    def _rng(key: tuple, image_id: int) -> np.random.Generator:
        """The noise stream of one image: seeded by (key, image id), the same in every process."""
        return np.random.default_rng(derive_seed("noise", *key, int(image_id)))

    def sample(self, size: int, image_ids: Sequence[int], key: tuple) -> torch.Tensor:
        """(len(image_ids), size) float64 noise on the CPU."""
        rows = []
        for image_id in image_ids:
            rng = self._rng(key, image_id)
            if self.kind == "student_t":
                rows.append(self.std * rng.standard_t(self.df, size))
            else:
                rows.append(self.std * rng.standard_normal(size))
            if self.kind == "outliers":  # a seeded fraction of the measurements corrupted by +-magnitude
                corrupted = rng.choice(size, size=int(round(self.fraction * size)), replace=False)
                rows[-1][corrupted] += self.magnitude * rng.choice([-1.0, 1.0], size=len(corrupted))
        return torch.from_numpy(np.stack(rows)) if rows else torch.zeros(0, size, dtype=torch.float64)

    def counts(self, values: torch.Tensor, image_ids: Sequence[int], key: tuple) -> torch.Tensor:
        """Poisson(scale * values) / scale per image, values >= 0, drawn in float64 on the CPU."""
        if bool((values < 0).any()):
            raise CsgmError(f"poisson noise needs measurements A x >= 0, got {float(values.min()):.3g}; use an operator with "
                            "nonnegative weights (identity, inpaint, blur, superres) or noise=gaussian")
        rows = [self._rng(key, i).poisson(self.scale * row) / self.scale
                for i, row in zip(image_ids, values.detach().double().cpu().numpy())]
        return torch.from_numpy(np.stack(rows)) if rows else torch.zeros_like(values.detach().double().cpu())

    def forward(self, y: torch.Tensor, image_ids: Sequence[int], key: tuple) -> torch.Tensor:
        """y + noise (Poisson: counts at rate scale * y, in units of y), with ``key`` = (seed, operator name, m)."""
        if self.is_zero:
            return y
        if self.kind == "poisson":
            return self.counts(y, image_ids, key).to(device=y.device, dtype=y.dtype)
        return y + self.sample(y.shape[1], image_ids, key).to(device=y.device, dtype=y.dtype)

    def extra_repr(self) -> str:
        if self.kind == "outliers":
            return f"kind=outliers, std={self.std}, fraction={self.fraction}, magnitude={self.magnitude}"
        if self.kind == "poisson":
            return f"kind=poisson, scale={self.scale}"
        return f"kind={self.kind}, std={self.std}" + (f", df={self.df}" if self.kind == "student_t" else "")


def noise_class(cfg: dict) -> tuple[type[Noise], dict]:
    """The class of a conf/noise entry and the arguments the entry's name fixes: ``Noise`` with
    ``kind=name``, or a user's Noise subclass by ``_target_`` (no fixed arguments)."""
    if "_target_" in cfg:
        return resolve_target("noise", cfg, {}, Noise), {}
    check_choice("noise", cfg.get("name"), NOISES)
    return Noise, {"kind": cfg["name"]}


def build_noise(cfg: dict) -> Noise:
    """Noise from a conf/noise entry: {name, std, df}, or a user's Noise subclass by ``_target_``."""
    cls, fixed = noise_class(cfg)
    return instantiate("noise.", cls, cfg, **fixed)

"""Measurement noise models, one class each: none, Gaussian, heavy-tailed Student-t, Poisson photon counts,
and Gaussian noise with a fraction of grossly corrupted measurements (``outliers``, for robustness studies).

Every model owns its sampling, its level (a standard deviation), its label and its data term: 2 sigma^2
times its negative log-likelihood up to a constant, so that Gaussian noise gives exactly the paper's
||A G(z) - y||^2 and every term has the units of a squared residual. What a model allows is said by its
properties (``quantizable``, ``needs_nonnegative``), never by its name. Noise is seeded per (run seed,
operator, m, image id). A new model is one subclass here (or anywhere, by ``_target_``) and one YAML in
conf/noise; the likelihood of quantised values is csgm.operators.likelihood.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from torch import nn

from csgm.errors import CsgmError, check_range
from csgm.options import parameters
from csgm.seeding import derive_seed

__all__ = ["Noise", "NoNoise", "GaussianNoise", "StudentTNoise", "PoissonNoise", "OutlierNoise", "NOISES"]


class _ByKind(type):
    """``Noise("gaussian", 0.1)``, the spelling of csgm before one class per model, builds the registered class
    of that kind with the options it takes; subclasses are built as usual."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is not Noise:
            return super().__call__(*args, **kwargs)
        kind, *rest = args or (kwargs.pop("kind", "gaussian"),)
        model = NOISES[kind]
        options = {**dict(zip(("std", "df", "scale", "fraction", "magnitude"), rest)), **kwargs}
        accepted = parameters(model)
        return model(**{k: v for k, v in options.items() if k in accepted})


class Noise(nn.Module, metaclass=_ByKind):
    """Additive i.i.d. noise on measurements. Each image's noise comes from its own seed (key, image id), so
    it does not depend on batch size, rank or device. Subclasses give ``name``, ``std`` (the noise level: its
    standard deviation, 0 without noise), ``label`` and ``_draw`` (one image's noise from its generator), and override
    ``data_term`` when it is not ||r||^2."""

    name: ClassVar[str] = "noise"
    quantizable: ClassVar[bool] = False  # a quantiser after it has a defined (Gaussian-cell) likelihood
    needs_nonnegative: ClassVar[bool] = False  # defined only for measurements A x >= 0
    chi_square: ClassVar[bool] = False  # at the true x, data term / std^2 follows chi-square(m) (exactly or for
    #                                     large counts): the data-fit check of csgm.recovery.verdicts applies
    std: float  # the noise level, one word everywhere (config, code, the results' noise_std): its standard deviation

    @property
    def is_zero(self) -> bool:
        """Whether it leaves y unchanged."""
        return self.std == 0.0

    @property
    def label(self) -> str:
        """A short description for titles: 'no noise', 'gaussian std 0.1', 'poisson scale 100'."""
        return f"{self.name} std {self.std:g}"

    @property
    def squared_residual(self) -> bool:
        """Whether the data term is the plain squared residual ||prediction - y||^2 (a model that overrides
        ``data_term`` is not)."""
        return type(self).data_term is Noise.data_term

    def data_term(self, prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample 2 sigma^2 * NLL(y | prediction) + const, >= 0 and 0 at y = prediction; ||prediction - y||^2 here."""
        return (prediction - y).pow(2).sum(1)

    @staticmethod
    def _rng(key: tuple, image_id: int) -> np.random.Generator:
        """The noise stream of one image: seeded by (key, image id), the same in every process."""
        return np.random.default_rng(derive_seed("noise", *key, int(image_id)))

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """One image's ``size`` noise values from its generator."""
        raise NotImplementedError

    def sample(self, size: int, image_ids: Sequence[int], key: tuple) -> torch.Tensor:
        """(len(image_ids), size) float64 noise on the CPU."""
        rows = [self._draw(self._rng(key, image_id), size) for image_id in image_ids]
        return torch.from_numpy(np.stack(rows)) if rows else torch.zeros(0, size, dtype=torch.float64)

    def forward(self, y: torch.Tensor, image_ids: Sequence[int], key: tuple) -> torch.Tensor:
        """y + noise, with ``key`` = (seed, operator name, m)."""
        if self.is_zero:
            return y
        return y + self.sample(y.shape[1], image_ids, key).to(device=y.device, dtype=y.dtype)

    @property
    def lowest_value(self) -> float:
        """The most negative noise value it can add (practically: Gaussian tails are cut at 8 std, a chance of
        6e-16 per value); -inf for heavy tails."""
        return -8.0 * self.std

    def check_measurements(self, y: torch.Tensor, where: str, nonnegative: bool) -> None:
        """Refuse recorded y this noise cannot give from noise-free values that are >= 0 when ``nonnegative``: values
        below the noise's ``lowest_value``."""
        floor = self.lowest_value
        if nonnegative and bool((y < floor).any()):
            values = "negative values" if floor == 0 else f"values below {floor:.3g}"
            added = "adds nothing" if self.is_zero else f"adds no value below {floor:.3g}"
            raise CsgmError(
                f"{where} holds {int((y < floor).sum())} {values} (lowest {float(y.min()):.3g}) but the operator gives "
                f"values >= 0 and noise={self.name} {added}; give the noise the measurements carry (e.g. "
                "noise=gaussian noise.std=SIGMA) or check the file"
            )


class NoNoise(Noise):
    """Exact measurements."""

    name = "none"
    quantizable = True
    std = 0.0

    @property
    def label(self) -> str:
        return "no noise"

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.zeros(size)


class GaussianNoise(Noise):
    """i.i.d. N(0, std^2) per measurement (the paper's model)."""

    name = "gaussian"
    quantizable = True
    chi_square = True

    def __init__(self, std: float = 0.1) -> None:
        super().__init__()
        check_range("noise.std", std, 0)
        self.std = float(std)

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return self.std * rng.standard_normal(size)

    def extra_repr(self) -> str:
        return f"std={self.std}"


class StudentTNoise(Noise):
    """Heavy-tailed noise: std * t(df) per measurement; its data term is the Student-t likelihood's."""

    name = "student_t"

    def __init__(self, std: float = 0.1, df: float = 3.0) -> None:
        super().__init__()
        check_range("noise.std", std, 0)
        check_range("noise.df", df, 0, low_open=True)
        self.std, self.df = float(std), float(df)

    @property
    def lowest_value(self) -> float:
        return -float("inf") if self.std > 0 else 0.0

    def data_term(self, prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """sigma^2 (df + 1) sum log(1 + r^2 / (df sigma^2)); ||r||^2 at std 0."""
        if self.std == 0:
            return super().data_term(prediction, y)
        return self.std**2 * (self.df + 1) * torch.log1p((prediction - y).pow(2) / (self.df * self.std**2)).sum(1)

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return self.std * rng.standard_t(self.df, size)

    def extra_repr(self) -> str:
        return f"std={self.std}, df={self.df}"


class OutlierNoise(GaussianNoise):
    """Gaussian noise plus gross corruption: a seeded fraction of each image's measurements shifted by +-magnitude."""

    name = "outliers"
    quantizable = False
    chi_square = False

    def __init__(self, std: float = 0.1, fraction: float = 0.05, magnitude: float = 1000.0) -> None:
        super().__init__(std)
        check_range("noise.fraction", fraction, 0, 1)
        check_range("noise.magnitude", magnitude, 0)
        self.fraction, self.magnitude = float(fraction), float(magnitude)

    @property
    def is_zero(self) -> bool:
        return self.std == 0.0 and (self.fraction == 0.0 or self.magnitude == 0.0)

    @property
    def label(self) -> str:
        return f"gaussian std {self.std:g} + {self.fraction:.0%} outliers of {self.magnitude:g}"

    @property
    def lowest_value(self) -> float:
        return super().lowest_value - (self.magnitude if self.fraction > 0 else 0.0)

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        row = super()._draw(rng, size)
        corrupted = rng.choice(size, size=int(round(self.fraction * size)), replace=False)
        row[corrupted] += self.magnitude * rng.choice([-1.0, 1.0], size=len(corrupted))
        return row

    def extra_repr(self) -> str:
        return f"std={self.std}, fraction={self.fraction}, magnitude={self.magnitude}"


class PoissonNoise(Noise):
    """Photon counts: y = Poisson(scale * A x) / scale (scale photons per unit intensity); needs A x >= 0."""

    name = "poisson"
    needs_nonnegative = True
    chi_square = True  # the deviance in counts (data term x scale), chi-square(m) for large counts

    def __init__(self, scale: float = 100.0) -> None:
        super().__init__()
        check_range("noise.scale", scale, 0, low_open=True)
        self.scale = float(scale)

    @property
    def std(self) -> float:
        """The standard deviation at unit intensity, 1 / sqrt(scale)."""
        return self.scale**-0.5

    @property
    def is_zero(self) -> bool:
        return False

    @property
    def label(self) -> str:
        return f"poisson scale {self.scale:g}"

    def data_term(self, prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """2 sum(u - y + y log(y / u)): the Poisson deviance in intensity units."""
        rate = prediction.clamp_min(1e-12)
        return 2 * (rate - y + torch.xlogy(y, y) - torch.xlogy(y, rate)).sum(1)

    def forward(self, y: torch.Tensor, image_ids: Sequence[int], key: tuple) -> torch.Tensor:
        """Poisson(scale * y) / scale per image, y >= 0, drawn in float64 on the CPU."""
        if bool((y < 0).any()):
            raise CsgmError(
                f"poisson noise needs measurements A x >= 0, got {float(y.min()):.3g}; use an operator with "
                "nonnegative weights (identity, inpaint, blur, superres) or noise=gaussian"
            )
        rows = [
            self._rng(key, i).poisson(self.scale * row) / self.scale
            for i, row in zip(image_ids, y.detach().double().cpu().numpy())
        ]
        counts = torch.from_numpy(np.stack(rows)) if rows else torch.zeros_like(y.detach().double().cpu())
        return counts.to(device=y.device, dtype=y.dtype)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"

    def check_measurements(self, y: torch.Tensor, where: str, nonnegative: bool) -> None:
        """Refuse y whose y * scale are not photon counts (non-negative integers, to float32 precision)."""
        counts = y.double() * self.scale
        bad = (counts < 0) | ((counts - counts.round()).abs() > 1e-6 * counts.abs().clamp_min(1.0))
        if bool(bad.any()):
            first = float(y[bad][0])
            raise CsgmError(
                f"{where} holds {int(bad.sum())} values whose y * noise.scale ({self.scale:g}) are not photon counts "
                f"(non-negative integers; first: {first:g} -> {first * self.scale:g}); save counts / noise.scale, "
                "or set noise.scale to the scale they were divided by"
            )


NOISES: dict[str, type[Noise]] = {
    cls.name: cls for cls in (NoNoise, GaussianNoise, StudentTNoise, PoissonNoise, OutlierNoise)
}

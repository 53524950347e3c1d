"""Shared pieces of the proximal solvers: soft thresholding, regularisation weights, basis + step size."""

from __future__ import annotations

import math

import torch

from csgm.errors import CsgmError

__all__ = ["soft_threshold", "check_positive_lambda", "require_resolved", "BasisCache"]


def soft_threshold(v: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:
    """prox of threshold * ||.||_1: sign(v) max(|v| - threshold, 0), elementwise (threshold broadcasts per row)."""
    return torch.sign(v) * torch.clamp(v.abs() - threshold, min=0.0)


def check_positive_lambda(name: str, value: float | str) -> float | str:
    """A regularisation weight: a number > 0, or 'auto' (chosen on the validation split)."""
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise CsgmError(f"solver.{name}={value!r} must be a number > 0, or auto to choose it on the validation split")
    return float(value)


def require_resolved(name: str, value: float | str) -> None:
    """Raise if the weight ``name`` is still 'auto' when a solve needs its number."""
    if value == "auto":
        raise CsgmError(
            f"{name}=auto must be resolved on the validation split first (recover.py does this); "
            f"or set solver.{name} to a number"
        )


class BasisCache:
    """The basis for an operator's image shape and the Lipschitz constant ||A||^2 (power method), once per operator."""

    def __init__(self, basis: str, wavelet: str, levels: int) -> None:
        from csgm.solvers.sparsity_bases import build_basis

        self.basis_name = basis
        self.options = {"wavelet": wavelet, "levels": levels} if basis == "wavelet" else {}
        self._build = build_basis
        self._cache: dict[tuple, tuple] = {}

    def get(self, operator) -> tuple:
        key = (id(operator), operator.m)
        if key not in self._cache:
            basis = self._build(self.basis_name, operator.image_shape, **self.options).to(operator.device)
            self._cache[key] = (basis, operator.norm_squared() * 1.001)
        return self._cache[key]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cache": {}}

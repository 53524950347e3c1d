"""Forward models y = A x (+ noise): gaussian, fourier, superres, inpaint, blur, identity."""

from __future__ import annotations

import inspect
from typing import Sequence

from csgm.errors import check_choice, check_options
from csgm.operators.base import LinearOperator, resolve_count
from csgm.operators.blur import BlurOperator
from csgm.operators.fourier import FourierOperator
from csgm.operators.gaussian import GaussianOperator
from csgm.operators.identity import IdentityOperator
from csgm.operators.inpaint import InpaintOperator
from csgm.operators.noise import Noise, build_noise
from csgm.operators.superres import SuperResOperator

__all__ = ["OPERATORS", "LinearOperator", "Noise", "build_noise", "build_operator", "operator_uses_m", "resolve_count"]

OPERATORS: dict[str, type[LinearOperator]] = {
    cls.name: cls
    for cls in (GaussianOperator, FourierOperator, SuperResOperator, InpaintOperator, BlurOperator, IdentityOperator)
}


def _parameters(cls: type[LinearOperator]) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self", "image_shape"}


def operator_uses_m(cfg: dict) -> bool:
    """Whether the operator's measurement count comes from ``m`` (else it is fixed by its options)."""
    check_choice("operator", cfg["name"], OPERATORS)
    return "m" in _parameters(OPERATORS[cfg["name"]]) and cfg.get("mode", "random") == "random"


def build_operator(cfg: dict, image_shape: Sequence[int], seed: int = 0, m: int | float | None = None) -> LinearOperator:
    """Build the operator of a conf/operator entry for ``image_shape``; ``m`` overrides ``cfg['m']``."""
    check_choice("operator", cfg["name"], OPERATORS)
    cls = OPERATORS[cfg["name"]]
    accepted = _parameters(cls)
    options = {k: v for k, v in cfg.items() if k != "name"}
    check_options(f"operator {cfg['name']!r}", options, accepted)
    if m is not None and "m" in accepted:
        options["m"] = m
    if "seed" in accepted:
        options["seed"] = seed
    return cls(image_shape, **options)

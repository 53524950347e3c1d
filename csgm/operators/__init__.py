"""Forward models y = A x (+ noise): gaussian, fourier, superres, inpaint, blur, identity, phase_retrieval, quantize, one_bit,
srht, random_convolution."""

from __future__ import annotations

from typing import Sequence

from csgm.options import instantiate, parameters, resolve_target
from csgm.operators.base import LinearOperator, Operator, resolve_count
from csgm.operators.blur import BlurOperator
from csgm.operators.fourier import FourierOperator
from csgm.operators.gaussian import GaussianOperator
from csgm.operators.identity import IdentityOperator
from csgm.operators.inpaint import InpaintOperator
from csgm.operators.matrix import MatrixOperator
from csgm.operators.noise import NOISES, GaussianNoise, NoNoise, Noise, OutlierNoise, PoissonNoise, StudentTNoise
from csgm.operators.phase_retrieval import PhaseRetrievalOperator
from csgm.operators.quantize import OneBitOperator, QuantizedOperator
from csgm.operators.structured import RandomConvolutionOperator, SRHTOperator
from csgm.operators.superres import SuperResOperator

__all__ = ["OPERATORS", "Operator", "LinearOperator", "MatrixOperator", "PhaseRetrievalOperator", "QuantizedOperator", "OneBitOperator", "Noise", "NOISES", "NoNoise", "GaussianNoise",
           "StudentTNoise", "PoissonNoise", "OutlierNoise", "build_noise", "noise_class", "build_operator", "operator_class", "operator_uses_m", "run_provided",
           "resolve_count"]

OPERATORS: dict[str, type[Operator]] = {
    cls.name: cls
    for cls in (GaussianOperator, FourierOperator, SuperResOperator, InpaintOperator, BlurOperator, IdentityOperator,
                PhaseRetrievalOperator, QuantizedOperator, OneBitOperator, SRHTOperator, RandomConvolutionOperator)
}


def operator_class(cfg: dict) -> type[Operator]:
    """The class of a conf/operator entry: ``OPERATORS[name]`` or a user's ``_target_`` (an Operator subclass)."""
    return resolve_target("operator", cfg, OPERATORS, Operator)


def operator_uses_m(cfg: dict) -> bool:
    """Whether the operator's measurement count comes from ``m`` (else it is fixed by its options)."""
    return "m" in parameters(operator_class(cfg)) and cfg.get("mode", "random") == "random"


def run_provided(cfg: dict) -> set[str]:
    """The operator arguments a recovery run provides (image shape, run seed, the grid's m): not config keys."""
    accepted = parameters(operator_class(cfg))
    return {"image_shape"} | ({"seed"} & set(accepted)) | ({"m"} if "m" in accepted else set())


def build_operator(cfg: dict, image_shape: Sequence[int], seed: int = 0, m: int | float | None = None) -> Operator:
    """Build the operator of a conf/operator entry for ``image_shape``; ``m`` (the measurement grid's value)
    replaces ``cfg['m']`` and the run ``seed`` is passed to operators that draw at random."""
    provided = {"image_shape": image_shape, "seed": seed, "m": m}
    fixed = {k: provided[k] for k in run_provided(cfg) if provided[k] is not None}
    options = {k: v for k, v in cfg.items() if k not in fixed}
    return instantiate("operator.", operator_class(cfg), options, **fixed)


def noise_class(cfg: dict) -> type[Noise]:
    """The class of a conf/noise entry: ``NOISES[name]`` or a user's ``_target_`` (a Noise subclass)."""
    return resolve_target("noise", cfg, NOISES, Noise)


def build_noise(cfg: dict) -> Noise:
    """The noise model of a conf/noise entry ({name, options...})."""
    return instantiate("noise.", noise_class(cfg), cfg)

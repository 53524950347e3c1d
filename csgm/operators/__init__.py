"""Forward models y = A x (+ noise): gaussian, fourier, superres, inpaint, blur, identity, phase_retrieval, quantize, one_bit,
srht, random_convolution."""

from __future__ import annotations

from typing import Sequence

from csgm.components import Group
from csgm.options import parameters
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

__all__ = [
    "OPERATORS",
    "Operator",
    "LinearOperator",
    "MatrixOperator",
    "PhaseRetrievalOperator",
    "QuantizedOperator",
    "OneBitOperator",
    "Noise",
    "NOISES",
    "NoNoise",
    "GaussianNoise",
    "StudentTNoise",
    "PoissonNoise",
    "OutlierNoise",
    "build_noise",
    "noise_class",
    "build_operator",
    "operator_class",
    "operator_uses_m",
    "OPERATOR",
    "NOISE",
    "resolve_count",
]

OPERATORS: dict[str, type[Operator]] = {
    cls.name: cls
    for cls in (
        GaussianOperator,
        FourierOperator,
        SuperResOperator,
        InpaintOperator,
        BlurOperator,
        IdentityOperator,
        PhaseRetrievalOperator,
        QuantizedOperator,
        OneBitOperator,
        SRHTOperator,
        RandomConvolutionOperator,
    )
}


OPERATOR = Group(
    "operator",
    OPERATORS,
    Operator,
    supplied={"image_shape": "the dataset's images", "seed": "seed={value}", "m": "measurements=[{value}]"},
)
NOISE = Group("noise", NOISES, Noise)


def operator_class(cfg: dict) -> type[Operator]:
    """The class of a conf/operator entry: ``OPERATORS[name]`` or a user's ``_target_`` (an Operator subclass)."""
    return OPERATOR.cls(cfg)


def operator_uses_m(cfg: dict) -> bool:
    """Whether the operator's measurement count comes from ``m`` (else it is fixed by its options)."""
    return "m" in parameters(operator_class(cfg)) and cfg.get("mode", "random") == "random"


def build_operator(cfg: dict, image_shape: Sequence[int], seed: int = 0, m: int | float | None = None) -> Operator:
    """The operator of a conf/operator entry for ``image_shape``; ``m`` is the measurement grid's value and the run
    ``seed`` goes to operators that draw at random (neither may be set in the entry)."""
    return OPERATOR.build(cfg, image_shape=image_shape, seed=seed, m=m)


def noise_class(cfg: dict) -> type[Noise]:
    """The class of a conf/noise entry: ``NOISES[name]`` or a user's ``_target_`` (a Noise subclass)."""
    return NOISE.cls(cfg)


def build_noise(cfg: dict) -> Noise:
    """The noise model of a conf/noise entry ({name, options...})."""
    return NOISE.build(cfg)

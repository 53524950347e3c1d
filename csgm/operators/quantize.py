"""Quantised Gaussian measurements: y = Q(A x + tau + noise), uniform b-bit (``quantize``) or signs (``one_bit``).

The noise enters before the quantiser (the probit model of 1-bit compressed sensing), so a quantised
operator exposes its pre-quantisation values ``pre_noise(x) = A x + tau`` and, for every measured value,
the cell ``[lower, upper]`` of pre-quantisation values it came from. Generative solvers fit the
likelihood of y on those values (csgm.likelihood), never through the flat quantiser. A is the
``gaussian`` operator's matrix for the same (seed, m), so quantised and unquantised runs share A; m may
reach 8n (1-bit measurements are often oversampled).
"""

from __future__ import annotations

from typing import Sequence

import torch

from csgm.errors import CsgmError, check_flag, check_range
from csgm.operators.base import Operator, resolve_count
from csgm.operators.gaussian import gaussian_matrix
from csgm.operators.matrix import MatrixOperator
from csgm.operators.phase_retrieval import MAX_OVERSAMPLING
from csgm.seeding import seeded_rng

__all__ = ["QuantizedOperator", "OneBitOperator"]


class QuantizedOperator(Operator):
    """y = Q_b(A x + tau): 2^b cells of width 2 * range / 2^b over [-range, range] (the outer two open
    towards +-inf), y the midpoint of the cell. ``dither`` > 0 adds a known tau ~ U[-dither, dither] per
    measurement (seeded from (seed, m)); without it, 1 bit loses the norm of x (``scale_invariant``).
    ``range`` is in the units of A x: with N(0, 1) entries, A x has standard deviation ||x|| (about 9 for
    an MNIST digit).
    """

    name = "quantize"
    quantized = True

    def __init__(
        self,
        image_shape: Sequence[int],
        m: int | float,
        bits: int = 4,
        range: float = 30.0,
        dither: float = 0.0,
        seed: int = 0,
        normalize: bool = False,
    ) -> None:
        super().__init__(image_shape)
        check_range("operator.bits", bits, 1, 16)
        check_range("operator.range", range, 0, low_open=True)
        check_range("operator.dither", dither, 0)
        self.m = self.output_size = resolve_count(m, self.n if isinstance(m, float) else MAX_OVERSAMPLING * self.n, "m")
        self.linear_part = MatrixOperator(
            image_shape, gaussian_matrix(self.m, self.n, seed, check_flag("operator.normalize", normalize))
        )
        self.bits, self.range, self.dither = int(bits), float(range), float(dither)
        tau = (
            2 * torch.rand(self.m, generator=seeded_rng("dither", seed, self.m), dtype=torch.float64) - 1
        ) * self.dither
        self.register_buffer("tau", tau.float())

    @property
    def scale_invariant(self) -> bool:
        """Whether y is unchanged by scaling x (1 bit, no dither): errors are then measured on x / ||x||."""
        return self.bits == 1 and self.dither == 0.0

    @property
    def step(self) -> float:
        return 2 * self.range / 2**self.bits

    def pre_noise(self, x: torch.Tensor) -> torch.Tensor:
        """A x + tau, the values the noise and the quantiser act on."""
        self._check_image(x)
        return self.linear_part(x) + self.tau.to(x.dtype if x.is_floating_point() else self.tau.dtype)

    def post_noise(self, values: torch.Tensor) -> torch.Tensor:
        """The quantiser: the midpoint of each value's cell."""
        index = torch.floor((values + self.range) / self.step).clamp(0, 2**self.bits - 1)
        return -self.range + (index + 0.5) * self.step

    def cell(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(lower, upper) bounds of the pre-quantisation values that quantise to y (+-inf at the ends)."""
        index = torch.floor((y + self.range) / self.step)
        if bool(((index < 0) | (index > 2**self.bits - 1)).any()):
            raise CsgmError(
                f"measurements hold values outside the {self.bits}-bit quantiser's range [-{self.range}, {self.range}]; "
                "give the operator options the measurements were quantised with"
            )
        lower = torch.where(index == 0, torch.full_like(y, -torch.inf), -self.range + index * self.step)
        upper = torch.where(
            index == 2**self.bits - 1, torch.full_like(y, torch.inf), -self.range + (index + 1) * self.step
        )
        return lower, upper

    @property
    def levels(self) -> torch.Tensor:
        """The values the quantiser records, ascending (float64): the midpoints of its cells."""
        return -self.range + (torch.arange(2**self.bits, dtype=torch.float64) + 0.5) * self.step

    def check_measurements(self, y: torch.Tensor, where: str) -> None:
        """Refuse values that are not the quantiser's levels (to float32 precision)."""
        levels = self.levels
        index = torch.bucketize(y.double(), (levels[1:] + levels[:-1]) / 2)
        off = ((y.double() - levels[index]).abs() > 1e-6 * levels.abs().max()).nonzero()
        if len(off):
            shown = (
                ", ".join(f"{v:g}" for v in levels.tolist())
                if len(levels) <= 4
                else (f"{levels[0]:g}, {levels[1]:g}, ..., {levels[-1]:g}")
            )
            raise CsgmError(
                f"{where} holds {len(off)} values that operator {self.name!r} cannot record (first: "
                f"{float(y[tuple(off[0])]):g} at row {int(off[0][0])}); it records only the levels {shown}: give the "
                "operator options the measurements were quantised with"
            )

    def dequantized(self, y: torch.Tensor) -> torch.Tensor:
        """y - tau, an estimate of A x that treats quantisation as noise (for linear baselines)."""
        return y - self.tau.to(y.dtype)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.post_noise(self.linear_part(x) + self.tau.to(x.dtype))


class OneBitOperator(QuantizedOperator):
    """y = sign(A x + tau) in {-1, +1}: one bit per measurement (Jacques et al. 2013; Plan and Vershynin 2013).
    Without ``dither`` the norm of x is lost and errors are reported on x / ||x||; with it (tau ~
    U[-dither, dither], dither of the order of |A x|) the norm is recoverable (Knudson, Saab, Ward 2016).
    """

    name = "one_bit"

    def __init__(
        self, image_shape: Sequence[int], m: int | float, dither: float = 0.0, seed: int = 0, normalize: bool = False
    ) -> None:
        super().__init__(image_shape, m, bits=1, range=1.0, dither=dither, seed=seed, normalize=normalize)

    @property
    def levels(self) -> torch.Tensor:
        """-1 and +1: the signs."""
        return torch.tensor([-1.0, 1.0], dtype=torch.float64)

    def post_noise(self, values: torch.Tensor) -> torch.Tensor:
        return torch.where(values > 0, 1.0, -1.0).to(values.dtype)

    def cell(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(0, inf) for y = +1, (-inf, 0] for y = -1."""
        if bool((y.abs() != 1).any()):
            raise CsgmError("one_bit measurements must be -1 or +1; the file holds other values")
        zero, inf = torch.zeros_like(y), torch.full_like(y, torch.inf)
        return torch.where(y > 0, zero, -inf), torch.where(y > 0, inf, zero)

"""Matrix-free random operators that behave like the paper's Gaussian A at O(n log n) time and O(n) memory.

- ``srht`` (subsampled randomised Hadamard transform, the fast Johnson-Lindenstrauss transform of Ailon and
  Chazelle): random signs D, zero-padding to N = 2^p >= n, the orthonormal Walsh-Hadamard transform H, and
  m of its N outputs: A = sqrt(N) S H P D.
- ``random_convolution`` (Romberg 2009): circular 2-D convolution of every channel with one random filter whose
  Fourier coefficients all have modulus 1 (the phases of a Gaussian filter), then m random outputs:
  A = sqrt(n) S F^-1 diag(phases) F.
Both have rows of squared norm n, like N(0, 1) Gaussian rows (E[A^T A] = m I), so noise levels and solver
settings carry over; ``normalize`` divides by sqrt(m) as for ``gaussian``. Signs, filters and the kept rows
are drawn on the CPU from (seed, m).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from csgm.errors import check_flag
from csgm.operators.base import LinearOperator, resolve_count
from csgm.seeding import seeded_rng

__all__ = ["SRHTOperator", "RandomConvolutionOperator", "walsh_hadamard"]


def walsh_hadamard(x: torch.Tensor) -> torch.Tensor:
    """The orthonormal Walsh-Hadamard transform over the last dimension (a power of 2), by butterflies:
    O(N log N) and symmetric, so it is its own inverse and adjoint."""
    size = x.shape[-1]
    lead = x.shape[:-1]
    half = 1
    while half < size:
        pairs = x.reshape(*lead, size // (2 * half), 2, half)
        x = torch.stack((pairs[..., 0, :] + pairs[..., 1, :], pairs[..., 0, :] - pairs[..., 1, :]), dim=-2).reshape(
            *lead, size
        )
        half *= 2
    return x / math.sqrt(size)


class SRHTOperator(LinearOperator):
    """y = sqrt(N) (H P D x)[rows]: random signs, zero-padding to N = 2^p, Walsh-Hadamard, m kept rows."""

    name = "srht"

    def __init__(self, image_shape: Sequence[int], m: int | float, seed: int = 0, normalize: bool = False) -> None:
        super().__init__(image_shape)
        self.m = self.output_size = resolve_count(m, self.n, "m")
        self.padded = 1 << (self.n - 1).bit_length()
        rng = seeded_rng("srht", seed, self.m)
        self.register_buffer("signs", (torch.randint(0, 2, (self.n,), generator=rng) * 2 - 1).float())
        self.register_buffer("rows", torch.randperm(self.padded, generator=rng)[: self.m].sort().values)
        self.scale = math.sqrt(self.padded) / (
            math.sqrt(self.m) if check_flag("operator.normalize", normalize) else 1.0
        )

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        signed = x.flatten(1).to(self.signs.dtype) * self.signs
        padded = torch.nn.functional.pad(signed, (0, self.padded - self.n))
        return self.scale * walsh_hadamard(padded)[:, self.rows]

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        full = torch.zeros(len(y), self.padded, dtype=self.signs.dtype, device=y.device)
        full[:, self.rows] = y.to(self.signs.dtype)
        return (self.scale * walsh_hadamard(full)[:, : self.n] * self.signs).view(-1, *self.image_shape)


class RandomConvolutionOperator(LinearOperator):
    """y = sqrt(n) (F^-1 diag(phases) F x)[rows]: a random all-pass filter per image (same for every channel),
    then m random outputs of the C * H * W."""

    name = "random_convolution"

    def __init__(self, image_shape: Sequence[int], m: int | float, seed: int = 0, normalize: bool = False) -> None:
        super().__init__(image_shape)
        self.m = self.output_size = resolve_count(m, self.n, "m")
        rng = seeded_rng("random_convolution", seed, self.m)
        spectrum = torch.fft.fft2(torch.randn(*self.image_shape[1:], generator=rng, dtype=torch.float64))
        phases = spectrum / spectrum.abs().clamp_min(1e-12)  # Hermitian (the filter is real), modulus 1
        self.register_buffer("phases_real", phases.real.float())
        self.register_buffer("phases_imag", phases.imag.float())
        self.register_buffer("rows", torch.randperm(self.n, generator=rng)[: self.m].sort().values)
        self.scale = math.sqrt(self.n) / (math.sqrt(self.m) if check_flag("operator.normalize", normalize) else 1.0)

    def _filter(self, x: torch.Tensor, conjugate: bool) -> torch.Tensor:
        phases = torch.complex(self.phases_real, -self.phases_imag if conjugate else self.phases_imag).to(
            torch.complex128 if x.dtype == torch.float64 else torch.complex64
        )
        return torch.fft.ifft2(torch.fft.fft2(x, norm="ortho") * phases, norm="ortho").real

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self._filter(x.to(self.phases_real.dtype), conjugate=False).flatten(1)[:, self.rows]

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        full = torch.zeros(len(y), self.n, dtype=self.phases_real.dtype, device=y.device)
        full[:, self.rows] = y.to(self.phases_real.dtype)
        return self.scale * self._filter(full.view(-1, *self.image_shape), conjugate=True)

"""Subsampled Fourier measurements (MRI): orthonormal 2-D FFT, then keep the masked frequencies."""

from __future__ import annotations

import math
from typing import Sequence

import torch

from csgm.errors import check_choice, check_range
from csgm.operators.base import LinearOperator, location_mask, resolve_count
from csgm.seeding import seeded_rng

__all__ = ["FourierOperator", "fourier_mask_indices", "MASKS"]

MASKS = ("uniform", "variable_density", "radial", "cartesian")


def _frequency_radius(h: int, w: int) -> torch.Tensor:
    """|frequency| of every FFT bin (DC at [0, 0]), normalised so the corners are ~0.7."""
    fy, fx = torch.fft.fftfreq(h, dtype=torch.float64), torch.fft.fftfreq(w, dtype=torch.float64)
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


def _without_repeats(order: torch.Tensor) -> torch.Tensor:
    """Keep the first occurrence of every index, preserving order."""
    seen: set[int] = set()
    return torch.tensor([i for i in order.tolist() if not (i in seen or seen.add(i))], dtype=torch.long)


def fourier_mask_indices(
    h: int, w: int, count: int, mask: str, seed: int, center_fraction: float, decay: float
) -> torch.Tensor:
    """Flat indices (into h * w FFT bins) of exactly ``count`` kept frequencies.

    - ``uniform``: uniformly random bins.
    - ``variable_density``: the ``center_fraction`` lowest frequencies, then bins drawn with
      probability proportional to (1 + r / r0)^-decay (denser at low frequencies).
    - ``radial``: spokes through DC at golden-angle steps, bins added spoke by spoke.
    - ``cartesian``: whole rows (phase-encode lines), the centre rows first, then rows drawn
      with variable density. With line masks the last line is cut so that exactly ``count`` bins
      are kept.
    """
    gen = seeded_rng("fourier", mask, seed, count)
    radius = _frequency_radius(h, w).flatten()
    total = h * w
    if mask == "uniform":
        return torch.randperm(total, generator=gen)[:count].sort().values
    if mask == "variable_density":
        n_center = min(count, int(round(center_fraction * total)))
        by_radius = torch.argsort(radius, stable=True)
        center, rest = by_radius[:n_center], by_radius[n_center:]
        weights = (1.0 + radius[rest] / 0.05) ** (-decay)
        drawn = (
            rest[torch.multinomial(weights, count - n_center, replacement=False, generator=gen)]
            if count > n_center
            else rest[:0]
        )
        return torch.cat([center, drawn]).sort().values
    if mask == "radial":
        steps = 4 * max(h, w)
        t = torch.linspace(-0.5, 0.5, steps, dtype=torch.float64)
        spokes = []
        for k in range(4 * max(h, w)):
            angle = k * math.pi * (math.sqrt(5) - 1) / 2
            ys = torch.round(t * h * math.sin(angle)).long() % h
            xs = torch.round(t * w * math.cos(angle)).long() % w
            spoke = ys * w + xs
            spokes.append(spoke[torch.argsort((t.abs()), stable=True)])
        order = _without_repeats(torch.cat(spokes))
        if len(order) < count:  # spokes do not reach every bin; fill by increasing radius
            rest = torch.argsort(radius, stable=True)
            order = _without_repeats(torch.cat([order, rest]))
        return order[:count].sort().values
    # cartesian
    row_radius = _frequency_radius(h, 1).flatten()
    by_radius = torch.argsort(row_radius, stable=True)
    n_center = max(1, int(round(center_fraction * h)))
    rest = by_radius[n_center:]
    weights = (1.0 + row_radius[rest] / 0.05) ** (-decay)
    drawn = rest[torch.multinomial(weights, len(rest), replacement=False, generator=gen)] if len(rest) else rest
    rows = torch.cat([by_radius[:n_center], drawn])
    order = (rows[:, None] * w + torch.arange(w)[None, :]).flatten()
    return order[:count].sort().values


class FourierOperator(LinearOperator):
    """y = [Re, Im] of M F x, with F the orthonormal 2-D FFT per channel and M a frequency mask.

    ``m`` counts kept complex coefficients over all channels (C x kept frequencies, so at most n);
    y stores their real then imaginary parts, so ``output_size`` = 2 m. The adjoint is the adjoint
    in the real vector space R^(2m): A^T y = Re(F^H M^T (y_re + i y_im)). With a full mask, A^T A = I.
    """

    name = "fourier"

    def __init__(
        self,
        image_shape: Sequence[int],
        m: int | float,
        seed: int = 0,
        mask: str = "variable_density",
        center_fraction: float = 0.02,
        decay: float = 2.0,
    ) -> None:
        super().__init__(image_shape)
        check_choice("fourier mask", mask, MASKS)
        check_range("operator.center_fraction", center_fraction, 0, 1)
        check_range("operator.decay", decay, 0)
        c, h, w = self.image_shape
        self.m = resolve_count(m, self.n, "m", unit=c)
        self.output_size = 2 * self.m
        self.mask_type = mask
        self.register_buffer("kept", fourier_mask_indices(h, w, self.m // c, mask, seed, center_fraction, decay))

    def mask(self) -> torch.Tensor:
        """The (H, W) 0/1 sampling mask (DC at [0, 0])."""
        return location_mask(self.kept, self.image_shape)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        coeffs = torch.fft.fft2(x, norm="ortho").flatten(2)[..., self.kept]  # (B, C, k) complex
        return torch.cat([coeffs.real.flatten(1), coeffs.imag.flatten(1)], dim=1)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        c, h, w = self.image_shape
        real, imag = y.view(len(y), 2, c, -1).unbind(1)
        full = torch.zeros(
            len(y), c, h * w, dtype=torch.complex128 if y.dtype == torch.float64 else torch.complex64, device=y.device
        )
        full[..., self.kept] = torch.complex(real, imag)
        return torch.fft.ifft2(full.view(-1, c, h, w), norm="ortho").real

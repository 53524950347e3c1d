"""Orthonormal sparsifying bases Psi, matrix-free and batched: pixel (identity), 2-D DCT, wavelets.

``analysis`` maps images (B, C, H, W) to coefficients (B, n) and ``synthesis`` maps them back; both
are orthonormal, so synthesis is the exact inverse and the adjoint of analysis.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from csgm.errors import CsgmError, check_choice

__all__ = ["Basis", "PixelBasis", "DCTBasis", "WaveletBasis", "BASES", "build_basis", "dct_matrix"]


class Basis(nn.Module):
    """An orthonormal transform of images of ``image_shape``."""

    name = "basis"

    def __init__(self, image_shape: Sequence[int]) -> None:
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)

    @property
    def n(self) -> int:
        return math.prod(self.image_shape)

    def analysis(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Psi x: (B, C, H, W) -> (B, n)."""
        raise NotImplementedError

    def synthesis(self, c: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Psi^T c: (B, n) -> (B, C, H, W)."""
        raise NotImplementedError


class PixelBasis(Basis):
    """Psi = I: sparsity in the pixels themselves (the paper's Lasso on MNIST)."""

    name = "pixel"

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)

    def synthesis(self, c: torch.Tensor) -> torch.Tensor:
        return c.view(-1, *self.image_shape)


def dct_matrix(size: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The orthonormal DCT-II matrix D (size x size): D @ v is scipy.fft.dct(v, norm='ortho')."""
    k = torch.arange(size, dtype=torch.float64)[:, None]
    i = torch.arange(size, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * size)) * math.sqrt(2.0 / size)
    d[0] /= math.sqrt(2.0)
    return d.to(dtype)


class DCTBasis(Basis):
    """Orthonormal 2-D DCT-II per channel, applied separably (D_H X D_W^T): O(n (H + W)) work."""

    name = "dct"

    def __init__(self, image_shape: Sequence[int]) -> None:
        super().__init__(image_shape)
        self.register_buffer("rows", dct_matrix(self.image_shape[1]))
        self.register_buffer("cols", dct_matrix(self.image_shape[2]))

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        rows, cols = self.rows.to(x.dtype), self.cols.to(x.dtype)
        return (rows @ x @ cols.T).flatten(1)

    def synthesis(self, c: torch.Tensor) -> torch.Tensor:
        rows, cols = self.rows.to(c.dtype), self.cols.to(c.dtype)
        return rows.T @ c.view(-1, *self.image_shape) @ cols


def wavelet_matrix(size: int, wavelet: str) -> torch.Tensor:
    """One level of the periodized orthogonal DWT of a length-``size`` signal as a (size x size) matrix:
    the first half of the rows gives the approximation, the second half the details, exactly as
    ``pywt.dwt(v, wavelet, mode="periodization")``."""
    import numpy as np
    import pywt

    eye = np.eye(size)
    low, high = pywt.dwt(eye, wavelet, mode="periodization", axis=1)
    return torch.from_numpy(np.concatenate([low, high], axis=1).T.copy())


class WaveletBasis(Basis):
    """Orthogonal 2-D wavelet transform (Haar, Daubechies ``dbN``, ``symN``, ``coifN``) with periodic
    boundaries and ``levels`` levels: the coefficients of ``pywt.wavedec2(mode="periodization")`` in the
    layout of ``pywt.coeffs_to_array``. Each level applies small (H x H) and (W x W) matrices to the rows
    and columns of the current approximation block (separable, like the DCT: O(n (H + W)) work), so it
    is batched on any device and never forms an n x n matrix.
    """

    name = "wavelet"

    def __init__(self, image_shape: Sequence[int], wavelet: str = "db4", levels: int = 2) -> None:
        super().__init__(image_shape)
        import pywt

        if wavelet not in pywt.wavelist(kind="discrete") or not pywt.Wavelet(wavelet).orthogonal:
            raise CsgmError(
                f"wavelet={wavelet!r} is not an orthogonal discrete wavelet; use haar, db1..db38, sym2..sym20 or coif1..coif17"
            )
        if not isinstance(levels, int) or levels < 1:
            raise CsgmError(f"wavelet levels={levels} must be an integer >= 1")
        _, h, w = self.image_shape
        self.wavelet, self.levels = wavelet, levels
        deepest = 0
        while h % 2 ** (deepest + 1) == 0 and w % 2 ** (deepest + 1) == 0 and min(h, w) // 2**deepest >= 2:
            deepest += 1
        if levels > deepest:
            raise CsgmError(
                f"wavelet levels={levels} is too deep for {h}x{w} images (every level halves both sides, "
                f"which must stay even); use levels <= {deepest}" + (" or resize the images" if deepest == 0 else "")
            )
        for level in range(levels):
            rows, cols = wavelet_matrix(h >> level, wavelet), wavelet_matrix(w >> level, wavelet)
            self.register_buffer(f"rows{level}", rows)
            self.register_buffer(f"cols{level}", cols)

    def _matrices(self, level: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, f"rows{level}").to(dtype), getattr(self, f"cols{level}").to(dtype)

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        _, h, w = self.image_shape
        for level in range(self.levels):
            rows, cols = self._matrices(level, x.dtype)
            hh, ww = h >> level, w >> level
            out[..., :hh, :ww] = rows @ out[..., :hh, :ww] @ cols.T
        return out.flatten(1)

    def synthesis(self, c: torch.Tensor) -> torch.Tensor:
        out = c.view(-1, *self.image_shape).clone()
        _, h, w = self.image_shape
        for level in reversed(range(self.levels)):
            rows, cols = self._matrices(level, c.dtype)
            hh, ww = h >> level, w >> level
            out[..., :hh, :ww] = rows.T @ out[..., :hh, :ww] @ cols
        return out


BASES: dict[str, type[Basis]] = {cls.name: cls for cls in (PixelBasis, DCTBasis, WaveletBasis)}


def build_basis(name: str, image_shape: Sequence[int], **options) -> Basis:
    """The basis ``name`` (pixel, dct, wavelet) for ``image_shape``."""
    check_choice("basis", name, BASES)
    try:
        return BASES[name](image_shape, **options)
    except TypeError as exc:
        raise CsgmError(f"bad options {sorted(options)} for basis {name!r}: {exc}") from None

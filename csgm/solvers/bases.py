"""Orthonormal sparsifying bases Psi, matrix-free and batched: pixel (identity), 2-D DCT, wavelets.

``analysis`` maps images (B, C, H, W) to coefficients (B, n) and ``synthesis`` maps them back; both
are orthonormal, so synthesis is the exact inverse and the adjoint of analysis.
"""

from __future__ import annotations

import math
import warnings
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


class WaveletBasis(Basis):
    """Orthogonal 2-D wavelet transform (Haar, Daubechies ``dbN``, ``symN``, ``coifN``) with ``levels``
    levels, from the PyTorch Wavelet Toolbox (ptwt): boundary wavelets make it exactly orthonormal on
    the finite image, for any size divisible by 2^levels that is at least the filter length at the
    coarsest level.
    """

    name = "wavelet"

    def __init__(self, image_shape: Sequence[int], wavelet: str = "db4", levels: int = 2) -> None:
        super().__init__(image_shape)
        import pywt

        if wavelet not in pywt.wavelist(kind="discrete") or not pywt.Wavelet(wavelet).orthogonal:
            raise CsgmError(f"wavelet={wavelet!r} is not an orthogonal discrete wavelet; use haar, db1..db38, sym2..sym20 or coif1..coif17")
        _, h, w = self.image_shape
        filter_length = pywt.Wavelet(wavelet).dec_len
        if not isinstance(levels, int) or levels < 1:
            raise CsgmError(f"wavelet levels={levels} must be an integer >= 1")
        coarsest = (h // 2 ** (levels - 1), w // 2 ** (levels - 1))
        if h % 2**levels or w % 2**levels or min(coarsest) < filter_length:
            deepest = 0
            while h % 2 ** (deepest + 1) == 0 and w % 2 ** (deepest + 1) == 0 and min(h, w) // 2**deepest >= filter_length:
                deepest += 1
            raise CsgmError(f"wavelet levels={levels} is too deep for {wavelet} on {h}x{w} images (each level halves the size, "
                            f"which must stay even and >= the filter length {filter_length}); use levels <= {deepest}"
                            + (" or a shorter wavelet such as haar" if deepest == 0 else ""))
        self.wavelet, self.levels = wavelet, levels
        self._transforms: dict[tuple, tuple] = {}
        self._shapes: list[tuple[int, int]] | None = None

    def _pair(self, dtype: torch.dtype, device: torch.device) -> tuple:
        """ptwt builds its sparse matrices for one dtype and device on first use: keep one pair per kind."""
        key = (dtype, device)
        if key not in self._transforms:
            import ptwt
            import pywt

            wavelet = pywt.Wavelet(self.wavelet)
            self._transforms[key] = (ptwt.MatrixWavedec2(wavelet, level=self.levels), ptwt.MatrixWaverec2(wavelet))
        return self._transforms[key]

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        forward, _ = self._pair(x.dtype, x.device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # ptwt's notes on beta sparse tensors
            coeffs = forward(x)
        parts = [coeffs[0]] + [band for level in coeffs[1:] for band in level]
        if self._shapes is None:
            self._shapes = [tuple(p.shape[-2:]) for p in parts]
        return torch.cat([p.flatten(2) for p in parts], dim=2).flatten(1)

    def synthesis(self, c: torch.Tensor) -> torch.Tensor:
        if self._shapes is None:
            self.analysis(torch.zeros(1, *self.image_shape, dtype=c.dtype, device=c.device))
        _, inverse = self._pair(c.dtype, c.device)
        flat = c.view(len(c), self.image_shape[0], -1)
        sizes = [h * w for h, w in self._shapes]
        parts = [p.reshape(len(c), self.image_shape[0], *shape) for p, shape in zip(flat.split(sizes, dim=2), self._shapes)]
        coeffs = (parts[0], *[tuple(parts[i : i + 3]) for i in range(1, len(parts), 3)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return inverse(coeffs)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_transforms"] = {}  # rebuilt on first use after pickling (ddp_spawn workers)
        return state


BASES: dict[str, type[Basis]] = {cls.name: cls for cls in (PixelBasis, DCTBasis, WaveletBasis)}


def build_basis(name: str, image_shape: Sequence[int], **options) -> Basis:
    """The basis ``name`` (pixel, dct, wavelet) for ``image_shape``."""
    check_choice("basis", name, BASES)
    try:
        return BASES[name](image_shape, **options)
    except TypeError as exc:
        raise CsgmError(f"bad options {sorted(options)} for basis {name!r}: {exc}") from None

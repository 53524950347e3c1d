"""Inpainting: a diagonal 0/1 mask over pixel locations, shared by all channels."""

from __future__ import annotations

from typing import Sequence

import torch

from csgm.errors import CsgmError, check_choice
from csgm.operators.base import LinearOperator, location_mask, resolve_count
from csgm.seeding import seeded_rng

__all__ = ["InpaintOperator"]

MODES = ("random", "hole")


class InpaintOperator(LinearOperator):
    """y = the observed pixels. ``random``: m values kept at random locations (m = C x locations;
    a fraction counts of n). ``hole``: a ``hole_size`` square removed at ``hole_position``
    ([top, left]; default centred), as in the paper's inpainting figure.
    """

    name = "inpaint"
    nonnegative = True

    def __init__(
        self,
        image_shape: Sequence[int],
        mode: str = "random",
        m: int | float | None = 0.5,
        seed: int = 0,
        hole_size: int = 8,
        hole_position: Sequence[int] | None = None,
    ) -> None:
        super().__init__(image_shape)
        check_choice("inpaint mode", mode, MODES)
        c, h, w = self.image_shape
        if mode == "random":
            self.m = resolve_count(m, self.n, "m", unit=c)
            order = torch.randperm(h * w, generator=seeded_rng("inpaint", seed, self.m))
            kept = order[: self.m // c].sort().values
        else:
            if not isinstance(hole_size, int) or not 1 <= hole_size < min(h, w):
                raise CsgmError(f"hole_size={hole_size} must be an integer in [1, {min(h, w) - 1}] for {h}x{w} images")
            if hole_position is not None and len(hole_position) != 2:
                raise CsgmError(
                    f"operator.hole_position={list(hole_position)} must be [top, left] (two integers) or null"
                )
            top, left = hole_position if hole_position is not None else ((h - hole_size) // 2, (w - hole_size) // 2)
            if not (0 <= top <= h - hole_size and 0 <= left <= w - hole_size):
                raise CsgmError(f"hole_position={[top, left]} puts a {hole_size}-pixel hole outside the {h}x{w} image")
            keep = torch.ones(h, w, dtype=torch.bool)
            keep[top : top + hole_size, left : left + hole_size] = False
            kept = keep.flatten().nonzero().squeeze(1)
            self.m = c * len(kept)
        self.output_size = self.m
        self.register_buffer("kept", kept)

    def mask(self) -> torch.Tensor:
        """The (H, W) 0/1 mask of observed locations."""
        return location_mask(self.kept, self.image_shape)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2)[..., self.kept].flatten(1)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        c, h, w = self.image_shape
        out = y.new_zeros(len(y), c, h * w)
        out[..., self.kept] = y.view(len(y), c, -1)
        return out.view(-1, c, h, w)

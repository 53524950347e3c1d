"""The measurement grid of one recovery job."""

from __future__ import annotations

from typing import Sequence

from csgm.errors import CsgmError
from csgm.operators import operator_uses_m

__all__ = ["measurement_grid"]


def measurement_grid(
    measurements: Sequence[int | float] | int | float | None, operator_cfg: dict
) -> list[int | float | None]:
    """The m values to run. Operators whose m is fixed by their options (superres, blur, identity,
    inpainting a hole) run once, with [None]."""
    if not operator_uses_m(operator_cfg):
        return [None]
    if measurements is None:
        raise CsgmError("measurements is empty; give a list such as measurements=[25,50,100,200]")
    grid = list(measurements) if isinstance(measurements, (list, tuple)) else [measurements]
    if not grid:
        raise CsgmError("measurements=[] is empty; give a list such as measurements=[25,50,100,200]")
    return grid

"""The one exception type for bad user input; entry points print it as a single line."""

from __future__ import annotations

import math

__all__ = ["CsgmError", "check_choice", "check_flag", "check_range"]


class CsgmError(ValueError):
    """A user-facing error: the message names the bad value and the fix."""


def check_choice(kind: str, name: str, choices: "dict | list | tuple") -> None:
    """Raise a CsgmError if ``name`` is not one of ``choices``."""
    if name not in choices:
        raise CsgmError(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(choices))}")


def check_range(
    name: str, value: "float", low: "float | None" = None, high: "float | None" = None, low_open: bool = False
) -> None:
    """Raise a CsgmError unless ``low <= value <= high`` (``low < value`` with ``low_open``); NaN and
    infinities never pass (no setting of csgm is meaningful at infinity)."""
    below = low is not None and not (value > low if low_open else value >= low)
    above = high is not None and not value <= high
    if below or above or not math.isfinite(value):
        bounds = ">" if low_open else ">="
        wanted = (
            f"in [{low}, {high}]"
            if high is not None and low is not None and not low_open
            else " and ".join(
                t
                for t in ((f"{bounds} {low}" if low is not None else ""), (f"<= {high}" if high is not None else ""))
                if t
            )
        )
        finite = "" if math.isfinite(value) or below or above else "finite and "
        raise CsgmError(f"{name}={value!r} must be {finite}{wanted}")


def check_flag(name: str, value: object) -> bool:
    """``value`` if it is a bool; otherwise a CsgmError naming the option (a string such as 'no' is not false)."""
    if not isinstance(value, bool):
        raise CsgmError(f"{name}={value!r} must be true or false")
    return value

"""The one exception type for bad user input; entry points print it as a single line."""

from __future__ import annotations

__all__ = ["CsgmError", "check_choice", "check_flag", "check_options"]


class CsgmError(ValueError):
    """A user-facing error: the message names the bad value and the fix."""


def check_choice(kind: str, name: str, choices: "dict | list | tuple") -> None:
    """Raise a CsgmError if ``name`` is not one of ``choices``."""
    if name not in choices:
        raise CsgmError(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(choices))}")


def check_options(kind: str, options: "dict", accepted: "set[str]") -> None:
    """Raise a CsgmError naming the options of ``kind`` that are not in ``accepted`` (and listing those)."""
    unknown = set(options) - set(accepted)
    if unknown:
        raise CsgmError(f"unknown options {sorted(unknown)} for {kind}; it accepts {sorted(accepted)}")


def check_flag(name: str, value: object) -> bool:
    """``value`` if it is a bool; otherwise a CsgmError naming the option (a string such as 'no' is not false)."""
    if not isinstance(value, bool):
        raise CsgmError(f"{name}={value!r} must be true or false")
    return value

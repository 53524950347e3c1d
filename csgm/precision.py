"""The arithmetic of a recovery's solver: ``trainer.precision`` and ``matmul_precision``.

- ``trainer.precision``: ``32-true`` (default), ``64-true`` (Lightning converts the generator, the operators
  and the images: everything in float64), ``bf16-mixed`` and ``16-mixed``: the solver alone runs under
  ``torch.autocast`` (matrix products in bfloat16/float16, reductions and the optimiser's state in float32);
  the measurements are still simulated in float32 (else the problem itself would change) and the estimates
  are returned in the dtype of y.
- ``matmul_precision``: ``highest`` (default; true float32 products), ``high`` (TF32 products on GPUs
  that have them, Ampere and later) or ``medium`` (bfloat16 products where the device allows it);
  ``torch.set_float32_matmul_precision`` for the duration of the solve, then restored.

Both change numbers, so both are part of a run's identity (``precision_identity``).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Iterator

import torch

from csgm.errors import check_choice

__all__ = [
    "PRECISIONS",
    "MATMUL_PRECISIONS",
    "canonical_precision",
    "lightning_precision",
    "precision_identity",
    "solver_arithmetic",
]

PRECISIONS = ("32-true", "64-true", "bf16-mixed", "16-mixed")
MATMUL_PRECISIONS = ("highest", "high", "medium")
_ALIASES = {"32": "32-true", "64": "64-true", "16": "16-mixed", "bf16": "bf16-mixed"}
_AUTOCAST = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def canonical_precision(precision: str | int) -> str:
    """Lightning's long name of a precision setting (``bf16`` -> ``bf16-mixed``)."""
    name = _ALIASES.get(str(precision), str(precision))
    check_choice("trainer.precision", name, PRECISIONS)
    return name


def lightning_precision(precision: str | int) -> str:
    """What the recovery's Lightning Trainer is given: mixed precision is applied to the solver alone
    (``solver_arithmetic``), not to the whole step (which would simulate the measurements in it too)."""
    name = canonical_precision(precision)
    return "32-true" if name in _AUTOCAST else name


def precision_identity(precision: str | int, matmul_precision: str = "highest") -> str:
    """The arithmetic as one string of a run's identity (``32-true``, ``bf16-mixed``, ``32-true+matmul-high``)."""
    name = canonical_precision(precision)
    check_choice("matmul_precision", matmul_precision, MATMUL_PRECISIONS)
    return name if matmul_precision == "highest" else f"{name}+matmul-{matmul_precision}"


@contextmanager
def solver_arithmetic(
    precision: str | int = "32-true", matmul_precision: str = "highest", device: torch.device | str = "cpu"
) -> Iterator[None]:
    """Run the enclosed solve with the given arithmetic on ``device`` (autocast for mixed precision, the float32
    matmul precision set and restored)."""
    name = canonical_precision(precision)
    check_choice("matmul_precision", matmul_precision, MATMUL_PRECISIONS)
    device_type = torch.device(device).type
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(matmul_precision)
    autocast = torch.autocast(device_type, dtype=_AUTOCAST[name]) if name in _AUTOCAST else nullcontext()
    try:
        with autocast:
            yield
    finally:
        torch.set_float32_matmul_precision(previous)

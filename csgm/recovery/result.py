"""What one recovery run hands to reporting: its merged results, the table files to write and the labels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from csgm.recovery.store import MergedResults

__all__ = ["RecoveryResult"]


@dataclass(frozen=True)
class RecoveryResult:
    """A finished run: ``files`` (results.csv, summary.csv, reconstructions.pt, not yet in place, so that reporting
    puts them there together with its artifacts; a Path is a complete temporary file), the images' ``count``, the
    requested ``measurements`` (m per operator, in grid order), the ground truth by ids (None for a user's own
    measurements) and the labels."""

    run_dir: Path
    merged: MergedResults
    files: dict[Path, bytes | Path]
    count: int
    measurements: list[int]
    originals: Callable[[list[int]], torch.Tensor] | None
    original_label: str
    solver_label: str
    operator_name: str
    noise_label: str
    noise_std: float

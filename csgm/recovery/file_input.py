"""A user's own measurements (``input=file``): y from a file, one row per image, and A either from a file
(a dense matrix) or from the operator config with the run seed; there is no ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from csgm.errors import CsgmError
from csgm.operators import MatrixOperator, Operator, build_operator, operator_uses_m

__all__ = ["load_array", "measured_operator", "MeasuredItems", "ARRAY_SUFFIXES"]

ARRAY_SUFFIXES = (".npy", ".npz", ".pt")


def load_array(path: str | None, key: str) -> torch.Tensor:
    """A 2-D float64 tensor from a .npy, .npz (its only array) or .pt (a tensor, or a dict with one tensor) file."""
    if not path:
        raise CsgmError(f"{key} is required with input=file: give {key}=PATH to a {'/'.join(ARRAY_SUFFIXES)} file")
    file = Path(path).expanduser()
    if not file.is_file():
        raise CsgmError(f"{key}={str(file)!r} does not exist; give the path of a {'/'.join(ARRAY_SUFFIXES)} file")
    if file.suffix not in ARRAY_SUFFIXES:
        raise CsgmError(f"{key}={str(file)!r} is not a {'/'.join(ARRAY_SUFFIXES)} file")
    try:
        if file.suffix == ".pt":
            data = torch.load(file, map_location="cpu", weights_only=True)
            arrays = list(data.values()) if isinstance(data, dict) else [data]
        elif file.suffix == ".npz":
            with np.load(file, allow_pickle=False) as loaded:
                arrays = [loaded[k] for k in loaded.files]
        else:
            arrays = [np.load(file, allow_pickle=False)]
    except Exception as exc:
        raise CsgmError(
            f"{key}={str(file)!r} cannot be read ({type(exc).__name__}); save it with numpy.save or torch.save"
        ) from None
    if len(arrays) != 1:
        raise CsgmError(f"{key}={str(file)!r} holds {len(arrays)} arrays; save exactly one")
    tensor = arrays[0] if torch.is_tensor(arrays[0]) else torch.as_tensor(np.asarray(arrays[0]))
    if tensor.ndim != 2 or tensor.is_complex():
        raise CsgmError(f"{key}={str(file)!r} has shape {tuple(tensor.shape)}; it must be a 2-D real array")
    tensor = tensor.to(torch.float64)
    if not torch.isfinite(tensor).all():
        raise CsgmError(f"{key}={str(file)!r} holds NaN or infinite values")
    return tensor


def measured_operator(
    file_cfg: dict, operator_cfg: dict, grid: Sequence, image_shape: Sequence[int], seed: int, y: torch.Tensor
) -> Operator:
    """A from ``file.matrix``, or from the operator config (its m the one value of the grid); y's length must match."""
    if file_cfg.get("matrix"):
        operator = MatrixOperator(image_shape, load_array(file_cfg["matrix"], "file.matrix"))
        where = f"file.matrix has {operator.m} rows"
    else:
        if operator_uses_m(operator_cfg) and len(grid) != 1:
            raise CsgmError(
                f"input=file measures each image once: give the m of your measurements as one value, "
                f"e.g. measurements=[{y.shape[1]}] (got {list(grid)})"
            )
        operator = build_operator(operator_cfg, image_shape, seed, grid[0])
        where = f"operator {operator.name!r} with m={operator.m} measures {operator.output_size} numbers"
    if operator.output_size != y.shape[1]:
        raise CsgmError(
            f"file.y has shape {tuple(y.shape)} ({y.shape[1]} numbers per image) but {where}; they must agree"
        )
    return operator


class MeasuredItems(Dataset):
    """Item = (y row, image id = row index, 0) for the rows not yet in the results store."""

    def __init__(self, y: torch.Tensor, image_ids: Sequence[int]) -> None:
        self.y, self.ids = y.float(), list(image_ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        return self.y[self.ids[i]], self.ids[i], 0

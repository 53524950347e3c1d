"""A user's own measurements (``input=file``): y from a file, one row per image, and A either from a file
(a dense matrix) or from the operator config with the run seed; there is no ground truth."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from csgm.errors import CsgmError
from csgm.operators import MatrixOperator, Operator, build_operator, operator_uses_m

__all__ = ["load_array", "check_matrix", "measured_operator", "MeasuredItems", "ARRAY_SUFFIXES"]

ARRAY_SUFFIXES = (".npy", ".npz", ".pt")


def load_array(path: str | None, key: str) -> torch.Tensor:
    """A 2-D float64 tensor from a .npy, .npz (its only array) or .pt (a tensor, or a dict with one tensor) file;
    every other content (a folder, a sparse matrix, complex, integer, object or text values, NaN, values beyond
    float32) is refused in one line that names ``key`` and the fix."""
    if not path:
        raise CsgmError(f"{key} is required with input=file: give {key}=PATH to a {'/'.join(ARRAY_SUFFIXES)} file")
    file = Path(path).expanduser()
    where = f"{key}={str(file)!r}"
    if file.is_dir():
        raise CsgmError(f"{where} is a folder; give the path of a {'/'.join(ARRAY_SUFFIXES)} file inside it")
    if not file.is_file():
        raise CsgmError(f"{where} does not exist; give the path of a {'/'.join(ARRAY_SUFFIXES)} file")
    if file.suffix not in ARRAY_SUFFIXES:
        raise CsgmError(f"{where} is not a {'/'.join(ARRAY_SUFFIXES)} file")
    arrays = _read_arrays(file, where)
    if len(arrays) != 1:
        raise CsgmError(f"{where} holds {len(arrays)} arrays; save exactly one")
    return _real_matrix(arrays[0], where)


def _read_arrays(file: Path, where: str) -> list:
    """The arrays (numpy or torch) stored in ``file``; nothing in it runs."""
    try:
        if file.suffix == ".pt":
            data = torch.load(file, map_location="cpu", weights_only=True)
            return list(data.values()) if isinstance(data, dict) else [data]
        if file.suffix == ".npy":
            return [np.load(file, allow_pickle=False)]
        with np.load(file, allow_pickle=False) as loaded:
            if {"format", "shape", "indptr"} <= set(loaded.files):
                raise CsgmError(
                    f"{where} is a scipy sparse matrix (scipy.sparse.save_npz); save it dense: "
                    "numpy.save(PATH, matrix.toarray())"
                )
            return [loaded[k] for k in loaded.files]
    except CsgmError:
        raise
    except Exception as exc:
        if "allow_pickle" in str(exc):
            raise CsgmError(
                f"{where} holds an object array (Python objects), which is not loaded (nothing in the file runs); "
                "save numbers: numpy.save(PATH, numpy.asarray(values, dtype=float))"
            ) from None
        raise CsgmError(
            f"{where} cannot be read ({type(exc).__name__}); save it with numpy.save or torch.save"
        ) from None


def _real_matrix(array: object, where: str) -> torch.Tensor:
    """``array`` as a finite, float32-representable 2-D float64 tensor, or a one-line reason why it is not."""
    if torch.is_tensor(array) and array.layout != torch.strided:
        raise CsgmError(f"{where} is a sparse tensor; save it dense: torch.save(tensor.to_dense(), PATH)")
    if torch.is_tensor(array):
        array = array.detach().float() if array.dtype == torch.bfloat16 else array.detach()  # numpy has no bfloat16
    try:
        values = array.numpy() if torch.is_tensor(array) else np.asarray(array)
    except (TypeError, ValueError):  # ragged lists, mixed types
        raise CsgmError(f"{where} holds a {type(array).__name__}, not an array; save one with numpy.save") from None
    kind = values.dtype.kind
    if kind == "c":
        raise CsgmError(
            f"{where} holds complex numbers ({values.dtype}); csgm measures real vectors: save the real and "
            "imaginary parts side by side (numpy.concatenate([y.real, y.imag], axis=1)), as the fourier operator does"
        )
    if kind in "iub":
        raise CsgmError(
            f"{where} holds {'booleans' if kind == 'b' else 'integers'} ({values.dtype}); measurements and matrices "
            "are real numbers in the units of A x (Poisson counts divided by noise.scale): save them as floats, "
            "e.g. numpy.save(PATH, values.astype('float64'))"
        )
    if kind != "f":
        raise CsgmError(f"{where} holds {values.dtype} values, not numbers; save a float array with numpy.save")
    if values.ndim != 2:
        raise CsgmError(f"{where} has shape {values.shape}; it must be a 2-D real array")
    tensor = torch.from_numpy(values.astype(np.float64))
    if not torch.isfinite(tensor).all():
        raise CsgmError(f"{where} holds NaN or infinite values")
    largest = float(tensor.abs().max()) if tensor.numel() else 0.0
    if largest > torch.finfo(torch.float32).max:
        raise CsgmError(
            f"{where} holds values up to {largest:.3g}, beyond float32 ({torch.finfo(torch.float32).max:.3g}), "
            "which csgm computes in; rescale them (and A, or noise.std, with them)"
        )
    return tensor


def measured_operator(
    file_cfg: dict, operator_cfg: dict, grid: Sequence, image_shape: Sequence[int], seed: int, y: torch.Tensor
) -> Operator:
    """A from ``file.matrix``, or from the operator config (its m the one value of the grid); y's length must match."""
    if file_cfg.get("matrix"):
        matrix = load_array(file_cfg["matrix"], "file.matrix")
        operator = MatrixOperator(image_shape, matrix)
        check_matrix(matrix)
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


def check_matrix(matrix: torch.Tensor, key: str = "file.matrix") -> None:
    """Refuse a matrix that cannot measure an image: all zeros, rows of zeros, or rank below min(m, n) / 2; warn in
    one stderr line about duplicate rows (they measure the same thing twice)."""
    m, n = matrix.shape
    zero_rows = (matrix == 0).all(dim=1).nonzero().flatten().tolist()
    if len(zero_rows) == m:
        raise CsgmError(f"{key} is all zeros; it measures nothing: give the matrix your measurements were taken with")
    if zero_rows:
        raise CsgmError(
            f"{key} has {len(zero_rows)} rows of zeros (rows {_listed(zero_rows)}), which measure nothing; "
            "remove them from the matrix and the same columns from file.y"
        )
    rank = int(torch.linalg.matrix_rank(matrix))
    if rank < min(m, n) / 2:
        raise CsgmError(
            f"{key} has rank {rank}, far below min(m, n) = {min(m, n)}: its {m} rows measure only {rank} independent "
            "directions; check how the matrix was saved (a repeated or truncated block) or give the full matrix"
        )
    duplicates = m - len(torch.unique(matrix, dim=0))
    if duplicates:
        print(
            f"csgm: warning: {key} has {duplicates} duplicate row(s), which measure the same thing twice; "
            "remove them from the matrix and the same columns from file.y if that was not intended",
            file=sys.stderr,
            flush=True,
        )


def _listed(indices: list[int], shown: int = 5) -> str:
    """'3, 7, 9' or '3, 7, 9, 12, 15, ... (40 in all)'."""
    more = f", ... ({len(indices)} in all)" if len(indices) > shown else ""
    return ", ".join(map(str, indices[:shown])) + more


class MeasuredItems(Dataset):
    """Item = (y row, image id = row index, 0) for the rows not yet in the results store."""

    def __init__(self, y: torch.Tensor, image_ids: Sequence[int]) -> None:
        self.y, self.ids = y.float(), list(image_ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        return self.y[self.ids[i]], self.ids[i], 0

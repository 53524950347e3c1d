"""Recover images in a notebook in one call: ``csgm.reconstruct(y, A, generator)``.

``y`` and ``A`` may be numpy arrays or torch tensors of any real dtype (float64 included), ``A`` a dense (m, n)
matrix or a csgm operator; the generator a ``Generator`` or the path of a checkpoint from train.py; the solver a
``conf/solver`` name (with options as keyword arguments) or a ``Solver``. The measurement model is the paper's
(Gaussian noise of ``noise_std``), seeded by ``seed`` and the image ids, as in ``recover.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from csgm.errors import CsgmError
from csgm.generators import Generator
from csgm.measurement import MeasurementModel
from csgm.operators import Operator, build_noise
from csgm.operators.matrix import MatrixOperator
from csgm.solvers import Solver, build_solver

__all__ = ["Reconstruction", "reconstruct"]


@dataclass(frozen=True)
class Reconstruction:
    """What ``reconstruct`` returns for B images (tensors on the CPU)."""

    x_hat: torch.Tensor  # (B, C, H, W) in [0, 1]
    measurement_loss: torch.Tensor  # (B,) the data term of x_hat (||A x_hat - y||^2 for Gaussian noise)
    z: torch.Tensor | None = None  # (B, k) the latent of x_hat, for generative solvers
    samples: torch.Tensor | None = None  # (B, S, C, H, W) posterior samples, for samplers
    pixel_std: torch.Tensor | None = None  # (B, C, H, W) posterior standard deviation per pixel, for samplers


def as_real_tensor(name: str, value: Any) -> torch.Tensor:
    """``value`` (numpy, torch, nested lists) as a float32 tensor, or one line saying why it cannot be one."""
    if value is None:
        raise CsgmError(f"{name}=None: pass an array (numpy or torch)")
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
    else:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise CsgmError(
                f"{name} is not an array ({type(exc).__name__}: {exc}); pass a numpy array or a torch tensor of numbers"
            ) from None
        if array.dtype == object or array.dtype.kind in "USV":
            raise CsgmError(f"{name} has dtype {array.dtype}: pass numbers (a float or integer array)")
        tensor = torch.from_numpy(array.copy())
    if tensor.is_complex():
        raise CsgmError(
            f"{name} is complex ({tensor.dtype}): pass real values (e.g. the magnitudes of phase "
            "retrieval measurements, or the real and imaginary parts stacked)"
        )
    if tensor.is_sparse:
        tensor = tensor.to_dense()
    tensor = tensor.float()
    if not torch.isfinite(tensor).all():
        raise CsgmError(f"{name} holds NaN or inf values (or values beyond float32's range); pass finite numbers")
    return tensor


def _generator(generator: Generator | str | Path | None) -> Generator | None:
    if generator is None or isinstance(generator, Generator):
        return generator
    if isinstance(generator, (str, Path)):
        from csgm.generators.checkpoint import load_generator

        return load_generator(generator)[0]
    raise CsgmError(
        f"generator={type(generator).__name__} is not a csgm Generator; pass one, a checkpoint path or None"
    )


def _operator(A: Any, image_shape: Sequence[int] | None) -> Operator:
    if isinstance(A, Operator):
        return A
    if image_shape is None:
        raise CsgmError("a dense A needs the image shape: pass a generator or image_shape=(C, H, W)")
    matrix = as_real_tensor("A", A)
    if matrix.ndim != 2:
        raise CsgmError(f"A has shape {tuple(matrix.shape)}: pass a 2-D (m, n) matrix or a csgm operator")
    return MatrixOperator(image_shape, matrix)


def _solver(solver: str | Solver, options: dict[str, Any]) -> Solver:
    if isinstance(solver, Solver):
        if options:
            raise CsgmError(f"options {sorted(options)} go with a solver name; a Solver object already has its options")
        return solver
    if not isinstance(solver, str):
        raise CsgmError(f"solver={solver!r} must be a conf/solver name (e.g. 'csgm') or a csgm Solver")
    from hydra.errors import HydraException

    from csgm.api import compose
    from csgm.cli import plain, user_error_line

    try:
        cfg = plain(compose("recover", [f"solver={solver}"]))["solver"]
    except HydraException as exc:  # an unknown name: Hydra's message lists the choices
        raise CsgmError(user_error_line(exc)) from None
    return build_solver({**cfg, **options})


def reconstruct(
    y: Any,
    A: Any,
    generator: Generator | str | Path | None = None,
    solver: str | Solver = "csgm",
    noise_std: float | None = 0.1,
    seed: int = 0,
    image_ids: Sequence[int] | None = None,
    image_shape: Sequence[int] | None = None,
    **options: Any,
) -> Reconstruction:
    """x_hat from measurements ``y`` (B, m) or (m,) of ``A``: ``csgm.reconstruct(y, A, "last.ckpt")``.

    ``noise_std`` is the Gaussian noise level the data term assumes (None or 0: no noise); ``options`` override
    the solver config's (e.g. ``restarts=5, iterations=300``); ``image_ids`` (default 0..B-1) and ``seed`` seed
    the starts, as in ``recover.py``. Solvers whose hyperparameter is chosen on validation images (``auto``)
    need a value here.
    """
    generator = _generator(generator)
    operator = _operator(A, image_shape if image_shape is not None else getattr(generator, "image_shape", None))
    measurements = as_real_tensor("y", y)
    if measurements.ndim == 1:
        measurements = measurements.unsqueeze(0)
    if measurements.ndim != 2 or measurements.shape[1] != operator.output_size:
        raise CsgmError(
            f"y has shape {tuple(measurements.shape)} but A gives {operator.output_size} values per "
            f"image; pass y as (images, {operator.output_size})"
        )
    if generator is not None and tuple(generator.image_shape) != tuple(operator.image_shape):
        raise CsgmError(
            f"A acts on {'x'.join(map(str, operator.image_shape))} images but the generator makes "
            f"{'x'.join(map(str, generator.image_shape))}"
        )
    chosen = _solver(solver, options)
    if chosen.needs_tuning:
        raise CsgmError(
            f"solver {solver!r} chooses {chosen.tunable} on validation images ({chosen.tunable}=auto); "
            f"pass {chosen.tunable}=VALUE"
        )
    if chosen.needs_generator and generator is None:
        raise CsgmError(f"solver {solver!r} needs a generator: pass generator= a Generator or a checkpoint path")
    noise = build_noise({"name": "none"} if not noise_std else {"name": "gaussian", "std": float(noise_std)})
    model = MeasurementModel(operator, noise, seed)
    chosen.check_operator(operator)
    ids = list(range(len(measurements))) if image_ids is None else [int(i) for i in image_ids]
    if len(ids) != len(measurements):
        raise CsgmError(f"image_ids has {len(ids)} ids for {len(measurements)} rows of y; give one id per row")
    with torch.enable_grad():
        out = chosen.solve(measurements, model, ids, generator, seed)
    return Reconstruction(
        out.x_hat.detach().cpu(),
        out.measurement_loss.detach().cpu(),
        None if out.z is None else out.z.detach().cpu(),
        out.samples,
        out.pixel_std,
    )

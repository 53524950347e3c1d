"""csgm: compressed sensing with generative models (Bora, Jalal, Price, Dimakis, ICML 2017).

The public API, for notebooks and scripts (the command line uses the same functions)::

    import csgm, torch
    generator, _ = csgm.load_generator(csgm.resolve_checkpoint("latest", "outputs"))
    test = csgm.load_splits({"name": "mnist10k"})["test"]
    ids = list(range(8))
    x = torch.stack([test[i][0] for i in ids])
    operator = csgm.build_operator({"name": "gaussian"}, generator.image_shape, seed=0, m=100)
    y = csgm.MeasurementModel(operator, csgm.GaussianNoise(0.1), seed=0).measure(x, ids)
    out = csgm.build_solver({"name": "csgm", "restarts": 5, "iterations": 300}).solve(y, operator, ids, generator)
    print(csgm.image_metrics(out.x_hat, x)["mse"].mean())

Names are imported on first use, so ``import csgm`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "CsgmError": "csgm.errors",
    "compose": "csgm.api",
    "recover": "csgm.recovery.run",
    "train": "csgm.training.run",
    "load_splits": "csgm.data",
    "load_generator": "csgm.generators.checkpoint",
    "resolve_checkpoint": "csgm.recovery.paths",
    "Generator": "csgm.generators",
    "build_generator": "csgm.generators",
    "Operator": "csgm.operators",
    "LinearOperator": "csgm.operators",
    "build_operator": "csgm.operators",
    "Noise": "csgm.operators",
    "GaussianNoise": "csgm.operators",
    "build_noise": "csgm.operators",
    "MeasurementModel": "csgm.measurement",
    "MatrixOperator": "csgm.operators.matrix",
    "reconstruct": "csgm.reconstruct",
    "Reconstruction": "csgm.reconstruct",
    "Solver": "csgm.solvers",
    "SolverOutput": "csgm.solvers",
    "build_solver": "csgm.solvers",
    "image_metrics": "csgm.metrics",
    "per_pixel_error": "csgm.metrics",
    "psnr": "csgm.metrics",
    "ssim": "csgm.metrics",
    "mean_ci95": "csgm.metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'csgm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

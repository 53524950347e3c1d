"""The representation error min_z ||G(z) - x||^2 / n as a torchmetrics Metric, for logging during training.

Sums and counts are the metric's states (summed across processes), so ``val/range_error`` is the mean over
every image any rank evaluated, correct under DDP. The latent search is CSGM with A = I and a cheap budget;
it draws no global random numbers and writes no parameter gradients, so training is unchanged by it.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from csgm.generators import Generator
from csgm.measurement import MeasurementModel
from csgm.metrics import per_pixel_error
from csgm.operators import build_operator
from csgm.solvers import build_solver

__all__ = ["RangeError"]


class RangeError(Metric):
    """Mean of min_z ||G(z) - x||^2 / n over the images given to ``update``."""

    full_state_update = False

    def __init__(self, restarts: int = 1, iterations: int = 50, lr: float = 0.05) -> None:
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.solver_options = {"name": "csgm", "restarts": restarts, "iterations": iterations, "lr": lr}

    def update(self, generator: Generator, x: torch.Tensor, image_ids: list[int]) -> None:
        model = MeasurementModel(build_operator({"name": "identity"}, generator.image_shape).to(x.device))
        was_training = generator.training
        generator.eval()
        out = build_solver(self.solver_options).solve(model.measure(x, image_ids), model, image_ids, generator, seed=0)
        generator.train(was_training)
        errors = per_pixel_error(out.x_hat.double(), x.double())
        self.total += errors.sum()
        self.count += len(errors)

    def compute(self) -> torch.Tensor:
        return self.total / self.count.clamp_min(1)

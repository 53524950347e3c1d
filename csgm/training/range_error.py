"""The representation error min_z ||G(z) - x||^2 / n as a torchmetrics Metric, for logging during training.

Sums and counts are the metric's states (summed across processes), so ``val/range_error`` is the mean over
every image any rank evaluated, correct under DDP. The latent search is CSGM with A = I and a cheap budget;
it draws no global random numbers and writes no parameter gradients, so training is unchanged by it.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from csgm.evaluation.generator_metrics import range_errors
from csgm.generators import Generator

__all__ = ["RangeError"]


class RangeError(Metric):
    """Mean of min_z ||G(z) - x||^2 / n over the images given to ``update``."""

    full_state_update = False

    def __init__(self, restarts: int = 1, iterations: int = 50, lr: float = 0.05) -> None:
        super().__init__()
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.search = {"restarts": restarts, "iterations": iterations, "lr": lr}

    def update(self, generator: Generator, x: torch.Tensor, image_ids: list[int]) -> None:
        was_training = generator.training
        generator.eval()
        errors = range_errors(generator, x, image_ids, **self.search)
        generator.train(was_training)
        self.total += errors.sum()
        self.count += len(errors)

    def compute(self) -> torch.Tensor:
        return self.total / self.count.clamp_min(1)

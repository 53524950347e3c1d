"""CSGM through a diffusion prior's sampler: the deterministic DDIM map with ``ddim_steps`` steps from x_T = z to
an image is a generator G(z) with z of the image's size (its output unclipped during the search, so that pixels
pushed outside [0, 1] keep their gradient; x_hat is clipped), and CSGM (restarts, halving, start banks, every option of
csgm.solvers.csgm) optimises z through it unchanged. Each evaluation of G is ``ddim_steps`` network evaluations,
each backward pass through G as many backward passes through the network: ``generator_evaluations`` and ``vjps``
count network evaluations (NFEs).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import torch

from csgm.errors import check_range
from csgm.generators import Generator
from csgm.generators.diffusion import require_diffusion
from csgm.measurement import MeasurementModel
from csgm.operators import Operator
from csgm.solvers.base import SolverOutput
from csgm.solvers.csgm import CSGMSolver

__all__ = ["CSGMDDIMSolver"]


class CSGMDDIMSolver(CSGMSolver):
    """CSGM over the initial noise of a diffusion prior's DDIM sampler (``ddim_steps`` steps)."""

    name = "csgm_ddim"
    needs_diffusion = True

    def __init__(self, ddim_steps: int = 5, **csgm_options) -> None:
        check_range("solver.ddim_steps", ddim_steps, 1)
        super().__init__(**csgm_options)
        self.ddim_steps = int(ddim_steps)

    def solve(
        self,
        y: torch.Tensor,
        measurement: MeasurementModel | Operator,
        image_ids: Sequence[int],
        generator: Generator | None = None,
        seed: int = 0,
    ) -> SolverOutput:
        sampler = require_diffusion(generator, self.label).with_sample_steps(self.ddim_steps, clip=False)
        out = super().solve(y, measurement, image_ids, sampler, seed)
        return dataclasses.replace(
            out, generator_evaluations=out.generator_evaluations * self.ddim_steps, vjps=out.vjps * self.ddim_steps
        )

"""CS-DIP (Van Veen, Jalal, Soltanolkotabi, Price, Vishwanath, Dimakis 2018): an untrained convolutional
generator per image, its weights fitted to that image's measurements. For users with no training data.

Each image gets its own network G_w(u) with a fixed random input u, both seeded by (seed, image id); the
weights of all images are stacked and run as one batch (``torch.func.functional_call`` under ``vmap``), and
Adam updates them together (elementwise, so no image's weights ever depend on another's). The objective is
the measurement model's data term plus ``tv_weight`` times the total variation of G_w(u) (the paper's
regulariser); early stopping after ``iterations`` steps is the implicit prior.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from csgm.errors import check_range
from csgm.generators import Generator
from csgm.measurement import MeasurementModel
from csgm.operators import Operator
from csgm.seeding import derive_seed, seeded_rng
from csgm.solvers.base import Solver, SolverOutput
from csgm.progress import report_steps

__all__ = ["DIPSolver", "DIPNetwork", "total_variation"]


class DIPNetwork(nn.Module):
    """u (input_channels, H/4, W/4) -> conv/leaky ReLU, upsample to H/2 x W/2 -> conv/leaky ReLU, upsample to
    H x W -> conv: a small deep-decoder-style network (no normalisation, so it runs under vmap). The output is
    linear (clipped to [0, 1] only at the end): a sigmoid output stalled on dark images in our tests."""

    def __init__(self, image_shape: Sequence[int], channels: int = 32, input_channels: int = 16) -> None:
        super().__init__()
        self.image_shape = tuple(image_shape)
        c, h, w = self.image_shape
        self.sizes = [(-(-h // 4), -(-w // 4)), (-(-h // 2), -(-w // 2)), (h, w)]
        self.input_shape = (input_channels, *self.sizes[0])
        self.first = nn.Conv2d(input_channels, channels, 3, padding=1)
        self.middle = nn.Conv2d(channels, channels, 3, padding=1)
        self.last = nn.Conv2d(channels, c, 3, padding=1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.first(u), 0.2)
        h = F.leaky_relu(self.middle(F.interpolate(h, size=self.sizes[1], mode="bilinear", align_corners=False)), 0.2)
        return self.last(F.interpolate(h, size=self.sizes[2], mode="bilinear", align_corners=False))


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation per image: sum of absolute horizontal and vertical differences."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).sum(1) + (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(
        1
    ).sum(1)


class DIPSolver(Solver):
    """One untrained network per image, all fitted at once."""

    name = "dip"
    work_options = {"iterations": 1}

    def __init__(
        self,
        iterations: int = 1000,
        lr: float = 0.01,
        channels: int = 32,
        input_channels: int = 16,
        tv_weight: float = 0.0,
        label: str | None = None,
    ) -> None:
        for key, value in (
            ("iterations", iterations),
            ("lr", lr),
            ("channels", channels),
            ("input_channels", input_channels),
        ):
            check_range(f"solver.{key}", value, 0, low_open=True)
        check_range("solver.tv_weight", tv_weight, 0)
        self.iterations, self.lr, self.tv_weight = int(iterations), float(lr), float(tv_weight)
        self.channels, self.input_channels = int(channels), int(input_channels)
        self.label = label or self.name

    def networks(self, image_shape: Sequence[int], image_ids: Sequence[int], seed: int, device, dtype):
        """(a template network, stacked per-image weights, per-image inputs u), all seeded per (seed, image id)."""
        template = DIPNetwork(image_shape, self.channels, self.input_channels)
        weights = []
        for image_id in image_ids:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(derive_seed("dip_weights", seed, int(image_id)))
                weights.append(DIPNetwork(image_shape, self.channels, self.input_channels))
        stacked, _ = torch.func.stack_module_state(weights)
        stacked = {k: v.to(device=device, dtype=dtype).detach().requires_grad_(True) for k, v in stacked.items()}
        inputs = torch.stack(
            [0.1 * torch.rand(template.input_shape, generator=seeded_rng("dip_input", seed, int(i))) for i in image_ids]
        ).to(device=device, dtype=dtype)
        return template.to(device=device, dtype=dtype), stacked, inputs

    def solve(
        self,
        y: torch.Tensor,
        measurement: MeasurementModel | Operator,
        image_ids: Sequence[int],
        generator: Generator | None = None,
        seed: int = 0,
    ) -> SolverOutput:
        measurement = self.accepted(measurement)
        template, weights, inputs = self.networks(measurement.operator.image_shape, image_ids, seed, y.device, y.dtype)

        def one(params: dict, u: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(template, params, (u[None],))[0]

        images = torch.func.vmap(one)
        optimizer = torch.optim.Adam(weights.values(), lr=self.lr)
        for step in range(self.iterations):
            report_steps(step, self.iterations)
            optimizer.zero_grad(set_to_none=True)
            with torch.enable_grad():
                x = images(weights, inputs)
                loss = measurement.data_term(measurement.predict(x), y)
                if self.tv_weight:
                    loss = loss + self.tv_weight * total_variation(x)
                loss.sum().backward()
            optimizer.step()
        with torch.no_grad():
            x_hat = images(weights, inputs).clamp(0, 1)
        count = len(y)
        return SolverOutput(
            x_hat=x_hat,
            measurement_loss=measurement.loss(x_hat, y),
            iterations=torch.full((count,), self.iterations, dtype=torch.long),
            dropped_restarts=torch.zeros(count, dtype=torch.long),
            all_restarts_diverged=~torch.isfinite(x_hat.flatten(1)).all(1).cpu(),
        )

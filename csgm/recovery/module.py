"""The recovery LightningModule: for each batch of test images and each m, y = A x + noise -> solver -> rows."""

from __future__ import annotations

import time
from typing import Any, Sequence

import pytorch_lightning as pl
import torch

from csgm.generators import Generator
from csgm.metrics import image_metrics
from csgm.operators import LinearOperator, Noise, build_operator
from csgm.seeding import seeded_generator
from csgm.solvers import Solver

__all__ = ["RecoveryModule", "gen_span_images"]


def gen_span_images(generator: Generator, image_ids: Sequence[int], seed: int) -> torch.Tensor:
    """Images x = G(z*) with z* ~ N(0, I) seeded per image id: recovery with no representation error."""
    z = torch.stack([torch.randn(generator.latent_dim, generator=seeded_generator("gen_span", seed, int(i))) for i in image_ids])
    device = next(generator.parameters()).device
    with torch.no_grad():
        return generator(z.to(device)).clamp(0, 1)


class RecoveryModule(pl.LightningModule):
    """Runs ``solver`` in ``predict_step`` (needs ``Trainer(inference_mode=False)``) for every m of the grid.

    Operators are rebuilt from (operator config, image shape, seed, m) on every rank, so every rank
    measures with the same A; noise and latent starts are seeded per image id. ``done`` holds the
    (m, image id) pairs already stored, which are skipped (resume).
    """

    def __init__(self, generator: Generator | None, solver: Solver, operator_cfg: dict, noise: Noise,
                 grid: Sequence[int | float | None], seed: int, image_shape: Sequence[int], input_mode: str = "test",
                 done: set[tuple[int, int]] | None = None, labels: dict[str, str] | None = None) -> None:
        super().__init__()
        self.generator = generator
        if generator is not None:
            generator.eval().requires_grad_(False)
        self.solver, self.operator_cfg, self.noise = solver, dict(operator_cfg), noise
        self.seed, self.image_shape, self.input_mode = seed, tuple(image_shape), input_mode
        self.done = set(done or ())
        self.labels = labels or {}
        self.operators = torch.nn.ModuleList([build_operator(self.operator_cfg, self.image_shape, seed, m) for m in grid])

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> list[tuple[list[dict[str, Any]], torch.Tensor]]:
        images, ids = batch
        ids = [int(i) for i in ids]
        if self.input_mode == "gen_span":
            images = gen_span_images(self.generator, ids, self.seed)
        results = []
        for operator in self.operators:
            todo = [j for j, i in enumerate(ids) if (operator.m, i) not in self.done]
            if todo:
                results.append(self._recover(operator, images[todo], [ids[j] for j in todo]))
        return results

    def _recover(self, operator: LinearOperator, x: torch.Tensor, ids: list[int]) -> tuple[list[dict[str, Any]], torch.Tensor]:
        y = self.noise(operator(x), ids, key=(self.seed, operator.name, operator.m))
        start = time.perf_counter()
        out = self.solver.solve(y, operator, ids, self.generator, self.seed)
        seconds = (time.perf_counter() - start) / len(ids)
        x_hat = out.x_hat.detach().clamp(0, 1)
        metrics = image_metrics(x_hat, x)
        failed = out.extra.get("all_restarts_diverged", torch.zeros(len(ids), dtype=torch.bool))
        rows = [{
            "solver": self.labels.get("solver", self.solver.name), "operator": self.labels.get("operator", operator.name),
            "noise": self.labels.get("noise", self.noise.kind), "m": operator.m, "image_id": image_id,
            "mse": float(metrics["mse"][j]), "psnr": float(metrics["psnr"][j]), "ssim": float(metrics["ssim"][j]),
            "measurement_loss": float(out.measurement_loss[j]), "iterations": int(out.iterations[j]),
            "dropped_restarts": int(out.dropped_restarts[j]),
            "status": "all_restarts_diverged" if bool(failed[j]) else "ok", "seconds": seconds,
        } for j, image_id in enumerate(ids)]
        return rows, x_hat.cpu()

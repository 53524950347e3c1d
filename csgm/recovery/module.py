"""The recovery LightningModule and its work items: one item per (m, image) still to recover."""

from __future__ import annotations

import time
from typing import Any, Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import Dataset

from csgm.generators import Generator
from csgm.measurement import MeasurementModel
from csgm.metrics import image_metrics
from csgm.precision import solver_arithmetic
from csgm.recovery.store import posterior_metrics, result_rows
from csgm.seeding import seeded_rng
from csgm.solvers import Solver

__all__ = ["RecoveryModule", "WorkItems", "gen_span_images", "gen_span_latents"]


def gen_span_latents(generator: Generator, image_ids: Sequence[int], seed: int) -> torch.Tensor:
    """z* from G's prior per image id (seeded): the latents of the ``gen_span`` images."""
    return torch.cat([generator.sample_latents(1, seeded_rng("gen_span", seed, int(i))) for i in image_ids])


def gen_span_images(generator: Generator, image_ids: Sequence[int], seed: int) -> torch.Tensor:
    """Images x = G(z*) with z* ~ N(0, I) seeded per image id: recovery with no representation error."""
    device = next(generator.parameters()).device
    with torch.no_grad():
        return generator(gen_span_latents(generator, image_ids, seed).to(device)).clamp(0, 1)


class WorkItems(Dataset):
    """Item = (image, image id, index of m in the grid) for every pair not yet in the results store.

    Filtering before the loader means a resumed run only spreads the remaining work over the ranks.
    """

    def __init__(self, images: Dataset, pairs: Sequence[tuple[int, int]]) -> None:
        self.images, self.pairs = images, list(pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        grid_index, image_id = self.pairs[i]
        return self.images[image_id][0], image_id, grid_index


class RecoveryModule(pl.LightningModule):
    """Runs the solver of each m in ``predict_step`` (needs ``Trainer(inference_mode=False)``).

    Measurement models are built once per m from (operator config, image shape, seed, m) on every rank, so
    all ranks measure with the same A; noise and latent starts are seeded per image id, so no result
    depends on the batch, the rank or the number of devices. ``settings`` holds, per m, the solver and
    the options chosen for it on the validation split (recorded with every row).
    """

    def __init__(
        self,
        generator: Generator | None,
        settings: Sequence[tuple[Solver, dict]],
        measurements: Sequence[MeasurementModel],
        seed: int,
        input_mode: str = "test",
        labels: dict[str, str] | None = None,
        arithmetic: tuple[str, str] = ("32-true", "highest"),
    ) -> None:
        super().__init__()
        self.generator = generator
        if generator is not None:
            generator.eval().requires_grad_(False)
        self.settings, self.measurements, self.seed, self.input_mode = (
            list(settings),
            list(measurements),
            seed,
            input_mode,
        )
        self.operators = torch.nn.ModuleList(model.operator for model in measurements)  # moved with the module
        self.labels = labels or {}
        self.arithmetic = arithmetic  # (trainer.precision, matmul_precision) of the solve (csgm.precision)

    def predict_step(
        self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> list[tuple[list[dict[str, Any]], torch.Tensor, dict]]:
        """Items are images (measured here), or with ``input_mode='file'`` the given measurements y."""
        data, ids, grid_index = batch
        if self.input_mode == "gen_span":
            data = gen_span_images(self.generator, ids.tolist(), self.seed)
        results = []
        for j in sorted(set(grid_index.tolist())):
            pick = (grid_index == j).nonzero().squeeze(1)
            measurement, picked_ids = self.measurements[j], ids[pick].tolist()
            if self.input_mode == "file":
                x, y = None, data[pick].to(measurement.operator.dtype)
            else:
                x = data[pick]
                y = measurement.measure(x, picked_ids)
            results.append(self._recover(j, x, y, picked_ids))
        return results

    def _recover(
        self, j: int, x: torch.Tensor | None, y: torch.Tensor, ids: list[int]
    ) -> tuple[list[dict[str, Any]], torch.Tensor, dict]:
        """Solve for the j-th m; metrics against x when there is ground truth (no error columns otherwise)."""
        (solver, params), measurement = self.settings[j], self.measurements[j]
        start = time.perf_counter()
        with solver_arithmetic(*self.arithmetic, device=y.device):
            out = solver.solve(y, measurement, ids, self.generator, self.seed)
        out = out.floating_as(y.dtype)
        seconds = (time.perf_counter() - start) / len(ids)
        out.x_hat = out.x_hat.detach().clamp(0, 1)
        metrics = image_metrics(out.x_hat, x, measurement.operator.scale_invariant) if x is not None else None
        names = {
            "solver": self.labels.get("solver", solver.name),
            "operator": self.labels.get("operator", measurement.operator.name),
            "noise": self.labels.get("noise", measurement.noise.name),
        }
        rows = result_rows(
            out, metrics, ids, names, measurement, solver.health_limits, seconds, params, posterior_metrics(out, x)
        )
        posterior = {} if out.samples is None else {"samples": out.samples, "pixel_std": out.pixel_std}
        return rows, torch.nan_to_num(out.x_hat, nan=0.0).cpu(), posterior

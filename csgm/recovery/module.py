"""The recovery LightningModule and its work items: one item per (m, image) still to recover."""

from __future__ import annotations

import json
import time
from typing import Any, Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import Dataset

from csgm.generators import Generator
from csgm.measurement import MeasurementModel
from csgm.metrics import image_metrics
from csgm.operators import Noise, Operator
from csgm.recovery.store import FAILED_STATUSES, METRICS
from csgm.seeding import seeded_rng
from csgm.solvers import Solver

__all__ = ["RecoveryModule", "WorkItems", "gen_span_images"]


def gen_span_images(generator: Generator, image_ids: Sequence[int], seed: int) -> torch.Tensor:
    """Images x = G(z*) with z* ~ N(0, I) seeded per image id: recovery with no representation error."""
    z = torch.stack([torch.randn(generator.latent_dim, generator=seeded_rng("gen_span", seed, int(i))) for i in image_ids])
    device = next(generator.parameters()).device
    with torch.no_grad():
        return generator(z.to(device)).clamp(0, 1)


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
    """Runs ``solver`` in ``predict_step`` (needs ``Trainer(inference_mode=False)``).

    Operators are built once per m from (operator config, image shape, seed, m) on every rank, so all
    ranks measure with the same A; noise and latent starts are seeded per image id, so no result
    depends on the batch, the rank or the number of devices.
    """

    def __init__(self, generator: Generator | None, solvers: Sequence[Solver], operators: Sequence[Operator],
                 noise: Noise, seed: int, input_mode: str = "test", labels: dict[str, str] | None = None) -> None:
        super().__init__()
        self.generator = generator
        if generator is not None:
            generator.eval().requires_grad_(False)
        self.solvers, self.noise, self.seed, self.input_mode = list(solvers), noise, seed, input_mode
        self.operators = torch.nn.ModuleList(operators)
        self.labels = labels or {}

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], batch_idx: int) -> list[tuple[list[dict[str, Any]], torch.Tensor]]:
        """Items are images (measured here), or with ``input_mode='file'`` the given measurements y."""
        data, ids, grid_index = batch
        if self.input_mode == "gen_span":
            data = gen_span_images(self.generator, ids.tolist(), self.seed)
        results = []
        for j in sorted(set(grid_index.tolist())):
            pick = (grid_index == j).nonzero().squeeze(1)
            operator, picked_ids = self.operators[j], ids[pick].tolist()
            if self.input_mode == "file":
                x, y = None, data[pick].to(operator.dtype)
            else:
                x = data[pick]
                y = MeasurementModel(operator, self.noise, self.seed).measure(x, picked_ids)
            results.append(self._recover(self.solvers[j], operator, x, y, picked_ids))
        return results

    def _recover(self, solver: Solver, operator: Operator, x: torch.Tensor | None, y: torch.Tensor,
                 ids: list[int]) -> tuple[list[dict[str, Any]], torch.Tensor]:
        """Solve for one m; metrics against x when there is ground truth (no error columns otherwise)."""
        start = time.perf_counter()
        out = solver.solve(y, operator, ids, self.generator, self.seed)
        seconds = (time.perf_counter() - start) / len(ids)
        x_hat = out.x_hat.detach().clamp(0, 1)
        metrics = image_metrics(x_hat, x) if x is not None else None
        all_diverged = out.extra.get("all_restarts_diverged", torch.zeros(len(ids), dtype=torch.bool)).cpu()
        nonfinite = ~(torch.isfinite(x_hat.flatten(1)).all(1) & torch.isfinite(out.measurement_loss)).cpu()
        converged = out.converged if out.converged is not None else torch.ones(len(ids), dtype=torch.bool)
        evaluations = out.extra.get("generator_evaluations", torch.zeros(len(ids), dtype=torch.long))
        rows = []
        for j, image_id in enumerate(ids):
            status = ("all_restarts_diverged" if bool(all_diverged[j]) else "diverged" if bool(nonfinite[j])
                      else "ok" if bool(converged[j]) else "not_converged")
            failed = status in FAILED_STATUSES
            rows.append({
                "solver": self.labels.get("solver", solver.name), "operator": self.labels.get("operator", operator.name),
                "noise": self.labels.get("noise", self.noise.kind),
                "noise_std": 0.0 if self.noise.kind == "none" else self.noise.std, "m": operator.m, "image_id": image_id,
                **{k: None if failed or metrics is None else float(metrics[k][j]) for k in METRICS},
                "measurement_loss": None if failed else float(out.measurement_loss[j]), "iterations": int(out.iterations[j]),
                "dropped_restarts": int(out.dropped_restarts[j]), "generator_evaluations": int(evaluations[j]),
                "status": status, "seconds": seconds, "params": json.dumps(solver.tuned, sort_keys=True),
            })
        return rows, torch.nan_to_num(x_hat, nan=0.0).cpu()

"""CSGM: min_z w2 D(A G(z), y) + w1 ||A G(z) - y||_1 + lambda ||z||^2, batched over images x restarts.

D is the measurement model's data term: the paper's ||A G(z) - y||^2 for Gaussian noise, 2 sigma^2 times
the negative log-likelihood for other noise models and for quantised measurements (csgm.measurement).
"""

from __future__ import annotations

from typing import Sequence

import torch

from csgm.errors import CsgmError, check_choice, check_flag, check_range
from csgm.generators import Generator
from csgm.measurement import MeasurementModel, as_measurement
from csgm.numerics import flush_denormals
from csgm.operators import Operator
from csgm.seeding import seeded_rng
from csgm.solvers.base import Solver, SolverOutput
from csgm.solvers.latent_gradient import latent_gradient
from csgm.solvers.latent_optim import OPTIMIZERS, LatentOptimizer, take_rows
from csgm.solvers.starts import StartBank
from csgm.progress import report_steps

__all__ = ["CSGMSolver", "initial_latents", "select_restarts"]


def initial_latents(generator: Generator, image_ids: Sequence[int], restarts: int, seed: int) -> torch.Tensor:
    """z starts from G's prior, one per (image id, restart), drawn on the CPU from (seed, id, restart)."""
    return (
        torch.cat(
            [generator.sample_latents(1, seeded_rng("z", seed, int(i), r)) for i in image_ids for r in range(restarts)]
        )
        if len(image_ids)
        else torch.zeros(0, generator.latent_dim)
    )


def _best_per_image(loss: torch.Tensor, image: torch.Tensor, keep: float) -> torch.Tensor:
    """Mask of the ceil(keep * count) lowest-loss rows of every image among the given rows."""
    order = torch.argsort(loss, stable=True)
    order = order[torch.argsort(image[order], stable=True)]  # by image, then by loss
    counts = torch.bincount(image, minlength=int(image.max()) + 1 if len(image) else 0)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=loss.device) - starts[image[order]]
    return rank < torch.ceil(keep * counts[image].to(loss.dtype)).long()


def select_restarts(losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For (B, R) final measurement losses: the index of the best finite restart per image, and the
    number of non-finite (dropped) restarts. An image whose restarts all diverged gets index 0."""
    finite = torch.isfinite(losses)
    best = torch.where(finite, losses, torch.full_like(losses, float("inf"))).argmin(1)
    return best, (~finite).sum(1)


class CSGMSolver(Solver):
    """Gradient descent on the latent z of a frozen generator, with random restarts.

    Losses are summed over samples, so each image's steps never depend on the batch. With
    ``median_of_means`` = B > 0 the data term is the median of B batches' (robust to corrupted measurements).
    With ``start_bank`` = S > 0 the restarts start from the best of S screened prior samples (csgm.solvers.starts)
    instead of fresh N(0, I) draws. Per image the
    restart with the lowest final data term (||A G(z) - y||^2 for Gaussian noise) is kept; a restart whose loss or
    latent is ever non-finite (NaN/inf) at any step has diverged: it is dropped and counted. Restarts leave the batch (no more generator evaluations) when
    they diverge, when their loss improved by less than ``stall_tol`` (relative) for ``stall_patience``
    iterations, or, with ``halving_every`` > 0, when every ``halving_every`` iterations they are not
    among the best ``halving_keep`` fraction of their image's remaining restarts (successive halving).
    With ``flush_denormals`` the CPU flushes float32 subnormals to zero during the search (csgm.numerics);
    with ``compile`` the objective's gradient is compiled by torch.compile (csgm.solvers.latent_gradient).
    """

    name = "csgm"
    work_options = {"iterations": 1, "restarts": 1}
    needs_generator = True
    prunes_search = True

    def __init__(
        self,
        lr: float = 0.01,
        iterations: int = 1000,
        restarts: int = 10,
        optimizer: str = "adam",
        momentum: float = 0.9,
        lambda_z: float = 0.0,
        l2_weight: float = 1.0,
        l1_weight: float = 0.0,
        lr_decay: float = 1.0,
        lr_decay_every: int = 0,
        stall_patience: int = 0,
        stall_tol: float = 1e-4,
        halving_every: int = 0,
        halving_keep: float = 0.5,
        median_of_means: int = 0,
        start_bank: int = 0,
        start_scale: float = 1.0,
        flush_denormals: bool = True,
        compile: bool = False,
        label: str | None = None,
    ) -> None:
        check_choice("optimizer", optimizer, OPTIMIZERS)
        for key, value in (("lr", lr), ("iterations", iterations), ("restarts", restarts)):
            check_range(f"solver.{key}", value, 0, low_open=True)
        for key, value in (
            ("lambda_z", lambda_z),
            ("l1_weight", l1_weight),
            ("l2_weight", l2_weight),
            ("lr_decay", lr_decay),
            ("lr_decay_every", lr_decay_every),
            ("stall_patience", stall_patience),
            ("stall_tol", stall_tol),
        ):
            check_range(f"solver.{key}", value, 0)
        check_range("solver.momentum", momentum, 0, 1)
        self.lr, self.iterations, self.restarts, self.optimizer = lr, int(iterations), int(restarts), optimizer
        self.momentum, self.lambda_z, self.l2_weight, self.l1_weight = momentum, lambda_z, l2_weight, l1_weight
        self.lr_decay, self.lr_decay_every = lr_decay, int(lr_decay_every)
        self.stall_patience, self.stall_tol = int(stall_patience), stall_tol
        check_range("solver.halving_every", halving_every, 0)
        check_range("solver.halving_keep", halving_keep, 0, 1, low_open=True)
        self.halving_every, self.halving_keep = int(halving_every), float(halving_keep)
        check_range("solver.median_of_means", median_of_means, 0)
        if median_of_means == 1:
            raise CsgmError("solver.median_of_means=1 is one batch (the plain data term); use 0, or >= 3 batches")
        self.median_of_means = int(median_of_means)
        check_range("solver.start_bank", start_bank, 0)
        if 0 < start_bank < restarts:
            raise CsgmError(
                f"solver.start_bank={start_bank} must hold at least the {restarts} restarts it starts; "
                "raise it (e.g. 4096) or set 0 for starts from N(0, I)"
            )
        self.start_bank = StartBank(start_bank) if start_bank else None
        check_range("solver.start_scale", start_scale, 0)
        if start_bank and start_scale != 1.0:
            raise CsgmError(
                f"solver.start_scale={start_scale} scales prior starts, but solver.start_bank={start_bank} picks "
                "them from the bank; use one of the two"
            )
        self.start_scale = float(start_scale)
        self.flush_denormals = check_flag("solver.flush_denormals", flush_denormals)
        self.compile = check_flag("solver.compile", compile)
        self.label = label or self.name

    def label_tags(self) -> list[str]:
        """The median of B means (``mom<B>``): another estimator than the plain data term's."""
        return [
            *super().label_tags(),
            *self.tag_unless_default("median_of_means", self.median_of_means, f"mom{self.median_of_means}"),
        ]

    def search_copy(self, halving_every: int) -> CSGMSolver:
        """For the validation search: a copy whose restarts are halved every ``halving_every`` steps (keeping
        ``halving_keep``), the search only needing to rank candidates; itself if 0 or it already halves."""
        if not halving_every or self.halving_every:
            return self
        return self.with_options(halving_every=int(halving_every))

    def image(self, z: torch.Tensor, generator: Generator, deviation: torch.Tensor | None) -> torch.Tensor:
        """The estimate for latents z: G(z) (Sparse-Gen adds its deviation)."""
        return generator(z)

    def objective(
        self,
        z: torch.Tensor,
        y: torch.Tensor,
        measurement: MeasurementModel,
        generator: Generator,
        deviation: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-sample (objective, data term, residual A x - y)."""
        prediction = measurement.predict(self.image(z, generator, deviation))
        residual = prediction - y
        data = (
            measurement.data_term(prediction, y)
            if not self.median_of_means
            else self.median_batch(prediction, y, measurement)
        )
        total = self.l2_weight * data + self.lambda_z * z.pow(2).sum(1)
        if self.l1_weight:
            total = total + self.l1_weight * residual.abs().sum(1)
        return total, data, residual

    def median_batch(self, prediction: torch.Tensor, y: torch.Tensor, measurement: MeasurementModel) -> torch.Tensor:
        """Median-of-means data term (Jalal, Liu, Dimakis, Caramanis 2020): measurements i = b mod B form batch b,
        each batch's mean data term is taken, and the median batch (its gradient) stands for all m measurements."""
        count = self.median_of_means
        if prediction.shape[1] < count:
            raise CsgmError(
                f"solver.median_of_means={count} batches need at least {count} measurements, got {prediction.shape[1]}"
            )
        usable = prediction.shape[1] // count * count  # equal batches; the last m mod B measurements are left out
        per_batch = measurement.data_term(
            self._batches(prediction[:, :usable], count), self._batches(y[:, :usable], count)
        )
        return per_batch.view(len(prediction), count).median(dim=1).values * prediction.shape[1] / (usable // count)

    @staticmethod
    def _batches(values: torch.Tensor, count: int) -> torch.Tensor:
        """(rows, B * s) -> (rows * B, s): measurement i goes to batch i mod B."""
        return values.view(len(values), -1, count).transpose(1, 2).reshape(len(values) * count, -1)

    def init_deviation(self, z0: torch.Tensor, operator: Operator) -> torch.Tensor | None:
        """Extra per-sample state optimised beside z (none for CSGM)."""
        return None

    def update_deviation(
        self, deviation: torch.Tensor | None, residual: torch.Tensor, operator: Operator
    ) -> torch.Tensor | None:
        """One step on the extra state from the current residual (none for CSGM)."""
        return deviation

    def solve(
        self,
        y: torch.Tensor,
        measurement: MeasurementModel | Operator,
        image_ids: Sequence[int],
        generator: Generator | None = None,
        seed: int = 0,
    ) -> SolverOutput:
        generator = self.require_generator(generator)
        if self.start_bank is not None:
            z0 = self.start_bank.starts(y, as_measurement(measurement), generator, seed, self.restarts)
        else:
            z0 = self.start_scale * initial_latents(generator, image_ids, self.restarts, seed).to(
                device=y.device, dtype=y.dtype
            )
        return self.optimise(z0, y, measurement, generator)

    def optimise(
        self, z0: torch.Tensor, y: torch.Tensor, measurement: MeasurementModel | Operator, generator: Generator
    ) -> SolverOutput:
        """Run the optimisation from given starts z0 (B * R, k), restarts of an image adjacent."""
        with flush_denormals(self.flush_denormals):
            return self._optimise(z0, y, as_measurement(measurement), generator)

    def _optimise(
        self, z0: torch.Tensor, y: torch.Tensor, measurement: MeasurementModel, generator: Generator
    ) -> SolverOutput:
        batch, restarts = len(y), len(z0) // max(len(y), 1)
        total_rows = len(z0)
        y_rep = y.repeat_interleave(restarts, dim=0)
        z = z0.clone()
        operator = measurement.operator
        self.check_operator(operator)
        deviation = self.init_deviation(z0, operator)
        optimizer = LatentOptimizer(self.optimizer, z, self.momentum)
        iterations = torch.full((total_rows,), self.iterations, dtype=torch.long, device=z.device)
        evaluations = torch.zeros(total_rows, dtype=torch.long, device=z.device)
        image_of_row = torch.arange(total_rows, device=z.device) // max(restarts, 1)
        best = torch.full((total_rows,), float("inf"), dtype=y.dtype, device=z.device)
        since_improved = torch.zeros(total_rows, dtype=torch.long, device=z.device)
        diverged = torch.zeros(total_rows, dtype=torch.bool, device=z.device)
        active = torch.arange(total_rows, device=z.device)
        lr = self.lr
        for step in range(self.iterations):
            if len(active) == 0:
                break
            report_steps(step, self.iterations)
            rows = None if len(active) == total_rows else active
            grad, loss, residual = latent_gradient(
                self.objective,
                take_rows(z, rows),
                take_rows(y_rep, rows),
                measurement,
                generator,
                take_rows(deviation, rows),
                self.compile,
            )
            evaluations[active] += 1
            optimizer.step(z, rows, grad, lr)
            if deviation is not None:
                updated = self.update_deviation(take_rows(deviation, rows), residual, operator)
                deviation = updated if rows is None else deviation.index_copy(0, active, updated)
            stop = ~(torch.isfinite(loss) & torch.isfinite(take_rows(z, rows)).all(1))  # diverged: dropped at the end
            diverged[active[stop]] = True
            if self.stall_patience:
                improved = loss < best[active] * (1 - self.stall_tol)
                best[active] = torch.where(improved, loss, torch.minimum(best[active], loss))
                since_improved[active] = torch.where(improved, 0, since_improved[active] + 1)
                stop |= since_improved[active] >= self.stall_patience
            if self.halving_every and (step + 1) % self.halving_every == 0:
                stop |= ~_best_per_image(loss, image_of_row[active], self.halving_keep)
            if bool(stop.any()):
                iterations[active[stop]] = step + 1
                active = active[~stop]
            if self.lr_decay_every and (step + 1) % self.lr_decay_every == 0:
                lr *= self.lr_decay
        with torch.no_grad():
            z_final = z
            _, data, _ = self.objective(z_final, y_rep, measurement, generator, deviation)
            evaluations += 1
            data = torch.where(torch.isfinite(z_final).all(1) & ~diverged, data, torch.full_like(data, float("nan")))
            best_restart, dropped = select_restarts(data.view(batch, restarts).cpu())
            pick = (torch.arange(batch) * restarts + best_restart).to(z_final.device)
            z_kept = z_final[pick]
            failed = (dropped == restarts).to(z_kept.device)
            z_kept = torch.where(failed[:, None], torch.zeros_like(z_kept), z_kept)
            kept_deviation = None
            if deviation is not None:
                kept_deviation = torch.where(failed[:, None], torch.zeros_like(deviation[pick]), deviation[pick])
            x_hat = self.image(z_kept, generator, kept_deviation).clamp(0, 1)
            loss = measurement.loss(x_hat, y)
        return SolverOutput(
            x_hat=x_hat,
            measurement_loss=loss,
            iterations=iterations[pick].cpu(),
            dropped_restarts=dropped,
            z=z_kept,
            all_restarts_diverged=failed.cpu(),
            generator_evaluations=evaluations.view(batch, restarts).sum(1).cpu(),
            vjps=(evaluations - 1).view(batch, restarts).sum(1).cpu(),
        )  # a backward pass per step

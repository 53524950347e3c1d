"""Gauss-Newton / Levenberg-Marquardt on the latent z: min_z D(A G(z), y) + lambda ||z||^2, batched over rows.

A row is one start of one image. Per row, J = d predict(G(z)) / dz (m x k) comes from k forward-mode products
(``torch.func.jvp`` under ``vmap``, the primal computed once alongside), and the damped k x k system

    (J^T W J + 2 lambda I + mu I) d = -(J^T e + 2 lambda z),      e = dD / dprediction,

is solved per row. W holds one weight per measurement, e_i / r_i with r = prediction - y, the IRLS weight of a
data term that depends on each residual alone: 2 for Gaussian noise (exact Gauss-Newton), 2 (df + 1) / (df +
r^2 / sigma^2) for Student-t, the Fisher weight 2 / u for Poisson. Quantised measurements' interval term is no
weighted least squares: there W = 2 (the metric of a squared residual) with the term's exact gradient e. A step
is kept only if the objective fell (gain ratio above ``accept``), so no metric can make a row worse than its start;
mu follows Nielsen's rule per row (shrink after a good step, double the growth after each rejection). With
``geodesic`` > 0 a step gains the second-order correction of Transtrum and Sethna (2012) from one extra forward
pass (a finite difference along the step), used where it is small against the step.

With ``secant`` the Jacobian is formed once, at the start: its J^T W J + 2 lambda I is the first model Hessian
B, and every later step updates B by BFGS from the change of the exact gradient (y = g(z + s) - g(z), one VJP
at each trial point, accepted or not; Powell's damping keeps B positive definite). When the residual is large
(a generator's representation error dominates ||A G(z) - y||), Gauss-Newton neglects the large term
sum_i r_i Hess(r_i) and converges linearly; the secant updates learn it along the steps, and a step costs one
forward and one VJP instead of k + 2 passes.

Starts come from the screened bank of ``csgm_bank`` (csgm.solvers.starts): each image's best bank latent, plus
its next ``restarts`` - 1 only where their data term is within ``ambiguity`` (relative) of the best one, i.e.
where the bank cannot tell which basin is right. Rows leave the batch when converged (relative decrease of
the objective below ``tol``, or a rejected step shorter than 1e-9 (1 + ||z||)), and per image the row with
the lowest data term is kept. Work per image: ``generator_evaluations`` counts forward passes of G (trial
points, acceleration probes, the primal of each Jacobian, the final image), ``jvps`` the forward-mode products
(k per Jacobian), ``vjps`` the backward passes of the secant steps (one per trial point). The bank's G
evaluations are shared by the run, not counted.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from csgm.errors import CsgmError, check_flag, check_range
from csgm.generators import Generator
from csgm.measurement import MeasurementModel
from csgm.numerics import flush_denormals
from csgm.operators import Operator
from csgm.solvers.base import Solver, SolverOutput
from csgm.solvers.csgm import initial_latents
from csgm.solvers.starts import StartBank
from csgm.progress import report_steps

__all__ = ["GaussNewtonSolver", "measurement_weights"]

_STEP_TOL = 1e-9  # a rejected step shorter than this times (1 + ||z||) means the row has converged


def measurement_weights(
    measurement: MeasurementModel, prediction: torch.Tensor, y: torch.Tensor, data_gradient: torch.Tensor
) -> torch.Tensor:
    """(rows, m) Gauss-Newton weights of the data term: e_i / r_i (>= 0), 2 where r_i = 0 and for quantised y."""
    if measurement.operator.quantized:
        return torch.full_like(prediction, 2.0)
    residual = prediction - y
    nonzero = residual != 0
    ratio = data_gradient / torch.where(nonzero, residual, torch.ones_like(residual))
    return torch.where(nonzero, ratio, torch.full_like(ratio, 2.0)).clamp_min(0)


class GaussNewtonSolver(Solver):
    """Levenberg-Marquardt on z from screened starts; see the module docstring."""

    name = "gauss_newton"
    work_options = {"iterations": 1, "restarts": 1}
    needs_generator = True

    def __init__(
        self,
        iterations: int = 10,
        restarts: int = 2,
        ambiguity: float = 0.05,
        lambda_z: float = 0.03,
        damping: float = 1.0,
        accept: float = 1e-3,
        tol: float = 1e-3,
        geodesic: float = 0.75,
        secant: bool = False,
        start_bank: int = 4096,
        jacobian_rows: int = 8192,
        flush_denormals: bool = True,
        label: str | None = None,
    ) -> None:
        for key, value in (
            ("iterations", iterations),
            ("restarts", restarts),
            ("damping", damping),
            ("jacobian_rows", jacobian_rows),
        ):
            check_range(f"solver.{key}", value, 0, low_open=True)
        for key, value in (("ambiguity", ambiguity), ("lambda_z", lambda_z), ("tol", tol), ("start_bank", start_bank)):
            check_range(f"solver.{key}", value, 0)
        check_range("solver.accept", accept, 0, 1)
        check_range("solver.geodesic", geodesic, 0, 2)
        self.secant = check_flag("solver.secant", secant)
        if self.secant and geodesic:
            raise CsgmError(
                f"solver.geodesic={geodesic} corrects Gauss-Newton steps, which solver.secant=true does not take; "
                "set solver.geodesic=0"
            )
        if 0 < start_bank < restarts:
            raise CsgmError(
                f"solver.start_bank={start_bank} must hold at least the {restarts} restarts it starts; "
                "raise it (e.g. 4096) or set 0 for starts from N(0, I)"
            )
        self.iterations, self.restarts, self.ambiguity = int(iterations), int(restarts), float(ambiguity)
        self.lambda_z, self.damping, self.accept, self.tol = float(lambda_z), float(damping), float(accept), float(tol)
        self.geodesic, self.jacobian_rows = float(geodesic), int(jacobian_rows)
        self.start_bank = StartBank(start_bank, expand_squares=True) if start_bank else None
        self.flush_denormals = check_flag("solver.flush_denormals", flush_denormals)
        self.label = label or self.name

    def solve(
        self,
        y: torch.Tensor,
        measurement: MeasurementModel | Operator,
        image_ids: Sequence[int],
        generator: Generator | None = None,
        seed: int = 0,
    ) -> SolverOutput:
        generator = self.require_generator(generator)
        measurement = self.accepted(measurement)
        with flush_denormals(self.flush_denormals):
            z0, image_of_row, restart_of_row = self.starts(y, measurement, generator, image_ids, seed)
            return self._optimise(z0, image_of_row, restart_of_row, y, measurement, generator)[0]

    def refine(
        self,
        z0: torch.Tensor,
        y: torch.Tensor,
        measurement: MeasurementModel,
        generator: Generator,
        model_hessian: torch.Tensor | None = None,
    ) -> tuple[SolverOutput, torch.Tensor | None]:
        """The search from given starts ``z0`` (B, k), one per image (e.g. a warm start), instead of the bank's.
        With ``secant``, a ``model_hessian`` (B, k, k) from an earlier search is the first model Hessian instead of
        a Jacobian's (one VJP instead of k JVPs). Returns the output and every row's last model Hessian (None
        without ``secant``)."""
        rows = torch.arange(len(z0), device=z0.device)
        with flush_denormals(self.flush_denormals):
            return self._optimise(
                z0, rows, torch.zeros_like(rows), y, self.accepted(measurement), generator, model_hessian
            )

    def starts(
        self, y: torch.Tensor, measurement: MeasurementModel, generator: Generator, image_ids: Sequence[int], seed: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(starts (N, k), image of each row, restart of each row): every image's best bank start, and its next
        ones where they are within ``ambiguity`` of the best; all ``restarts`` prior draws without a bank."""
        batch, count = len(y), self.restarts
        if self.start_bank is None:
            z0 = initial_latents(generator, image_ids, count, seed).to(device=y.device, dtype=y.dtype)
            keep = torch.ones(batch, count, dtype=torch.bool, device=y.device)
        else:
            z0, terms = self.start_bank.screen(y, measurement, generator, seed, count)
            keep = terms <= terms[:, :1] * (1 + self.ambiguity)
            keep[:, 0] = True
        rows = keep.flatten().nonzero().flatten()
        return z0[rows], rows // count, rows % count

    def _predict(self, measurement: MeasurementModel, generator: Generator) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda z: measurement.predict(generator(z))

    def jacobian(
        self, z: torch.Tensor, predict: Callable[[torch.Tensor], torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(predict(z) (N, m), J (N, m, k)) by k forward-mode products per row, ``jacobian_rows`` tangent rows at a time."""
        k = z.shape[1]
        basis = torch.eye(k, dtype=z.dtype, device=z.device)
        values, jacobians = [], []
        for part in z.split(max(1, self.jacobian_rows // k)):
            tangents = basis[:, None, :].expand(k, len(part), k)
            value, columns = torch.func.vmap(lambda t: torch.func.jvp(predict, (part,), (t,)), out_dims=(None, 0))(
                tangents
            )
            values.append(value)
            jacobians.append(columns.permute(1, 2, 0))
        return torch.cat(values), torch.cat(jacobians)

    def terms(
        self, z: torch.Tensor, prediction: torch.Tensor, y: torch.Tensor, measurement: MeasurementModel
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(objective, data term, e = d data / d prediction, weights W) per row."""
        with torch.enable_grad():
            prediction = prediction.detach().requires_grad_(True)
            data = measurement.data_term(prediction, y)
            (gradient,) = torch.autograd.grad(data.sum(), prediction)
        data = data.detach()
        weights = measurement_weights(measurement, prediction.detach(), y, gradient)
        return data + self.lambda_z * z.pow(2).sum(1), data, gradient, weights

    def _optimise(
        self,
        z0: torch.Tensor,
        image_of_row: torch.Tensor,
        restart_of_row: torch.Tensor,
        y: torch.Tensor,
        measurement: MeasurementModel,
        generator: Generator,
        model_hessian: torch.Tensor | None = None,
    ) -> tuple[SolverOutput, torch.Tensor | None]:
        rows_total, k = z0.shape
        y_rows = y[image_of_row]
        predict = self._predict(measurement, generator)
        z = z0.clone()
        warm = self.secant and model_hessian is not None
        long = dict(dtype=torch.long, device=z.device)
        forwards, iterations = torch.ones(rows_total, **long), torch.zeros(rows_total, **long)
        if warm:  # the carried model Hessian; the gradient from one VJP
            with torch.enable_grad():
                leaf = z.detach().requires_grad_(True)
                primal = predict(leaf)
            objective, data, gradient, weights = self.terms(z, primal.detach(), y_rows, measurement)
            model_gradient = self.pulled_gradient(primal, leaf, gradient, objective)
            prediction, jac, model_hessian = primal.detach(), None, model_hessian.double().clone()
            finite = torch.isfinite(objective) & torch.isfinite(model_gradient).all(1)
        else:
            with torch.no_grad():
                prediction, jac = self.jacobian(z, predict)
            objective, data, gradient, weights = self.terms(z, prediction, y_rows, measurement)
            finite = torch.isfinite(objective) & torch.isfinite(jac).flatten(1).all(1)
        jvps, vjps = torch.full((rows_total,), 0 if warm else k, **long), torch.full((rows_total,), int(warm), **long)
        mu = torch.full((rows_total,), self.damping, dtype=torch.float64, device=z.device)
        growth = torch.full_like(mu, 2.0)
        converged = torch.zeros(rows_total, dtype=torch.bool, device=z.device)
        active = finite.nonzero().flatten()
        identity = torch.eye(k, dtype=torch.float64, device=z.device)
        if self.secant and not warm:  # the model Hessian and the gradient, per row, carried from step to step
            model_hessian = self.gauss_newton_hessian(jac.double(), weights.double())
            model_gradient = self.gradient(jac.double(), gradient.double(), z)
        for iteration in range(self.iterations):
            if len(active) == 0:
                break
            report_steps(iteration, self.iterations)
            z_a = z[active]
            if self.secant:
                grad, hessian = model_gradient[active], model_hessian[active]
            else:
                jac_a, w_a = jac[active].double(), weights[active].double()
                grad = self.gradient(jac_a, gradient[active].double(), z_a)
                hessian = self.gauss_newton_hessian(jac_a, w_a)
            factor, info = torch.linalg.cholesky_ex(hessian + mu[active, None, None] * identity)
            solvable = info == 0
            factor = torch.where(solvable[:, None, None], factor, identity)
            step = torch.cholesky_solve(-grad[..., None], factor)[..., 0]
            step = torch.where(solvable[:, None], step, torch.zeros_like(step))
            if self.geodesic:
                step = self.accelerated(step, z_a, prediction[active], jac_a, w_a, factor, predict)
                forwards[active] += 1
            predicted = -(grad * step).sum(1) - 0.5 * (step[:, None, :] @ hessian @ step[..., None]).view(-1)
            z_trial = z_a + step.to(z.dtype)
            with torch.set_grad_enabled(self.secant):
                z_trial = z_trial.detach().requires_grad_(self.secant)
                prediction_trial = predict(z_trial)
            forwards[active] += 1
            iterations[active] += 1
            objective_trial, data_trial, gradient_trial, weights_trial = self.terms(
                z_trial.detach(), prediction_trial.detach(), y_rows[active], measurement
            )
            decrease = (objective[active] - objective_trial).double()
            gain = decrease / predicted.clamp_min(1e-300)
            good = solvable & torch.isfinite(objective_trial) & (predicted > 0) & (gain > self.accept)
            mu[active] = torch.where(
                good, mu[active] * torch.clamp(1 - (2 * gain - 1) ** 3, min=1 / 3), mu[active] * growth[active]
            )
            growth[active] = torch.where(good, torch.full_like(growth[active], 2.0), growth[active] * 2)
            short = ~good & (step.norm(dim=1) <= _STEP_TOL * (1 + z_a.double().norm(dim=1)))
            done = (good & (decrease <= self.tol * objective[active].double())) | short
            kept = active[good]
            if self.secant:
                trial_gradient = self.secant_update(
                    model_hessian,
                    active,
                    z_a,
                    z_trial,
                    prediction_trial,
                    gradient_trial,
                    objective_trial,
                    model_gradient,
                )
                vjps[active] += 1
            z_trial = z_trial.detach()
            z[kept], prediction[kept] = z_trial[good], prediction_trial.detach()[good]
            objective[kept], data[kept] = objective_trial[good], data_trial[good]
            gradient[kept], weights[kept] = gradient_trial[good], weights_trial[good]
            if self.secant:
                model_gradient[kept] = trial_gradient[good]
            converged[active[done]] = True
            active = active[~done]
            renew = kept[~converged[kept]]
            if not self.secant and len(renew) and iteration + 1 < self.iterations:  # a new Jacobian for a further step
                with torch.no_grad():
                    prediction[renew], jac[renew] = self.jacobian(z[renew], predict)
                forwards[renew] += 1
                jvps[renew] += k
        out = self.kept(
            z,
            data,
            finite,
            converged,
            iterations,
            forwards,
            jvps,
            vjps,
            image_of_row,
            restart_of_row,
            y,
            measurement,
            generator,
        )
        return out, model_hessian if self.secant else None

    def pulled_gradient(
        self, prediction: torch.Tensor, z: torch.Tensor, data_gradient: torch.Tensor, objective: torch.Tensor
    ) -> torch.Tensor:
        """(rows, k) float64 gradient of the objective at z by one VJP through ``prediction`` (built from the leaf
        z with grad): J^T e + 2 lambda z, e taken as 0 in rows whose objective or e is not finite."""
        finite = torch.isfinite(objective) & torch.isfinite(data_gradient).all(1)
        cotangent = torch.where(finite[:, None], data_gradient, torch.zeros_like(data_gradient))
        (pulled,) = torch.autograd.grad(prediction, z, cotangent)
        return pulled.double() + 2 * self.lambda_z * z.detach().double()

    def gradient(self, jac: torch.Tensor, data_gradient: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """(rows, k) gradient of the objective, J^T e + 2 lambda z, in the dtype of ``jac``."""
        return (jac.transpose(1, 2) @ data_gradient[..., None])[..., 0] + 2 * self.lambda_z * z.to(jac.dtype)

    def gauss_newton_hessian(self, jac: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """(rows, k, k) Gauss-Newton matrix of the objective, J^T W J + 2 lambda I."""
        identity = torch.eye(jac.shape[2], dtype=jac.dtype, device=jac.device)
        return jac.transpose(1, 2) @ (weights[..., None] * jac) + 2 * self.lambda_z * identity

    def secant_update(
        self,
        hessian: torch.Tensor,
        active: torch.Tensor,
        z: torch.Tensor,
        z_trial: torch.Tensor,
        prediction_trial: torch.Tensor,
        data_gradient: torch.Tensor,
        objective_trial: torch.Tensor,
        gradient: torch.Tensor,
    ) -> torch.Tensor:
        """The exact gradients at the trial points (one VJP through the trial batch) and, in place, the damped
        BFGS update of the ``active`` rows of ``hessian`` from the secant pair (s, g(z + s) - g(z)), taken at
        accepted and rejected trial points alike (where the trial objective is finite)."""
        finite = torch.isfinite(objective_trial) & torch.isfinite(data_gradient).all(1)
        trial_gradient = self.pulled_gradient(prediction_trial, z_trial, data_gradient, objective_trial)
        s = (z_trial.detach() - z).double()
        change = trial_gradient - gradient[active]
        b = hessian[active]
        bs = (b @ s[..., None])[..., 0]
        sbs, sy = (s * bs).sum(1), (s * change).sum(1)
        # Powell's damping: y' = theta y + (1 - theta) B s with s^T y' >= 0.2 s^T B s > 0, so B stays positive definite
        theta = torch.where(sy >= 0.2 * sbs, torch.ones_like(sy), 0.8 * sbs / (sbs - sy).clamp_min(1e-300))
        damped = theta[:, None] * change + (1 - theta[:, None]) * bs
        curvature = (s * damped).sum(1)
        update = finite & (sbs > 0) & torch.isfinite(trial_gradient).all(1)
        b_new = (
            b
            - bs[:, :, None] * bs[:, None, :] / sbs.clamp_min(1e-300)[:, None, None]
            + damped[:, :, None] * damped[:, None, :] / curvature.clamp_min(1e-300)[:, None, None]
        )
        hessian[active] = torch.where(update[:, None, None], b_new, b)
        return trial_gradient

    def accelerated(
        self,
        step: torch.Tensor,
        z: torch.Tensor,
        prediction: torch.Tensor,
        jac: torch.Tensor,
        weights: torch.Tensor,
        factor: torch.Tensor,
        predict: Callable[[torch.Tensor], torch.Tensor],
        probe: float = 0.1,
    ) -> torch.Tensor:
        """The step plus half the geodesic acceleration a = -(J^T W J + ...)^-1 J^T W r_vv, where it is small
        against the step (2 ||a|| <= geodesic ||step||); r_vv from one forward pass at z + probe * step."""
        with torch.no_grad():
            ahead = predict(z + probe * step.to(z.dtype)).double()
        curvature = 2 / probe * ((ahead - prediction.double()) / probe - (jac @ step[..., None])[..., 0])
        acceleration = -torch.cholesky_solve(jac.transpose(1, 2) @ (weights * curvature)[..., None], factor)[..., 0]
        small = 2 * acceleration.norm(dim=1) <= self.geodesic * step.norm(dim=1)
        return torch.where(small[:, None], step + 0.5 * acceleration, step)

    def kept(
        self,
        z: torch.Tensor,
        data: torch.Tensor,
        finite: torch.Tensor,
        converged: torch.Tensor,
        iterations: torch.Tensor,
        forwards: torch.Tensor,
        jvps: torch.Tensor,
        vjps: torch.Tensor,
        image_of_row: torch.Tensor,
        restart_of_row: torch.Tensor,
        y: torch.Tensor,
        measurement: MeasurementModel,
        generator: Generator,
    ) -> SolverOutput:
        """Per image the row with the lowest data term (rows with a non-finite start dropped), its image and the work."""
        batch, width = len(y), self.restarts
        table = torch.full((batch, width), float("inf"), dtype=torch.float64, device=z.device)
        cell = image_of_row * width + restart_of_row
        table.view(-1)[cell] = torch.where(finite, data.double(), torch.full_like(data.double(), float("nan")))
        dropped = torch.isnan(table).sum(1)
        best = torch.where(torch.isnan(table), torch.full_like(table, float("inf")), table).argmin(1)
        row_of_cell = torch.full((batch * width,), -1, dtype=torch.long, device=z.device)
        row_of_cell[cell] = torch.arange(len(z), device=z.device)
        pick = row_of_cell[torch.arange(batch, device=z.device) * width + best]
        failed = ~torch.isfinite(table.gather(1, best[:, None])[:, 0])
        z_kept = torch.where(failed[:, None], torch.zeros_like(z[pick]), z[pick])
        with torch.no_grad():
            x_hat = generator(z_kept).clamp(0, 1)

        def per_image(values: torch.Tensor) -> torch.Tensor:
            return torch.zeros(batch, dtype=torch.long, device=z.device).index_add_(0, image_of_row, values).cpu()

        return SolverOutput(
            x_hat=x_hat,
            measurement_loss=measurement.loss(x_hat, y),
            iterations=iterations[pick].cpu(),
            dropped_restarts=dropped.cpu(),
            z=z_kept,
            converged=converged[pick].cpu(),
            all_restarts_diverged=failed.cpu(),
            generator_evaluations=per_image(forwards) + 1,
            jvps=per_image(jvps),
            vjps=per_image(vjps),
        )

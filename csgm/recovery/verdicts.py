"""Each result row's verdict: can its numbers be trusted, and does its estimate explain y?

**Health** (``status`` and ``reason``), from the solver's output and its ``HealthLimits``:

- ``diverged``: no finite estimate (``all_restarts_diverged``, ``nonfinite``);
- ``not_converged``: the solver's own stopping test failed (``no_convergence``), or its chains did not mix
  (``rhat>1.1``, ``ess<20``: ArviZ's R-hat and bulk ESS across chains, csgm.solvers.mcmc);
- ``unreliable``: the estimate exists but is not worth its numbers: chains that barely moved
  (``acceptance<0.05``), too few recorded draws per chain (``few_samples``), a data term that rose above the
  solver's start (``data_term_rose``), or a latent that ran off (``latent_norm``: ||z|| above 100 sqrt(k), a hundred
  times the prior's typical norm, where G was never trained; the paper's unregularised CSGM ends at 1-7 sqrt(k) on
  MNIST);
- ``ok`` otherwise.

The status is the worst that applies; ``reason`` lists every flag found (``;``-separated, empty for a clean row).

**Data fit** (``standardised_residual`` and ``data_fit``; the discrepancy principle), for noise models with a
known level whose data term is chi-square at the truth (``Noise.chi_square``: Gaussian, Poisson): the residual
||A x_hat - y||^2 / (m sigma^2), 1 when x_hat explains y to within the noise. A row is ``misfit`` when it fits y
worse than the noise allows (model mismatch, representation error, a search stuck), ``overfit`` when it fits
better than the noise allows (it has fitted the noise), each at p < 1e-3 under chi-square(m); else
``consistent``. Both are empty when the noise level is unknown or zero, for heavy-tailed noise and for
quantised measurements. The data fit is information about the model, not the solver: it never changes the status.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from csgm.measurement import MeasurementModel
from csgm.solvers import HealthLimits, SolverOutput

__all__ = ["Verdict", "DataFit", "verdicts", "data_fit", "HEALTH_STATUSES", "FIT_P"]

HEALTH_STATUSES = ("ok", "unreliable", "not_converged", "diverged")  # from best to worst
FIT_P = 1e-3  # each tail of the data-fit test


@dataclass(frozen=True)
class Verdict:
    """One row's health: its status and the flags that explain it."""

    status: str
    reason: str = ""


@dataclass(frozen=True)
class DataFit:
    """One row's data fit: the standardised residual (None where the check does not apply) and its label."""

    standardised_residual: float | None
    label: str  # consistent, misfit, overfit or "" (no check)


def _flags(out: SolverOutput, j: int, limits: HealthLimits) -> dict[str, list[str]]:
    """The flags of row j by the status they imply."""
    diagnostics = out.diagnostics or {}
    flags: dict[str, list[str]] = {status: [] for status in HEALTH_STATUSES}
    if not bool(out.converged[j]):
        flags["not_converged"].append("no_convergence")
    if "rhat" in diagnostics and float(diagnostics["rhat"][j]) > limits.max_rhat:
        flags["not_converged"].append(f"rhat>{limits.max_rhat:g}")
    if "ess_bulk" in diagnostics and float(diagnostics["ess_bulk"][j]) < limits.min_ess:
        flags["not_converged"].append(f"ess<{limits.min_ess:g}")
    if out.acceptance is not None and float(out.acceptance[j]) < limits.min_acceptance:
        flags["unreliable"].append(f"acceptance<{limits.min_acceptance:g}")
    if "draws" in diagnostics and float(diagnostics["draws"][j]) < limits.min_draws:
        flags["unreliable"].append("few_samples")
    if out.start_loss is not None and float(out.measurement_loss[j]) > float(out.start_loss[j]):
        flags["unreliable"].append("data_term_rose")
    if out.z is not None and float(out.z[j].double().norm()) > limits.max_latent_scale * out.z.shape[1] ** 0.5:
        flags["unreliable"].append("latent_norm")
    return flags


def verdicts(out: SolverOutput, limits: HealthLimits) -> list[Verdict]:
    """The verdict of every row of a solved batch."""
    finite = (torch.isfinite(out.x_hat.flatten(1)).all(1) & torch.isfinite(out.measurement_loss)).cpu()
    rows = []
    for j in range(len(out.x_hat)):
        if bool(out.all_restarts_diverged[j]):
            rows.append(Verdict("diverged", "all_restarts_diverged"))
            continue
        if not bool(finite[j]):
            rows.append(Verdict("diverged", "nonfinite"))
            continue
        flags = _flags(out, j, limits)
        worst = next((s for s in reversed(HEALTH_STATUSES) if flags[s]), "ok")
        rows.append(Verdict(worst, ";".join(flag for status in reversed(HEALTH_STATUSES) for flag in flags[status])))
    return rows


def data_fit(measurement: MeasurementModel, measurement_loss: torch.Tensor, m: int) -> list[DataFit]:
    """The data fit of every row from its data term and the number of real measurements m (module docstring)."""
    noise = measurement.noise
    if measurement.likelihood is not noise or not noise.chi_square or noise.std <= 0:
        return [DataFit(None, "")] * len(measurement_loss)
    statistic = measurement_loss.detach().double().cpu() / noise.std**2
    half_m = torch.tensor(m / 2, dtype=torch.float64)
    below = torch.special.gammainc(half_m, statistic / 2)  # P(chi-square(m) <= statistic)
    above = torch.special.gammaincc(half_m, statistic / 2)
    fits = []
    for value, low, high in zip(statistic.tolist(), below.tolist(), above.tolist()):
        if not math.isfinite(value):
            fits.append(DataFit(None, ""))
            continue
        label = "misfit" if high < FIT_P else "overfit" if low < FIT_P else "consistent"
        fits.append(DataFit(value / m, label))
    return fits

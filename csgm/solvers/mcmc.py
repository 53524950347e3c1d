"""Building blocks of gradient-based MCMC: dual-averaging step-size adaptation, one Hamiltonian transition with a
per-row mass matrix, and ArviZ convergence diagnostics (R-hat, bulk and tail ESS) per image.

These are independent of the model: the target is given as an ``energy`` function returning, per row,
U(z) = -log p(z) + const and its gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = ["DualAveraging", "Energy", "chain_diagnostics", "hamiltonian_transition"]

MCMC_DIAGNOSTICS = ("rhat", "ess_bulk", "ess_tail")
Energy = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # z -> (U, grad U, G(z))


class DualAveraging:
    """Nesterov dual averaging of log step sizes towards a target acceptance (Hoffman & Gelman 2014, Alg. 5),
    one step size per row; ``update`` during warm-up, then ``final`` is the averaged step to freeze."""

    def __init__(
        self, initial: torch.Tensor, target: float, gamma: float = 0.05, t0: float = 10.0, kappa: float = 0.75
    ) -> None:
        self.mu = torch.log(10 * initial)
        self.target, self.gamma, self.t0, self.kappa = target, gamma, t0, kappa
        self.h_bar = torch.zeros_like(initial)
        self.log_step = torch.log(initial)
        self.log_step_bar = torch.zeros_like(initial)
        self.t = 0

    @property
    def step(self) -> torch.Tensor:
        """The step size to use now (during warm-up)."""
        return self.log_step.exp()

    @property
    def final(self) -> torch.Tensor:
        """The averaged step size to freeze after warm-up (the initial one if there was no warm-up)."""
        return self.log_step_bar.exp() if self.t else self.log_step.exp()

    def update(self, acceptance: torch.Tensor) -> None:
        """One adaptation step from each row's acceptance probability in [0, 1]."""
        self.t += 1
        t = self.t
        weight = 1.0 / (t + self.t0)
        self.h_bar = (1 - weight) * self.h_bar + weight * (self.target - acceptance)
        self.log_step = self.mu - math.sqrt(t) / self.gamma * self.h_bar
        eta = t**-self.kappa
        self.log_step_bar = eta * self.log_step + (1 - eta) * self.log_step_bar


def hamiltonian_transition(
    z: torch.Tensor,
    energy: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    target: Energy,
    step: torch.Tensor,
    mass_cholesky: torch.Tensor,
    normal: torch.Tensor,
    leapfrog_steps: int,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """One HMC proposal per row with mass matrix M = L L^T (``mass_cholesky`` L, (N, k, k)), momentum p = L ``normal``
    ~ N(0, M), ``leapfrog_steps`` leapfrog steps of size ``step`` (N,). With one leapfrog step this is MALA with
    the preconditioned proposal z' ~ N(z - step^2/2 M^-1 grad U, step^2 M^-1). Returns (proposal, its (U, grad U,
    G(z')), log acceptance ratio U(z) + K(p) - U(z') - K(p'), NaN mapped to -inf)."""
    value, grad, _ = energy
    eps = step[:, None]

    def velocity(p: torch.Tensor) -> torch.Tensor:  # M^-1 p
        return torch.cholesky_solve(p.double()[:, :, None], mass_cholesky)[:, :, 0].to(p.dtype)

    p = (mass_cholesky @ normal.double()[:, :, None])[:, :, 0].to(z.dtype)
    kinetic = 0.5 * normal.pow(2).sum(1)  # p^T M^-1 p / 2 with p = L normal
    p = p - 0.5 * eps * grad
    proposal, new = z, energy
    for leap in range(leapfrog_steps):
        proposal = proposal + eps * velocity(p)
        new = target(proposal)
        p = p - (eps if leap < leapfrog_steps - 1 else 0.5 * eps) * new[1]
    new_kinetic = 0.5 * (p * velocity(p)).sum(1)
    log_ratio = torch.nan_to_num(value + kinetic - new[0] - new_kinetic, nan=-torch.inf)
    return proposal, new, log_ratio


def chain_diagnostics(draws: torch.Tensor) -> dict[str, torch.Tensor]:
    """ArviZ's rank-normalised split R-hat and bulk and tail effective sample sizes (Vehtari et al. 2021) per
    image of ``draws`` (B, chains, draws, k): the worst coordinate's value (largest R-hat, smallest ESS), each (B,);
    NaN with fewer than 4 draws per chain (split R-hat needs two halves of two)."""
    if draws.shape[2] < 4:
        return {name: torch.full((len(draws),), float("nan"), dtype=torch.float64) for name in MCMC_DIAGNOSTICS}
    import arviz

    worst: dict[str, list[float]] = {name: [] for name in MCMC_DIAGNOSTICS}
    for image in draws.double().cpu().numpy():
        dataset = arviz.convert_to_dataset(image)
        worst["rhat"].append(float(arviz.rhat(dataset)["x"].max()))
        worst["ess_bulk"].append(float(arviz.ess(dataset, method="bulk")["x"].min()))
        worst["ess_tail"].append(float(arviz.ess(dataset, method="tail")["x"].min()))
    return {name: torch.tensor(values, dtype=torch.float64) for name, values in worst.items()}

"""Building blocks of gradient-based MCMC: dual-averaging step-size adaptation, one Hamiltonian transition with a
per-row mass matrix, an independence Metropolis-Hastings move from a Gaussian mixture over known modes (so chains
can jump between modes that gradient steps never cross), and ArviZ convergence diagnostics (R-hat, bulk and tail
ESS) per image.

These are independent of the model: the target is given as an ``energy`` function returning, per row,
U(z) = -log p(z) + const and its gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = [
    "DualAveraging",
    "Energy",
    "ModeMixture",
    "accepted_state",
    "chain_diagnostics",
    "hamiltonian_transition",
    "independence_transition",
]

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


class ModeMixture:
    """Per row, a Gaussian mixture q(z) = sum_j w_j N(z; mu_j, scale^2 H_j^-1) over S modes mu_j (N, S, k) with
    precision matrices H_j (N, S, k, k) and log weights (N, S) (normalised here): the proposal of an independence
    Metropolis-Hastings move. Computed in float64."""

    def __init__(
        self, modes: torch.Tensor, precisions: torch.Tensor, log_weights: torch.Tensor, scale: float = 1.0
    ) -> None:
        self.modes = modes.double()
        self.cholesky = torch.linalg.cholesky(precisions.double())  # H_j = L_j L_j^T
        self.log_weights = torch.log_softmax(log_weights.double(), dim=1)
        self.scale = float(scale)
        k = modes.shape[-1]
        log_det = 2 * self.cholesky.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # log det H_j
        self.log_normaliser = 0.5 * log_det - k * math.log(self.scale) - 0.5 * k * math.log(2 * math.pi)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z) per row of z (N, k), float64 (N,)."""
        difference = z.double()[:, None, :] - self.modes  # (N, S, k)
        whitened = (self.cholesky.transpose(-2, -1) @ difference[..., None])[..., 0]  # L_j^T (z - mu_j)
        quadratic = whitened.pow(2).sum(-1) / self.scale**2
        return torch.logsumexp(self.log_weights + self.log_normaliser - 0.5 * quadratic, dim=1)

    def draw(self, uniform: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
        """z ~ q per row from a U(0, 1) (N,) that picks the component and standard normals (N, k), float64."""
        cumulative = self.log_weights.exp().cumsum(1)
        component = torch.searchsorted(cumulative, uniform.double()[:, None]).clamp(max=self.modes.shape[1] - 1)
        rows = torch.arange(len(uniform), device=uniform.device)
        factor = self.cholesky[rows, component[:, 0]]
        offset = torch.linalg.solve_triangular(factor.transpose(-2, -1), normal.double()[:, :, None], upper=True)
        return self.modes[rows, component[:, 0]] + self.scale * offset[:, :, 0]


def accepted_state(
    accept: torch.Tensor, new: tuple[torch.Tensor, ...], old: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, ...]:
    """Per row, the proposal's (U, grad U, G(z)) where ``accept`` (N,) holds, the current one elsewhere."""
    return tuple(torch.where(accept.view(-1, *[1] * (a.ndim - 1)), b, a) for a, b in zip(old, new))


def independence_transition(
    z: torch.Tensor,
    energy: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    target: Energy,
    proposal_density: ModeMixture,
    draws: torch.Tensor,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """One independence Metropolis-Hastings step per row: z' ~ q, accepted with probability
    min(1, p(z') q(z) / (p(z) q(z'))), from ``draws`` (N, k + 2): U(0, 1) for the component, k normals and
    U(0, 1) for the acceptance. Leaves p invariant whatever q is. Returns (the new state, its (U, grad U, G(z)),
    the acceptance probability (N,) float64)."""
    k = z.shape[1]
    proposal = proposal_density.draw(draws[:, 0], draws[:, 1 : k + 1]).to(z.dtype)
    new = target(proposal)
    log_ratio = (
        energy[0].double() - new[0].double() + proposal_density.log_prob(z) - proposal_density.log_prob(proposal)
    )
    log_ratio = torch.nan_to_num(log_ratio, nan=-torch.inf)
    accept = torch.log(draws[:, k + 1].double()) < log_ratio
    z = torch.where(accept[:, None], proposal, z)
    state = accepted_state(accept, new, energy)
    return z, state, log_ratio.clamp(max=0).exp()


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

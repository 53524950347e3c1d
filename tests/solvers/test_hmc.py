"""The preconditioned latent sampler (solver=hmc) against closed forms: a linear G makes p(z | y) Gaussian, one
MALA step's acceptance ratio is a ratio of Gaussian densities, dual averaging meets its target on a Gaussian, the
jumps' mixture proposal is the mixture density, and on a posterior with two symmetric modes the jumps give each
mode half of every chain's draws."""

from __future__ import annotations

import pytest
import torch

from csgm.errors import CsgmError
from csgm.measurement import MeasurementModel
from csgm.operators import Noise, build_operator
from csgm.recovery.verdicts import Verdict, verdicts
from csgm.solvers import build_solver
from csgm.generators import Generator
from csgm.solvers.mcmc import (
    DualAveraging,
    ModeMixture,
    chain_diagnostics,
    hamiltonian_transition,
    independence_transition,
)
from tests.solvers.test_langevin import SHAPE, LinearGenerator, closed_form

FAST = {"name": "hmc", "mode_starts": 8, "mode_steps": 5, "warmup": 50, "draws": 150, "thin": 1}
DRAWS = 8 * 150  # chains x draws of the closed-form tests (4 leapfrog steps: nearly independent draws)


@pytest.fixture(scope="module")
def problem():
    g = torch.Generator().manual_seed(0)
    generator = LinearGenerator(
        0.05 * torch.randn(16, 3, generator=g, dtype=torch.float64), torch.full((16,), 0.5, dtype=torch.float64)
    )
    A = build_operator({"name": "gaussian", "normalize": True}, SHAPE, seed=0, m=6).double()
    model = MeasurementModel(A, Noise("gaussian", 0.02), seed=0)
    x = generator(torch.randn(1, 3, generator=g, dtype=torch.float64))
    return generator, A, model, model.measure(x, [0])


def test_hmc_matches_the_closed_form_posterior(problem):
    """8 chains x 150 kept steps: each pixel's mean within 5 Monte Carlo standard errors (std / sqrt(draws / 2))
    and its std within 15% of the closed form; the rows mix (R-hat, ESS)."""
    generator, A, model, y = problem
    solver = build_solver({**FAST, "chains": 8, "max_rhat": 1.05})
    out = solver.solve(y, model, [0], generator, seed=0)
    mean, cov = closed_form(generator, A, y, 0.02)
    std = cov.diagonal().sqrt()
    assert bool(((out.x_hat.flatten() - mean).abs() < 5 * std / (DRAWS / 2) ** 0.5).all())
    torch.testing.assert_close(out.pixel_std.flatten(), std, rtol=0.15, atol=0)
    assert float(out.diagnostics["rhat"][0]) < 1.05 and float(out.diagnostics["ess_bulk"][0]) > 400
    assert verdicts(out, solver.health_limits)[0] == Verdict("ok")
    assert 0.5 < float(out.acceptance[0]) < 0.9


def test_mismatch_term_matches_the_closed_form_posterior(problem):
    """x = G(z) + e, e ~ N(0, tau^2 I): x is Gaussian a priori (mean b, covariance W W^T + tau^2 I), so its
    posterior given y = A x + noise is known; the sampler's pixel mean and std match it."""
    generator, A, model, y = problem
    tau = 0.03
    out = build_solver({**FAST, "chains": 8, "mismatch": tau}).solve(y, model, [0], generator, seed=0)
    matrix = A.matrix.double()
    prior = generator.weight @ generator.weight.T + tau**2 * torch.eye(16, dtype=torch.float64)
    precision = torch.linalg.inv(prior) + matrix.T @ matrix / 0.02**2
    cov = torch.linalg.inv(precision)
    mean = cov @ (torch.linalg.solve(prior, generator.bias) + matrix.T @ y[0] / 0.02**2)
    std = cov.diagonal().sqrt()
    assert bool(((out.x_hat.flatten() - mean).abs() < 5 * std / (DRAWS / 2) ** 0.5).all())
    torch.testing.assert_close(out.pixel_std.flatten(), std, rtol=0.15, atol=0)


def test_one_mala_step_has_the_hand_computed_acceptance_ratio():
    """With one leapfrog step the log ratio is log pi(z') - log pi(z) + log q(z | z') - log q(z' | z) for the
    preconditioned proposal q(. | z) = N(z - eps^2/2 M^-1 grad U(z), eps^2 M^-1) (torch.distributions)."""

    def energy(z):
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            value = 0.25 * z.pow(4).sum(1) + 0.5 * (z @ torch.tensor([[2.0, 0.3], [0.3, 1.0]], dtype=z.dtype) * z).sum(
                1
            )
            (grad,) = torch.autograd.grad(value.sum(), z)
        return value.detach(), grad, z.detach()

    z = torch.tensor([[0.4, -1.1], [1.5, 0.2]], dtype=torch.float64)
    mass = torch.tensor([[3.0, 0.5], [0.5, 1.5]], dtype=torch.float64)
    cholesky = torch.linalg.cholesky(mass).expand(2, 2, 2)
    step = torch.tensor([0.3, 0.7], dtype=torch.float64)
    normal = torch.tensor([[0.2, -0.5], [-1.0, 0.8]], dtype=torch.float64)
    proposal, _, log_ratio = hamiltonian_transition(z, energy(z), energy, step, cholesky, normal, 1)
    inverse = torch.linalg.inv(mass)

    def log_q(to, start, eps):
        centre = start - 0.5 * eps**2 * inverse @ energy(start[None])[1][0]
        return torch.distributions.MultivariateNormal(centre, eps**2 * inverse).log_prob(to)

    for i in range(2):
        expected = (
            energy(z[i : i + 1])[0][0]
            - energy(proposal[i : i + 1])[0][0]
            + log_q(z[i], proposal[i], step[i])
            - log_q(proposal[i], z[i], step[i])
        )
        torch.testing.assert_close(log_ratio[i], expected)


def test_dual_averaging_reaches_the_target_acceptance_on_a_gaussian():
    """MALA on N(0, diag(1..100)) in 10 dimensions with an identity mass matrix: after 400 adaptation steps the
    frozen step accepts 0.65 +- 0.05 of proposals (64 chains x 400 steps)."""
    scales = torch.logspace(0, 1, 10, dtype=torch.float64)

    def energy(z):
        return 0.5 * (z / scales).pow(2).sum(1), z / scales**2, z

    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 10, generator=g, dtype=torch.float64) * scales
    cholesky = torch.eye(10, dtype=torch.float64).expand(64, 10, 10)
    adaptation = DualAveraging(torch.full((1,), 1.0, dtype=torch.float64), target=0.65)
    accepted = []
    for t in range(800):
        step = (adaptation.step if t < 400 else adaptation.final).expand(64)
        normal, uniform = torch.randn(64, 10, generator=g, dtype=torch.float64), torch.rand(64, generator=g)
        proposal, _, log_ratio = hamiltonian_transition(z, energy(z), energy, step, cholesky, normal, 1)
        probability = log_ratio.clamp(max=0).exp()
        z = torch.where((uniform.log() < log_ratio)[:, None], proposal, z)
        if t < 400:
            adaptation.update(probability.mean()[None])
        else:
            accepted.append(probability.mean())
    assert abs(float(torch.stack(accepted).mean()) - 0.65) < 0.05


def test_diagnostics_flag_chains_that_do_not_mix():
    """Independent draws pass (R-hat < 1.01, ESS near the draw count); chains that stay at distinct values
    (a step so small they never move) fail R-hat, and a slow random walk has a tiny ESS."""
    g = torch.Generator().manual_seed(0)
    mixing = torch.randn(1, 4, 500, 3, generator=g, dtype=torch.float64)
    stuck = torch.arange(4, dtype=torch.float64)[None, :, None, None] + 1e-3 * mixing
    walk = torch.randn(1, 4, 500, 3, generator=g, dtype=torch.float64).mul(0.01).cumsum(2)
    result = chain_diagnostics(torch.cat([mixing, stuck, walk]))
    assert float(result["rhat"][0]) < 1.01 and float(result["ess_bulk"][0]) > 1000
    assert float(result["rhat"][1]) > 1.5 and float(result["ess_bulk"][2]) < 50


def test_rows_whose_chains_do_not_move_are_not_converged(problem):
    """No mode search, no adaptation and a step of 1e-6: the chains stay at their over-dispersed starts."""
    generator, _, model, y = problem
    solver = build_solver(
        {
            **FAST,
            "mode_steps": 0,
            "resample_modes": False,
            "warmup": 0,
            "draws": 50,
            "initial_step": 1e-6,
            "mode_starts": 4,
        }
    )
    out = solver.solve(y, model, [0], generator, seed=0)
    assert float(out.diagnostics["rhat"][0]) > 1.5
    verdict = verdicts(out, solver.health_limits)[0]
    assert verdict.status == "not_converged" and "rhat>1.01" in verdict.reason.split(";")


def test_samples_and_diagnostics_do_not_depend_on_the_batch(problem):
    generator, _, model, _ = problem
    solver = build_solver({**FAST, "draws": 40, "warmup": 20})
    two = model.measure(generator(torch.zeros(2, 3, dtype=torch.float64)), [0, 1])
    together = solver.solve(two, model, [3, 9], generator, seed=1)
    alone = solver.solve(two[1:], model, [9], generator, seed=1)
    torch.testing.assert_close(alone.samples, together.samples[1:])
    torch.testing.assert_close(alone.pixel_std, together.pixel_std[1:])
    for name, values in together.diagnostics.items():
        torch.testing.assert_close(alone.diagnostics[name], values[1:], msg=name)


def test_bad_mismatch_settings_are_refused_in_one_line(problem, tmp_path):
    generator, _, _, y = problem
    with pytest.raises(CsgmError, match=r"solver.mismatch='nowhere.pt' is neither a number nor a file"):
        build_solver({"name": "hmc", "mismatch": "nowhere.pt"})
    phase = MeasurementModel(
        build_operator({"name": "phase_retrieval"}, SHAPE, seed=0, m=6).double(), Noise("gaussian", 0.02)
    )
    with pytest.raises(CsgmError, match=r"mismatch term needs a linear operator and noise=gaussian.*solver.mismatch=0"):
        build_solver({**FAST, "mismatch": 0.1}).solve(y, phase, [0], generator)
    torch.save(torch.ones(5), tmp_path / "tau.pt")
    A = build_operator({"name": "gaussian", "normalize": True}, SHAPE, seed=0, m=6).double()
    with pytest.raises(CsgmError, match=r"has 5 values; the images have 16 pixels"):
        build_solver({**FAST, "mismatch": str(tmp_path / "tau.pt")}).solve(
            y, MeasurementModel(A, Noise("gaussian", 0.02)), [0], generator
        )


class SquareGenerator(Generator):
    """G(z) = w z^2 + 1/2 with a one-dimensional latent: p(z | y) is symmetric in z, two modes of equal mass."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__(1, SHAPE)
        self.register_buffer("weight", weight)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (z.pow(2) * self.weight + 0.5).view(-1, *SHAPE)


def test_mode_mixture_is_the_gaussian_mixture_density_and_draws_from_it():
    g = torch.Generator().manual_seed(0)
    modes = torch.randn(1, 3, 2, generator=g, dtype=torch.float64)
    factors = torch.randn(1, 3, 2, 2, generator=g, dtype=torch.float64)
    precisions = factors @ factors.transpose(-2, -1) + torch.eye(2, dtype=torch.float64)
    log_weights = torch.tensor([[0.0, 1.0, -1.0]], dtype=torch.float64)
    mixture = ModeMixture(modes, precisions, log_weights, scale=1.5)
    components = torch.distributions.MultivariateNormal(modes[0], precision_matrix=precisions[0] / 1.5**2)
    z = torch.randn(5, 2, generator=g, dtype=torch.float64)
    expected = torch.logsumexp(torch.log_softmax(log_weights[0], 0) + components.log_prob(z[:, None]), dim=1)
    rows = ModeMixture(modes.expand(5, -1, -1), precisions.expand(5, -1, -1, -1), log_weights.expand(5, -1), 1.5)
    torch.testing.assert_close(rows.log_prob(z), expected)
    count = 40_000
    draws = ModeMixture(
        modes.expand(count, -1, -1), precisions.expand(count, -1, -1, -1), log_weights.expand(count, -1), 1.5
    ).draw(torch.rand(count, generator=g, dtype=torch.float64), torch.randn(count, 2, generator=g, dtype=torch.float64))
    weights = torch.softmax(log_weights[0], 0)
    mean = weights @ modes[0]
    torch.testing.assert_close(draws.mean(0), mean, atol=0.03, rtol=0)
    second = sum(w * (c + torch.outer(mu, mu)) for w, c, mu in zip(weights, components.covariance_matrix, modes[0]))
    torch.testing.assert_close(torch.cov(draws.T), second - torch.outer(mean, mean), atol=0.05, rtol=0.05)
    assert float(mixture.log_prob(modes[0, 1:2])) > float(mixture.log_prob(modes[0, 1:2] + 10))


def test_independence_jumps_give_the_exact_mode_masses_from_wrong_proposal_weights():
    """Target: N(-3, 0.5^2) with mass 0.8 and N(3, 0.5^2) with mass 0.2; proposal: the same modes weighted 1:1 and
    too wide. Metropolis-Hastings corrects the weights: the chains spend 80% +- 3% of their time at -3."""
    means, std, mass = torch.tensor([-3.0, 3.0], dtype=torch.float64), 0.5, torch.tensor([0.8, 0.2])

    def energy(z):
        log_density = torch.logsumexp(mass.log().double() - 0.5 * ((z - means) / std).pow(2), dim=1)
        return -log_density, torch.zeros_like(z), z

    rows = 200
    proposal = ModeMixture(
        means.view(1, 2, 1).expand(rows, -1, -1),
        torch.full((rows, 2, 1, 1), 1 / 0.8**2, dtype=torch.float64),
        torch.zeros(rows, 2, dtype=torch.float64),
    )
    g = torch.Generator().manual_seed(0)
    z = torch.full((rows, 1), 3.0, dtype=torch.float64)
    state, left = energy(z), []
    for step in range(300):
        draws = torch.cat(
            [torch.rand(rows, 1, generator=g), torch.randn(rows, 1, generator=g), torch.rand(rows, 1, generator=g)], 1
        )
        z, state, _ = independence_transition(z, state, energy, proposal, draws.double())
        if step >= 50:
            left.append((z[:, 0] < 0).double().mean())
    assert abs(float(torch.stack(left).mean()) - 0.8) < 0.03


def test_jumps_let_every_chain_visit_both_symmetric_modes():
    """G(z) = w z^2: the two modes +-z0 have equal mass and the barrier at 0 stops the Hamiltonian steps. With jumps
    every chain spends 50% +- 15% of its draws at each mode and R-hat is small; without them every chain stays at
    one mode."""
    g = torch.Generator().manual_seed(0)
    generator = SquareGenerator(0.2 * torch.rand(16, generator=g, dtype=torch.float64) + 0.1)
    A = build_operator({"name": "gaussian", "normalize": True}, SHAPE, seed=0, m=6).double()
    model = MeasurementModel(A, Noise("gaussian", 0.02), seed=0)
    y = model.measure(generator(torch.full((1, 1), 1.5, dtype=torch.float64)), [0])
    options = {**FAST, "draws": 300, "resample_modes": False}
    run = build_solver(options).sample(y, model, [0], generator, seed=0)
    positive = (run.latents[0, :, :, 0] > 0).double().mean(1)  # per chain
    assert bool(((positive - 0.5).abs() < 0.15).all()), positive
    assert float(chain_diagnostics(run.latents)["rhat"][0]) < 1.05
    assert float(run.jump_acceptance[0]) > 0.3
    stuck = build_solver({**options, "jumps": 0}).sample(y, model, [0], generator, seed=0)
    assert set((stuck.latents[0, :, :, 0] > 0).double().mean(1).tolist()) <= {0.0, 1.0}

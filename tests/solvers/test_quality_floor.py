"""A quality floor for every conf/solver config, on problems whose answer is known in closed form.

Generative solvers get a linear generator G(z) = W2 W1 z + b (two stages, so ILO has a layer): the CSGM MAP,
PGD's constrained least squares, ILO's least squares over the intermediate layer and the Gaussian posterior
mean of the samplers are all closed form. Sparse solvers get a k-sparse signal in their basis (Sparse-Gen: G(z)
plus a sparse deviation), Wirtinger flow a phase retrieval problem with m = 4n, DIP an image to fit. Each config
(its own options, with iteration counts capped and the tuned option set for the problem) must reach the answer
within the stated tolerance and end with a lower data term than after one iteration. The MALA acceptance of
one step is checked against a hand computation, and options that are off by default (the lambda_z and l1
regularisers of CSGM, CS-DIP's total variation) are exercised.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch

from csgm.cli import plain
from csgm.generators import Generator
from csgm.measurement import MeasurementModel
from csgm.operators import Noise, build_operator
from csgm.seeding import seeded_rng
from csgm.solvers import build_solver
from csgm.solvers.sparsity_bases import build_basis
from tests.diffusion_helpers import GaussianDiffusion, gaussian_posterior
from tests.helpers import compose_config, conf_options

SMALL, SPARSE = (1, 4, 4), (1, 8, 8)
IDS = [2, 5]
ITERATION_KEYS = ("iterations", "max_iterations", "steps", "layer_iterations", "polish_iterations", "mode_steps")
CAPS = {"iterations": 1000, "restarts": 2, "steps": 400, "burn_in": 200, "chains": 16, "start_bank": 256}


class TwoLayerLinear(Generator):
    """G(z) = W2 (W1 z) + b, as two stages (an intermediate layer of width W1.shape[0])."""

    def __init__(self, first: torch.Tensor, second: torch.Tensor, bias: torch.Tensor, image_shape) -> None:
        super().__init__(first.shape[1], image_shape)
        self.register_buffer("first", first)
        self.register_buffer("second", second)
        self.register_buffer("bias", bias)

    @property
    def weight(self) -> torch.Tensor:
        return self.second @ self.first

    def decoder_stages(self):
        return [lambda z: z @ self.first.T, lambda h: (h @ self.second.T + self.bias).view(-1, *self.image_shape)]

    def decode(self, z):
        return (z @ self.weight.T + self.bias).view(-1, *self.image_shape)


@functools.cache
def solver_config(option: str) -> dict:
    return plain(compose_config("recover", [f"solver={option}"]))["solver"]


def capped(option: str, **settings) -> dict:
    """The config's own options with iteration counts capped (and ``settings``, e.g. the tuned option)."""
    cfg = dict(solver_config(option))
    for key, cap in CAPS.items():
        if key in cfg:
            cfg[key] = min(cfg[key], cap)
    return {**cfg, **settings}


def one_iteration(cfg: dict) -> dict:
    """The same config stopped after one iteration of each of its loops: its start."""
    return {**cfg, **{key: 1 for key in ITERATION_KEYS if key in cfg}}


def linear_generator(seed: int = 0) -> TwoLayerLinear:
    g = torch.Generator().manual_seed(seed)
    first = torch.randn(6, 3, generator=g, dtype=torch.float64) / math.sqrt(3)
    second = 0.08 * torch.randn(16, 6, generator=g, dtype=torch.float64) / math.sqrt(6)
    return TwoLayerLinear(first, second, torch.full((16,), 0.5, dtype=torch.float64), SMALL)


def gaussian_problem(std: float = 0.02, m: int = 12):
    """(G, model, y, A as a matrix) with y = A G(z) + N(0, std^2) for two latents z ~ N(0, 0.09 I)."""
    generator = linear_generator()
    operator = build_operator({"name": "gaussian"}, SMALL, seed=1, m=m).double()
    model = MeasurementModel(operator, Noise("gaussian", std), seed=3)
    z = 0.3 * torch.randn(2, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    return generator, model, model.measure(generator(z), IDS), operator.matrix.double()


def map_estimate(generator, matrix, y, lambda_z: float, weight: float = 1.0) -> torch.Tensor:
    """G(z*) for z* = argmin weight ||A G(z) - y||^2 + lambda_z ||z||^2 (ridge regression in z)."""
    M = matrix @ generator.weight
    target = y - matrix @ generator.bias
    normal = weight * M.T @ M + lambda_z * torch.eye(M.shape[1], dtype=M.dtype)
    z = torch.linalg.solve(normal, weight * M.T @ target.T).T
    return generator(z)


def layer_least_squares(generator, matrix, y) -> torch.Tensor:
    """tail(h*) for h* = argmin_h ||A (W2 h + b) - y||^2: ILO's answer with an unbounded layer search."""
    M = matrix @ generator.second
    h = torch.linalg.lstsq(M, (y - matrix @ generator.bias).T).solution.T
    return (h @ generator.second.T + generator.bias).view(-1, *SMALL)


def posterior_mean(generator, matrix, y, std: float) -> torch.Tensor:
    """E[G(z) | y] for y = A G(z) + N(0, std^2 I), z ~ N(0, I): G of the ridge estimate with weight 1 / std^2 and
    lambda_z = 1 (the posterior of z is Gaussian, its mean that ridge estimate)."""
    return map_estimate(generator, matrix, y, lambda_z=1.0, weight=1.0 / std**2)


def sparse_signal(basis_name: str, options: dict, count: int = 2) -> torch.Tensor:
    """Images in [0.05, 0.95] that are 5-sparse in the basis: five bright pixels (pixel basis), or a constant
    (sparse in the DCT and wavelet bases) plus four other basis elements."""
    basis = build_basis(basis_name, SPARSE, **options).double()
    g = torch.Generator().manual_seed(4)
    c = torch.zeros(count, 64, dtype=torch.float64)
    for row in range(count):
        if basis_name == "pixel":
            c[row, torch.randperm(64, generator=g)[:5]] = 0.3 + 0.6 * torch.rand(5, generator=g, dtype=torch.float64)
        else:
            values = 0.35 * (2 * torch.rand(4, generator=g, dtype=torch.float64) - 1)
            c[row, torch.randperm(63, generator=g)[:4] + 1] = values
            c[row] += 0.5 * basis.analysis(torch.ones(1, *SPARSE, dtype=torch.float64))[0]  # the constant 0.5
    x = basis.synthesis(c)
    assert float(x.min()) > -1e-12 and float(x.max()) < 0.95 and int((basis.analysis(x).abs() > 1e-9).sum(1).max()) <= 8
    return x


def sparse_options(cfg: dict) -> tuple[str, dict]:
    basis = cfg.get("basis", "pixel")
    return basis, ({"wavelet": cfg["wavelet"], "levels": cfg["levels"]} if basis == "wavelet" else {})


def case(option: str):
    """(solver config, measurement model, y, generator or None, the known answer, the tolerance on the largest
    pixel error) for a config; 1-bit answers without dither are directions (unit norm)."""
    cfg = solver_config(option)
    name = cfg["name"]
    if name == "csgm":
        generator, model, y, matrix = gaussian_problem()
        run = capped(option)
        answer = map_estimate(generator, matrix, y, run.get("lambda_z", 0.0), run.get("l2_weight", 1.0))
        return run, model, y, generator, answer, 2e-3
    if name == "gauss_newton":
        generator, model, y, matrix = gaussian_problem()
        run = capped(option)
        return run, model, y, generator, map_estimate(generator, matrix, y, run["lambda_z"]), 2e-3
    if name == "hmc":
        generator, model, y, matrix = gaussian_problem(std=0.05)
        run = capped(option, mode_starts=8, warmup=100, draws=200)
        return run, model, y, generator, posterior_mean(generator, matrix, y, 0.05), 4e-3
    if name == "ilo":
        generator, model, y, matrix = gaussian_problem(m=14)
        answer = layer_least_squares(generator, matrix, y)
        return capped(option, radius=1e4, layer_lr=0.05), model, y, generator, answer, 2e-3
    if name == "pgd":  # its fixed point is the least-squares fit in range(G) when the projection has no prior term
        generator, model, y, matrix = gaussian_problem()
        run = capped(option, step=1.0)
        if "projection" in run:
            run["projection"] = {**run["projection"], "lambda_z": 0.0}
        return run, model, y, generator, map_estimate(generator, matrix, y, 0.0), 3e-3
    if name == "langevin":
        generator, model, y, matrix = gaussian_problem(std=0.05)
        run = capped(option, initial_temperature=1.0, thin=2)
        return run, model, y, generator, posterior_mean(generator, matrix, y, 0.05), 4e-3
    if name == "lasso":
        x = sparse_signal(*sparse_options(cfg))
        model = MeasurementModel(build_operator({"name": "gaussian"}, SPARSE, seed=2, m=40).double())
        return capped(option, lambda_l1=0.1), model, model.measure(x, IDS), None, x, 0.03  # lambda's shrinkage
    if name == "sparse_gen":
        basis_name, options = sparse_options(cfg)
        second = 0.05 * torch.randn(64, 6, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
        bias = torch.full((64,), 0.5, dtype=torch.float64)
        generator = TwoLayerLinear(linear_generator().first, second, bias, SPARSE)
        c = torch.zeros(2, 64, dtype=torch.float64)
        c[0, [5, 40]] = torch.tensor([0.3, -0.25], dtype=torch.float64)
        c[1, [17, 60]] = torch.tensor([-0.3, 0.2], dtype=torch.float64)
        deviation = build_basis(basis_name, SPARSE, **options).double().synthesis(c)  # 2-sparse in the solver's basis
        z = torch.randn(2, 3, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
        x = generator(z) + deviation
        model = MeasurementModel(build_operator({"name": "gaussian"}, SPARSE, seed=2, m=48).double())
        run = capped(option, lambda_nu=1.0)
        if "first_stage" in run:  # the answer minimises the joint objective: block-coordinate rounds reach it
            run["rounds"] = 4
        return run, model, model.measure(x, IDS), generator, x, 0.03
    if name == "biht":
        x = sparse_signal("dct", {}, count=2)
        model = MeasurementModel(build_operator({"name": "one_bit"}, SPARSE, seed=2, m=512).double())
        direction = x / x.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        return capped(option, sparsity=5), model, model.measure(x, IDS), None, direction, 0.02
    if name == "wirtinger_flow":
        x = torch.rand(2, *SMALL, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        model = MeasurementModel(build_operator({"name": "phase_retrieval"}, SMALL, seed=2, m=64).double())
        return capped(option, iterations=1000), model, model.measure(x, IDS), None, x, 1e-6
    if name == "dip":
        grid = torch.linspace(-1, 1, 8, dtype=torch.float64)
        blob = torch.exp(-((grid[:, None] - 0.2) ** 2 + (grid[None, :] + 0.1) ** 2) / 0.3)
        x = torch.stack([blob, blob.T.flip(0)]).view(2, *SPARSE)
        model = MeasurementModel(build_operator({"name": "identity"}, SPARSE).double())
        return capped(option, iterations=200), model, model.measure(x, IDS), None, x, 0.04
    if name in ("dps", "diffusion_langevin", "csgm_ddim"):
        return diffusion_case(option, name)
    pytest.fail(f"no known-answer problem for solver {name!r} (config {option}); add one to this test")


def diffusion_case(option: str, name: str):
    """A diffusion prior with the exact score of N(0.5, 0.2^2 I) pixels. dps and diffusion_langevin: y = x + N(0,
    0.02^2) (identity, a well-conditioned posterior of std 0.0196 per pixel around its closed-form mean; one DPS
    draw lies within three stds of it). csgm_ddim: 12 Gaussian measurements, and the ridge optimum through the
    (affine) DDIM map."""
    prior = GaussianDiffusion(SMALL, mu=0.0, s=0.4)
    x = (0.5 + 0.2 * torch.randn(2, *SMALL, generator=torch.Generator().manual_seed(0), dtype=torch.float64)).clamp(
        0, 1
    )
    if name == "csgm_ddim":
        model = MeasurementModel(
            build_operator({"name": "gaussian"}, SMALL, seed=2, m=12).double(), Noise("gaussian", 0.02)
        )
        y = model.measure(x, IDS)
        matrix = model.operator.matrix.double()
        run = capped(option, iterations=600)
        sampler = prior.with_sample_steps(run["ddim_steps"], clip=False)
        with torch.no_grad():
            b = sampler(torch.zeros(1, 16, dtype=torch.float64)).flatten(1)
            c = float(sampler(torch.eye(16, dtype=torch.float64)[:1]).flatten(1)[0, 0] - b[0, 0])
        design = c * matrix
        ridge = design.T @ design + run["lambda_z"] * torch.eye(16, dtype=torch.float64)
        z = torch.linalg.solve(ridge, design.T @ (y - b @ matrix.T).T).T
        return run, model, y, prior, (b + c * z).view(2, *SMALL), 2e-3
    model = MeasurementModel(build_operator({"name": "identity"}, SMALL).double(), Noise("gaussian", 0.02))
    y = model.measure(x, IDS)
    mean, _ = gaussian_posterior(prior, torch.eye(16, dtype=torch.float64), y, 0.02)
    if name == "diffusion_langevin":
        return capped(option, chains=64), model, y, prior, mean.view(2, *SMALL), 0.03  # 0.018
    # a sharp posterior needs fine steps: 0.25 with 100 steps, 0.028 with 400 (weight 0.3)
    return capped(option, weight=0.3, steps=400), model, y, prior, mean.view(2, *SMALL), 0.06


@pytest.mark.parametrize("option", conf_options("solver"))
def test_every_solver_reaches_the_known_answer(option):
    cfg, model, y, generator, answer, tolerance = case(option)
    out = build_solver(cfg).solve(y, model, IDS, generator, seed=0)
    estimate = out.x_hat
    if model.operator.scale_invariant:
        estimate = estimate / estimate.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    error = float((estimate - answer).abs().max())
    assert error < tolerance, f"{option}: largest pixel error {error:.3g} >= {tolerance}"
    if cfg["name"] not in ("langevin", "hmc", "diffusion_langevin"):  # a sampler's mean does not minimise the data term
        start = build_solver(one_iteration(cfg)).solve(y, model, IDS, generator, seed=0)
        assert bool((out.measurement_loss < start.measurement_loss).all()), option


def test_mala_acceptance_of_one_step_is_the_hand_computed_metropolis_test():
    """One MALA step from each chain's seeded start: the chains that accept are those whose Metropolis-Hastings
    log ratio log pi(z') - log pi(z) + log q(z | z') - log q(z' | z) exceeds the log of their uniform draw, with
    pi the Gaussian posterior and q the Langevin proposal, both written out here."""
    std, eta, chains, seed = 0.3, 0.3, 48, 3
    generator, model, y, matrix = gaussian_problem(std=std)
    solver = build_solver(
        {
            "name": "langevin",
            "mala": True,
            "chains": chains,
            "steps": 1,
            "burn_in": 0,
            "thin": 1,
            "step_size": eta,
            "initial_temperature": 1.0,
            "keep_samples": 1,
        }
    )
    run = solver.sample(y[:1], model, IDS[:1], generator, seed=seed)
    latents, acceptance = run.latents, run.acceptance
    M, offset = matrix @ generator.weight, matrix @ generator.bias

    def log_pi(z):
        return -(z @ M.T + offset - y[0]).pow(2).sum(1) / (2 * std**2) - 0.5 * z.pow(2).sum(1)

    def grad_log_pi(z):
        return -(z @ M.T + offset - y[0]) @ M / std**2 - z

    def log_q(to, start):
        return -(to - start - eta * grad_log_pi(start)).pow(2).sum(1) / (4 * eta)

    streams = [seeded_rng("langevin", seed, IDS[0], c) for c in range(chains)]
    z = torch.cat([torch.randn(1, 3, generator=g) for g in streams]).double()
    draws = torch.stack([torch.randn(4, generator=g) for g in streams]).double()
    proposal = z + eta * grad_log_pi(z) + math.sqrt(2 * eta) * draws[:, :3]
    log_ratio = log_pi(proposal) - log_pi(z) + log_q(z, proposal) - log_q(proposal, z)
    uniform = torch.special.ndtr(draws[:, 3])
    accept = torch.log(uniform) < log_ratio
    assert 0.2 < float(accept.double().mean()) < 0.8  # a step size at which the test decides
    assert acceptance[0].tolist() == accept.double().tolist()
    torch.testing.assert_close(latents[0], torch.where(accept[:, None], proposal, z))


def test_csgm_l1_data_term_ignores_gross_outliers():
    """l1_weight (off by default): min ||A G(z) - y||_1 recovers z exactly from measurements with two gross
    outliers (least absolute deviations), where the default squared loss is pulled away."""
    generator, model, _, matrix = gaussian_problem(m=16)
    z = 0.3 * torch.randn(2, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    x = generator(z)
    y = model.operator(x)
    y[:, [3, 11]] += 5.0
    noiseless = MeasurementModel(model.operator)
    robust = build_solver(capped("csgm", l1_weight=1.0, l2_weight=0.0)).solve(y, noiseless, IDS, generator)
    squared = build_solver(capped("csgm")).solve(y, noiseless, IDS, generator)
    assert float((robust.x_hat - x).abs().max()) < 1e-3 < float((squared.x_hat - x).abs().max())


def test_dip_total_variation_weight_smooths_the_fit():
    """tv_weight (off by default) adds the total variation to the objective: fitting a noisy image, the weighted
    fit has a clearly lower total variation than the unweighted one."""
    grid = torch.linspace(-1, 1, 8, dtype=torch.float64)
    clean = torch.exp(-(grid[:, None] ** 2 + grid[None, :] ** 2) / 0.5).view(1, *SPARSE)
    model = MeasurementModel(build_operator({"name": "identity"}, SPARSE).double(), Noise("gaussian", 0.1), seed=0)
    y = model.measure(clean, IDS[:1])
    plain_fit = build_solver(capped("dip", iterations=200)).solve(y, model, IDS[:1])
    smooth = build_solver(capped("dip", iterations=200, tv_weight=0.2)).solve(y, model, IDS[:1])

    def tv(image):
        vertical, horizontal = image[..., 1:, :] - image[..., :-1, :], image[..., 1:] - image[..., :-1]
        return float(vertical.abs().sum() + horizontal.abs().sum())

    assert tv(smooth.x_hat) < 0.8 * tv(plain_fit.x_hat)


class Wave(Generator):
    """G(z) = 0.5 + 0.3 sin(3 z) v for a one-dimensional z: a data term with a local minimum in every period."""

    def __init__(self) -> None:
        super().__init__(1, SMALL)
        self.register_buffer("direction", torch.linspace(-1, 1, 16, dtype=torch.float64))

    def decode(self, z):
        return (0.5 + 0.3 * torch.sin(3 * z) * self.direction).view(-1, *SMALL)


def test_csgm_keeps_the_restart_with_the_lowest_data_term():
    """Two planted starts per image, one in the true basin and one a period away (a local minimum of the data
    term): whichever order they come in, the kept estimate is the true image."""
    generator = Wave()
    model = MeasurementModel(build_operator({"name": "gaussian"}, SMALL, seed=1, m=8).double())
    z_true = torch.tensor([[0.2], [-0.3]], dtype=torch.float64)
    y = model.measure(generator(z_true), IDS)
    period = 2 * math.pi / 3
    starts = torch.cat([z_true + 0.1, z_true + period + 0.1], 1)  # (image, restart): the true basin first
    solver = build_solver(capped("csgm", iterations=200))
    for order in ([0, 1], [1, 0]):
        out = solver.optimise(starts[:, order].reshape(-1, 1), y, model, generator)
        torch.testing.assert_close(out.z, z_true, atol=1e-3, rtol=0)


def test_wirtinger_spectral_start_has_the_norm_the_intensities_imply():
    """Spectral initialisation: the leading eigenvector of (1/m) sum y_i^2 a_i a_i^T is near x's direction and, for
    N(0, 1) rows, sum y_i^2 = m ||x||^2 on average: the start has x's norm (within the chi-square's spread)."""
    from csgm.solvers.wirtinger import spectral_init

    x = torch.rand(2, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    matrix = build_operator({"name": "phase_retrieval"}, SPARSE, seed=2, m=512).matrix.double()
    starts = torch.randn(2, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x0 = spectral_init(matrix, (x @ matrix.T).pow(2), starts, iterations=100)
    ratio = x0.norm(dim=1) / x.norm(dim=1)
    assert bool(((ratio - 1).abs() < 0.15).all()), ratio
    cosine = (x0 * x).sum(1).abs() / (x0.norm(dim=1) * x.norm(dim=1))
    assert bool((cosine > 0.7).all()), cosine  # 0.78 and 0.81 here: the start is rough at m = 8n

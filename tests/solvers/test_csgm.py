"""CSGM known answers: linear G reaches least squares / ridge; gen_span images are recovered; restart
selection, divergence, batch independence, stall stopping and lr decay."""

from __future__ import annotations

import pytest
import torch

from csgm.errors import CsgmError
from csgm.generators import Generator, VAEDecoder
from csgm.generators.checkpoint import load_generator
from csgm.metrics import per_pixel_error
from csgm.operators import build_operator
from csgm.recovery.module import gen_span_images
from csgm.solvers import build_solver
from csgm.solvers.csgm import CSGMSolver, initial_latents, select_restarts


class LinearGenerator(Generator):
    """G(z) = W z, reshaped: the CSGM problem becomes (regularised) least squares."""

    def __init__(self, weight: torch.Tensor, image_shape):
        super().__init__(weight.shape[1], image_shape)
        self.register_buffer("weight", weight)

    def decode(self, z):
        return (z @ self.weight.T).view(-1, *self.image_shape)


class NaNWhenPositive(Generator):
    """Returns NaN images wherever z[:, 0] > 0 (a planted divergence); otherwise a fixed image."""

    def __init__(self):
        super().__init__(2, (1, 2, 2))

    def decode(self, z):
        base = torch.sigmoid(z[:, 1:2] * 0 + 0.3).view(-1, 1, 1, 1).expand(-1, 1, 2, 2)
        return torch.where((z[:, 0] > 0).view(-1, 1, 1, 1), torch.full_like(base, float("nan")), base)


def linear_problem(seed=0, m=10, k=5, shape=(1, 4, 4)):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(16, k, generator=g, dtype=torch.float64) / 4
    G = LinearGenerator(weight, shape)
    A = build_operator({"name": "gaussian"}, shape, seed=seed, m=m).double()
    y = torch.randn(3, m, generator=g, dtype=torch.float64)
    return G, A, y, A.matrix @ weight


@pytest.mark.parametrize("lambda_z", [0.0, 0.5])
def test_linear_generator_reaches_the_ridge_solution(lambda_z):
    G, A, y, M = linear_problem()
    k = M.shape[1]
    expected = torch.linalg.solve(M.T @ M + lambda_z * torch.eye(k, dtype=M.dtype), M.T @ y.T).T
    step = 0.9 / (2 * (torch.linalg.matrix_norm(M, 2) ** 2 + lambda_z))
    solver = CSGMSolver(lr=float(step), iterations=3000, restarts=2, optimizer="sgd", lambda_z=lambda_z)
    out = solver.solve(y, A, [0, 1, 2], G, seed=0)
    torch.testing.assert_close(out.z, expected, rtol=1e-6, atol=1e-6)
    adam = CSGMSolver(lr=0.01, iterations=3000, restarts=1, lambda_z=lambda_z).solve(y, A, [0, 1, 2], G)
    torch.testing.assert_close(adam.z, expected, rtol=1e-3, atol=1e-3)


def test_gen_span_images_are_recovered_without_noise(vae_checkpoint):
    G, _ = load_generator(vae_checkpoint)
    ids = list(range(8))
    x = gen_span_images(G, ids, seed=0)
    A = build_operator({"name": "gaussian"}, G.image_shape, seed=0, m=4 * G.latent_dim)
    solver = CSGMSolver(lr=0.01, iterations=1000, restarts=5)
    out = solver.solve(A(x), A, ids, G, seed=0)
    assert float(per_pixel_error(out.x_hat, x).mean()) < 1e-3


def test_restart_selection_picks_the_planted_good_start(vae_checkpoint):
    G, _ = load_generator(vae_checkpoint)
    z_true = torch.randn(3, G.latent_dim, generator=torch.Generator().manual_seed(4))
    x = G(z_true)
    A = build_operator({"name": "gaussian"}, G.image_shape, seed=1, m=100)
    bad = torch.full_like(z_true, 6.0)
    z0 = torch.stack([bad, z_true], dim=1).flatten(0, 1)  # restart 0 bad, restart 1 at the truth
    out = CSGMSolver(lr=0.01, iterations=20, restarts=2).optimise(z0, A(x), A, G)
    assert torch.allclose(out.z, z_true, atol=0.05)
    assert float(per_pixel_error(out.x_hat, x).max()) < 1e-4
    best, dropped = select_restarts(torch.tensor([[3.0, 1.0, 2.0], [float("nan"), 5.0, float("inf")]]))
    assert best.tolist() == [1, 1] and dropped.tolist() == [0, 2]


def test_diverged_restarts_are_dropped_and_reported():
    G = NaNWhenPositive()
    A = build_operator({"name": "identity"}, (1, 2, 2))
    y = torch.full((2, 4), 0.5)
    z0 = torch.tensor(
        [
            [5.0, 0.0],
            [-5.0, 0.0],  # image 0: restart 0 diverges, restart 1 is fine
            [5.0, 0.0],
            [3.0, 0.0],
        ]
    )  # image 1: both diverge
    out = CSGMSolver(lr=0.1, iterations=5, restarts=2).optimise(z0, y, A, G)
    assert out.dropped_restarts.tolist() == [1, 2]
    assert out.all_restarts_diverged.tolist() == [False, True]
    assert torch.isfinite(out.x_hat).all() and torch.isfinite(out.measurement_loss).all()


def test_results_do_not_depend_on_the_batch(vae_checkpoint):
    G, _ = load_generator(vae_checkpoint)
    ids = [3, 9, 4, 11]
    x = gen_span_images(G, ids, seed=2)
    A = build_operator({"name": "gaussian"}, G.image_shape, seed=0, m=30)
    solver = CSGMSolver(lr=0.01, iterations=40, restarts=3)
    together = solver.solve(A(x), A, ids, G, seed=0)
    apart = [solver.solve(A(x[i : i + 1]), A, [ids[i]], G, seed=0) for i in range(len(ids))]
    torch.testing.assert_close(together.x_hat, torch.cat([a.x_hat for a in apart]), rtol=1e-5, atol=1e-5)


def test_latent_starts_are_seeded_per_image_and_restart():
    G = VAEDecoder(latent_dim=4, image_shape=(1, 4, 4), hidden_dims=[8])
    a = initial_latents(G, [5, 6], 3, seed=1)
    b = initial_latents(G, [6], 3, seed=1)
    assert a.shape == (6, 4) and torch.equal(a[3:], b)
    assert not torch.equal(initial_latents(G, [5], 3, seed=2), a[:3])


def test_stall_stopping_freezes_converged_restarts():
    G, A, y, _ = linear_problem()
    full = CSGMSolver(lr=0.05, iterations=2000, restarts=2).solve(y, A, [0, 1, 2], G)
    early = CSGMSolver(lr=0.05, iterations=2000, restarts=2, stall_patience=20, stall_tol=1e-6).solve(
        y, A, [0, 1, 2], G
    )
    assert int(early.iterations.max()) < 2000
    torch.testing.assert_close(early.measurement_loss, full.measurement_loss, rtol=1e-3, atol=1e-4)


def test_lr_decay_to_zero_stops_after_the_first_step():
    G, A, y, _ = linear_problem()
    one = CSGMSolver(lr=0.05, iterations=1, restarts=1, optimizer="momentum").solve(y, A, [0, 1, 2], G)
    decayed = CSGMSolver(
        lr=0.05, iterations=30, restarts=1, optimizer="momentum", lr_decay=0.0, lr_decay_every=1
    ).solve(y, A, [0, 1, 2], G)
    torch.testing.assert_close(decayed.z, one.z)


@pytest.mark.parametrize(
    "options,match",
    [
        ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'"),
        ({"lr": 0.0}, r"solver.lr=0.0 must be > 0"),
        ({"restarts": 0}, r"solver.restarts=0 must be > 0"),
        ({"lambda_z": -1.0}, "must be >= 0"),
        ({"compile": "no"}, r"solver.compile='no' must be true or false"),
        ({"flush_denormals": 0}, r"solver.flush_denormals=0 must be true or false"),
    ],
)
def test_bad_solver_options(options, match):
    with pytest.raises(CsgmError, match=match):
        build_solver({"name": "csgm", **options})


def test_unknown_solver_name():
    with pytest.raises(CsgmError, match=r"unknown solver .omp.; choose one of: (\w+, )*csgm, (\w+, )*lasso"):
        build_solver({"name": "omp"})


def test_median_of_means_takes_the_median_batch():
    """Measurement i is in batch i mod B; the median batch's data term, scaled to all m, stands for the rest."""
    from csgm.measurement import MeasurementModel
    from csgm.operators import build_operator

    solver = build_solver({"name": "csgm", "median_of_means": 3})
    model = MeasurementModel(build_operator({"name": "identity"}, (1, 2, 3)))
    prediction = torch.zeros(2, 6)
    y = torch.tensor(
        [
            [1.0, 0.0, 0.0, 100.0, 0.0, 0.0],  # batch 0 corrupted: the median batch is clean
            [1.0, 2.0, 3.0, 1.0, 2.0, 3.0],
        ]
    )  # batch terms 2, 8, 18: the median is 8
    torch.testing.assert_close(solver.median_batch(prediction, y, model), torch.tensor([0.0, 8.0 * 6 / 2]))
    with pytest.raises(CsgmError, match=r"median_of_means=1 is one batch"):
        build_solver({"name": "csgm", "median_of_means": 1})
    with pytest.raises(CsgmError, match=r"median_of_means=10 batches need at least 10 measurements, got 6"):
        build_solver({"name": "csgm", "median_of_means": 10}).median_batch(prediction, y, model)


def test_outlier_noise_corrupts_a_seeded_fraction():
    from csgm.operators import Noise

    noise = Noise("outliers", 0.0, fraction=0.1, magnitude=50.0)
    sample = noise.sample(200, [3, 4], key=(0, "gaussian", 200))
    assert (sample.abs() == 50.0).sum(1).tolist() == [20, 20]
    assert torch.equal(sample, noise.sample(200, [3, 4], key=(0, "gaussian", 200)))

"""The measurement model: noise before or after the quantiser, the data term each noise model defines
(2 sigma^2 * NLL + const), Poisson counts, quantiser cells, and the combinations it refuses in one line."""

from __future__ import annotations

import math

import pytest
import torch

from csgm.errors import CsgmError
from csgm.measurement import MeasurementModel, as_measurement
from csgm.metrics import match_norm, per_pixel_error
from csgm.operators import Noise, build_operator
from csgm.operators.likelihood import interval_data_term

SHAPE = (1, 8, 8)


def images(count=4, seed=0):
    return torch.rand(count, *SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def normal_cdf(v: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1 + torch.erf(v / math.sqrt(2)))


def test_gaussian_data_term_is_the_papers_squared_residual_exactly():
    A = build_operator({"name": "gaussian"}, SHAPE, seed=0, m=30).double()
    model = MeasurementModel(A, Noise("gaussian", 0.1), seed=3)
    x = images()
    y = model.measure(x, range(4))
    assert torch.equal(model.loss(x, y), (A(x) - y).pow(2).sum(1))
    assert torch.equal(as_measurement(A).loss(x, y), (A(x) - y).pow(2).sum(1))  # a bare operator: no noise


def test_interval_term_is_the_scaled_probit_likelihood_and_its_zero_noise_limit():
    values = torch.tensor([[-1.0, 0.3, 2.0, 0.5]], dtype=torch.float64)
    lower = torch.tensor([[0.0, -torch.inf, 0.0, -1.0]], dtype=torch.float64)
    upper = torch.tensor([[torch.inf, 0.0, torch.inf, 1.0]], dtype=torch.float64)
    std = 0.7
    probability = torch.stack(
        [
            1 - normal_cdf((lower[0, 0] - values[0, 0]) / std),
            normal_cdf((upper[0, 1] - values[0, 1]) / std),
            1 - normal_cdf((lower[0, 2] - values[0, 2]) / std),
            normal_cdf((upper[0, 3] - values[0, 3]) / std) - normal_cdf((lower[0, 3] - values[0, 3]) / std),
        ]
    )
    expected = -2 * std**2 * probability.log().sum()
    torch.testing.assert_close(interval_data_term(values, lower, upper, std)[0], expected)
    distance = interval_data_term(values, lower, upper, 0.0)  # squared distance to the cells: 1^2 + 0.3^2
    torch.testing.assert_close(distance, torch.tensor([1.09], dtype=torch.float64))
    torch.testing.assert_close(interval_data_term(values, lower, upper, 1e-3), distance, atol=1e-4, rtol=1e-3)


def test_interval_term_has_finite_gradients_far_in_both_tails():
    values = torch.tensor([[-40.0, 40.0, 3.0, -3.0]], dtype=torch.float64, requires_grad=True)
    lower = torch.tensor([[0.0, -torch.inf, 10.0, -torch.inf]], dtype=torch.float64)
    upper = torch.tensor([[torch.inf, 0.0, 11.0, -10.0]], dtype=torch.float64)
    term = interval_data_term(values, lower, upper, 0.1)
    term.sum().backward()
    assert bool(torch.isfinite(term).all()) and bool(torch.isfinite(values.grad).all())
    assert (
        values.grad[0, 0] < 0 and values.grad[0, 1] > 0 and values.grad[0, 2] < 0 and values.grad[0, 3] > 0
    )  # towards the cells


def test_student_t_term_tends_to_the_squared_residual():
    prediction, y = torch.zeros(1, 5, dtype=torch.float64), torch.linspace(-0.2, 0.2, 5, dtype=torch.float64)[None]
    squared = (prediction - y).pow(2).sum(1)
    torch.testing.assert_close(Noise("student_t", 0.1, df=1e6).data_term(prediction, y), squared, rtol=1e-4, atol=0)
    heavy = Noise("student_t", 0.1, df=3.0).data_term(torch.zeros(1, 1), torch.tensor([[100.0]]))
    assert float(heavy) < 1.0  # an outlier of 100 costs log(1 + ...), not 10^4


def test_poisson_counts_data_term_and_refusals():
    x = images(2)
    A = build_operator({"name": "identity"}, SHAPE)
    noise = Noise("poisson", scale=50.0)
    model = MeasurementModel(A, noise, seed=1)
    y = model.measure(x, [7, 8])
    counts = y * 50.0
    torch.testing.assert_close(counts, counts.round())  # whole photon counts
    assert torch.equal(y, model.measure(x, [7, 8])) and not torch.equal(
        y, MeasurementModel(A, noise, seed=2).measure(x, [7, 8])
    )
    large = MeasurementModel(A, Noise("poisson", scale=1e6), seed=1).measure(x, [7, 8])
    assert float((large.flatten(1) - x.flatten(1)).abs().max()) < 0.01  # more photons, less noise
    assert float(noise.data_term(y, y).abs().max()) < 1e-9 and bool((noise.data_term(A(x), y) > 0).all())
    assert noise.std == pytest.approx(50**-0.5)
    with pytest.raises(
        CsgmError, match=r"poisson noise needs measurements A x >= 0 but operator 'gaussian' gives signed values"
    ):
        MeasurementModel(build_operator({"name": "gaussian"}, SHAPE, m=10), noise)
    with pytest.raises(CsgmError, match=r"operator 'one_bit' quantises after the noise; .* not noise=student_t"):
        MeasurementModel(build_operator({"name": "one_bit"}, SHAPE, m=10), Noise("student_t", 0.1))


def test_noise_enters_before_the_quantiser():
    A = build_operator({"name": "quantize", "bits": 2, "range": 4.0}, SHAPE, seed=0, m=40).double()
    x = images(3)
    clean = MeasurementModel(A, Noise("none")).measure(x, range(3))
    noisy = MeasurementModel(A, Noise("gaussian", 1.0), seed=0).measure(x, range(3))
    levels = {-3.0, -1.0, 1.0, 3.0}  # 4 cells of width 2 over [-4, 4], midpoints
    assert set(clean.flatten().tolist()) <= levels and set(noisy.flatten().tolist()) <= levels
    assert not torch.equal(clean, noisy)
    lower, upper = A.cell(clean)
    values = A.pre_noise(x)
    assert bool(((lower <= values) & (values <= upper)).all())


def test_quantised_operators_share_the_gaussian_matrix_and_dither():
    gaussian = build_operator({"name": "gaussian"}, SHAPE, seed=4, m=20)
    one_bit = build_operator({"name": "one_bit", "dither": 2.0}, SHAPE, seed=4, m=20)
    assert torch.equal(one_bit.linear_part.matrix, gaussian.matrix)
    assert float(one_bit.tau.abs().max()) <= 2.0 and float(one_bit.tau.std()) > 0.5
    x = images(2).float()
    torch.testing.assert_close(one_bit(x), torch.sign(gaussian(x) + one_bit.tau))
    assert one_bit.scale_invariant is False and build_operator({"name": "one_bit"}, SHAPE, m=20).scale_invariant is True
    with pytest.raises(CsgmError, match=r"measurements hold values outside the 2-bit quantiser's range"):
        build_operator({"name": "quantize", "bits": 2, "range": 1.0}, SHAPE, m=5).cell(torch.full((1, 5), 7.0))


def test_one_bit_without_dither_fits_only_the_direction():
    """Signs without dither: the data term and the reported error ignore the norm of the estimate."""
    A = build_operator({"name": "one_bit"}, SHAPE, seed=0, m=50).double()
    model = MeasurementModel(A, Noise("none"))
    x = images(2)
    y = model.measure(x, range(2))
    torch.testing.assert_close(model.loss(3.0 * x, y), model.loss(x, y))
    assert float(model.loss(x, y).max()) == 0.0 and float(model.loss(1e-6 * images(2, seed=5), y).min()) > 0
    torch.testing.assert_close(per_pixel_error(match_norm(0.2 * x, x), x), torch.zeros(2, dtype=torch.float64))


RECORDED = [  # (operator, noise): what the model itself measures must pass its own check of recorded values
    ({"name": "one_bit"}, Noise("gaussian", 0.1)),
    ({"name": "one_bit", "dither": 2.0}, Noise("none")),
    ({"name": "quantize", "bits": 3, "range": 5.0}, Noise("gaussian", 0.5)),
    ({"name": "phase_retrieval"}, Noise("none")),
    ({"name": "identity"}, Noise("poisson", scale=37.0)),
    ({"name": "blur"}, Noise("none")),
    ({"name": "gaussian"}, Noise("student_t", 0.1)),
]


@pytest.mark.parametrize("operator_cfg,noise", RECORDED, ids=lambda v: getattr(v, "label", None) or v["name"])
def test_measurements_of_the_model_pass_its_own_check(operator_cfg, noise):
    model = MeasurementModel(build_operator(operator_cfg, SHAPE, seed=1, m=40), noise, seed=3)
    y = model.measure(images(), list(range(4)))
    model.check_measurements(y, "file.y")
    model.check_measurements(y.float().double(), "file.y")  # saved in float32: still the same values


@pytest.mark.parametrize(
    "operator_cfg,noise,edit,message",
    [
        ({"name": "one_bit"}, Noise("none"), lambda y: y * 0.5, "values that operator 'one_bit' cannot record"),
        ({"name": "one_bit"}, Noise("none"), lambda y: y.clamp(min=0), "it records only the levels -1, 1"),
        (
            {"name": "quantize", "bits": 3, "range": 5.0},
            Noise("none"),
            lambda y: y + 0.1,
            "it records only the levels -4.375, -3.125, ..., 4.375",
        ),
        ({"name": "phase_retrieval"}, Noise("none"), lambda y: -y, "negative values"),
        ({"name": "phase_retrieval"}, Noise("gaussian", 0.1), lambda y: y - 5, "values below -0.8"),
        (
            {"name": "inpaint"},
            Noise("outliers", 0.1, fraction=0.1, magnitude=10.0),
            lambda y: y - 20,
            "values below -10.8",
        ),
        ({"name": "identity"}, Noise("poisson", scale=37.0), lambda y: y + 0.001, "are not photon counts"),
        ({"name": "identity"}, Noise("poisson", scale=37.0), lambda y: -y - 1, "are not photon counts"),
    ],
)
def test_recorded_values_the_model_cannot_give_are_refused(operator_cfg, noise, edit, message):
    model = MeasurementModel(build_operator(operator_cfg, SHAPE, seed=1, m=40), noise, seed=3)
    y = edit(model.measure(images(), list(range(4))))
    with pytest.raises(CsgmError, match="^file.y holds ") as info:
        model.check_measurements(y, "file.y")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_phase_retrieval_with_noise_may_record_negative_values():
    """Down to 8 noise std below 0 for Gaussian noise; any value for heavy-tailed noise."""
    model = MeasurementModel(build_operator({"name": "phase_retrieval"}, SHAPE, seed=1, m=40), Noise("gaussian", 0.1))
    model.check_measurements(-torch.ones(2, 40, dtype=torch.float64) * 0.79, "file.y")
    heavy = MeasurementModel(model.operator, Noise("student_t", 0.1))
    heavy.check_measurements(-torch.ones(2, 40, dtype=torch.float64) * 1e3, "file.y")

"""Known answers for the data term of every (operator, noise) pair, away from its minimum.

The data term is 2 sigma^2 x NLL(y | prediction) + const (csgm.measurement). Here the NLL comes from
scipy.stats (Gaussian, Student-t, Poisson log-densities; Gaussian CDF cell probabilities), never from the
package, and the constant is fixed by the term's own zero at prediction = y. Every pair is evaluated at the
prediction of an image that is not the measured one. For quantised and 1-bit data the true image must also
score better than a sign-flipped or shifted one, with and without dither and noise.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from scipy import stats

from csgm.cli import plain
from csgm.errors import CsgmError
from csgm.measurement import MeasurementModel
from csgm.operators import Noise, build_noise, build_operator, operator_uses_m
from tests.helpers import compose_config, conf_options

SHAPE = (1, 8, 8)
IDS = [3, 11]
QUANTISERS = [
    ("quantize", {"bits": 3, "range": 8.0}),
    ("quantize", {"bits": 3, "range": 8.0, "dither": 1.0}),
    ("one_bit", {}),
    ("one_bit", {"dither": 4.0}),
]


def images(count: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, *SHAPE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@functools.cache
def config(group: str, option: str) -> dict:
    return plain(compose_config("recover", [f"{group}={option}"]))[group]


def operator_from(option: str, **overrides):
    cfg = {**config("operator", option), **overrides}
    if cfg.get("mode") == "hole":
        cfg["hole_size"] = 4
    return build_operator(cfg, SHAPE, seed=2, m=0.5 if operator_uses_m(cfg) else None).double()


def noise_from(option: str) -> Noise:
    return build_noise(config("noise", option))


def reference_nll(noise: Noise, prediction: np.ndarray, y: np.ndarray) -> np.ndarray:
    """sum_i -log p(y_i | prediction_i) per row, from scipy.stats (without noise: the Gaussian at std 1, whose
    2 sigma^2 NLL difference is the squared residual)."""
    if noise.name == "student_t":
        return -stats.t.logpdf(y, noise.df, loc=prediction, scale=noise.std).sum(1)
    if noise.name == "poisson":
        counts = np.round(y * noise.scale)
        return -stats.poisson.logpmf(counts, noise.scale * prediction).sum(1)
    std = noise.std if noise.name in ("gaussian", "outliers") and noise.std > 0 else 1.0
    return -stats.norm.logpdf(y, loc=prediction, scale=std).sum(1)


def reference_term(noise: Noise, prediction: np.ndarray, y: np.ndarray) -> np.ndarray:
    """2 sigma^2 (NLL(y | prediction) - NLL(y | y)): the data term's known answer for unquantised values."""
    if noise.name == "poisson":
        variance = 1.0 / noise.scale
    else:
        variance = noise.std**2 if noise.name != "none" and noise.std > 0 else 1.0
    return 2 * variance * (reference_nll(noise, prediction, y) - reference_nll(noise, y, y))


def quantised_reference(operator, noise_std: float, prediction: np.ndarray, y: np.ndarray) -> np.ndarray:
    """2 std^2 * -sum log P(prediction + N(0, std^2) falls in the cell of y), the cells derived from the quantiser's
    definition (midpoints y of cells of width 2 range / 2^bits; one bit: the sign); std = 0: the squared distance
    to the cells (for signs without dither, of the prediction rescaled to norm sqrt(m))."""
    if operator.name == "one_bit":
        if operator.dither == 0:  # only the direction is measured: the sigma -> 0 limit at norm sqrt(m)
            prediction = prediction * np.sqrt(prediction.shape[1]) / np.linalg.norm(prediction, axis=1, keepdims=True)
        elif noise_std > 0:  # the probit model: P(y_i) = Phi(y_i * prediction_i / std)
            return -2 * noise_std**2 * stats.norm.logcdf(y * prediction / noise_std).sum(1)
        return np.square(np.minimum(y * prediction, 0)).sum(1)
    half = operator.range / 2**operator.bits
    top = operator.range - half
    lower = np.where(np.isclose(y, -top), -np.inf, y - half)
    upper = np.where(np.isclose(y, top), np.inf, y + half)
    if noise_std == 0:
        return (np.square(np.maximum(lower - prediction, 0)) + np.square(np.maximum(prediction - upper, 0))).sum(1)
    a, b = (lower - prediction) / noise_std, (upper - prediction) / noise_std
    with np.errstate(divide="ignore"):  # log P(a < N(0, 1) < b) in whichever tail keeps its precision
        below = stats.norm.logcdf(b) + np.log1p(-np.exp(stats.norm.logcdf(a) - stats.norm.logcdf(b)))
        above = stats.norm.logsf(a) + np.log1p(-np.exp(stats.norm.logsf(b) - stats.norm.logsf(a)))
    return -2 * noise_std**2 * np.where(a > 0, above, below).sum(1)


def measured_pair(operator_option: str, noise: Noise, **operator_overrides):
    """(model, y of two images, the prediction of two other images), or None if the pair is refused in one line."""
    operator = operator_from(operator_option, **operator_overrides)
    try:
        model = MeasurementModel(operator, noise, seed=7)
    except CsgmError as error:
        assert "\n" not in str(error) and ("poisson" in str(error) or "quantises after the noise" in str(error))
        return None
    x, other = images(2, seed=0), images(2, seed=1)
    return model, model.measure(x, IDS), model.predict(other)


@pytest.mark.parametrize("noise_option", conf_options("noise"))
@pytest.mark.parametrize("operator_option", conf_options("operator"))
def test_data_term_of_every_pair_is_its_scaled_negative_log_likelihood(operator_option, noise_option):
    noise = noise_from(noise_option)
    pair = measured_pair(operator_option, noise)
    if pair is None:
        pytest.skip(f"operator={operator_option} refuses noise={noise_option} (checked to be one clear line)")
    model, y, prediction = pair
    term = model.data_term(prediction, y).numpy()
    if model.operator.quantized:
        expected = quantised_reference(model.operator, noise.std, prediction.numpy(), y.numpy())
    else:
        rate = prediction.clamp_min(1e-12) if noise.name == "poisson" else prediction
        expected = reference_term(noise, rate.numpy(), y.numpy())
    assert bool((expected > 1e-3).all())  # away from the minimum
    np.testing.assert_allclose(term, expected, rtol=1e-6)


@pytest.mark.parametrize(
    "kind,std,df", [("student_t", 0.3, 1.5), ("student_t", 0.05, 3.0), ("gaussian", 0.4, 0.0), ("poisson", 0.0, 0.0)]
)
def test_data_term_at_small_df_and_other_levels(kind, std, df):
    """Student-t at small df (where its constants matter), other noise levels and a low Poisson scale."""
    noise = Noise(kind, std=std, df=df or 3.0, scale=7.0)
    model = MeasurementModel(operator_from("blur"), noise, seed=1)
    y = model.measure(images(2), IDS)
    prediction = model.predict(images(2, seed=4))
    if kind == "poisson":
        assert bool((y == 0).any())  # zero counts take the 0 log 0 = 0 branch
    expected = reference_term(noise, prediction.numpy(), y.numpy())
    np.testing.assert_allclose(model.data_term(prediction, y).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("option,overrides", QUANTISERS)
@pytest.mark.parametrize("std", [0.0, 0.7])
def test_quantised_data_term_away_from_the_truth(option, overrides, std):
    """Cell probabilities at a noise level that is not 1, with and without dither."""
    pair = measured_pair(option, Noise("gaussian", std) if std else Noise("none"), **overrides)
    model, y, prediction = pair
    expected = quantised_reference(model.operator, std, prediction.numpy(), y.numpy())
    assert bool((expected > 1e-3).all())
    np.testing.assert_allclose(model.data_term(prediction, y).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("option,overrides", QUANTISERS)
@pytest.mark.parametrize("std", [0.0, 1.0])
def test_true_image_scores_better_than_flipped_or_shifted(option, overrides, std):
    operator = build_operator({**config("operator", option), **overrides}, SHAPE, seed=2, m=256).double()
    model = MeasurementModel(operator, Noise("gaussian", std) if std else Noise("none"), seed=7)
    x = images(2)
    y = model.measure(x, IDS)
    true = model.loss(x, y)
    for wrong in (-x, x + 0.5, x.flip(-1)):
        assert bool((true < model.loss(wrong, y)).all())


@pytest.mark.parametrize("option", conf_options("noise"))
def test_noise_draws_follow_their_laws(option):
    """The measured noise of every conf/noise config against scipy.stats: N(0, std^2), std * t(df), Poisson counts
    of rate scale * A x, and the outliers' seeded fraction of +-magnitude on top of N(0, std^2)."""
    noise = noise_from(option)
    x = 0.2 + 0.8 * torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model = MeasurementModel(build_operator({"name": "identity"}, (1, 64, 64)).double(), noise, seed=7)
    residual = (model.measure(x, [4]) - x.flatten(1))[0].numpy()
    if noise.name == "none":
        assert not residual.any()
    elif noise.name == "poisson":  # counts k ~ Poisson(lambda): (k - lambda) / sqrt(lambda) has mean 0, variance 1
        rate = noise.scale * x.flatten().numpy()
        standardised = noise.scale * residual / np.sqrt(rate)
        assert abs(standardised.mean()) < 0.05 and abs(standardised.var() - 1) < 0.08
    elif noise.name == "outliers":
        gross = np.abs(residual) > noise.magnitude / 2
        assert gross.sum() == round(noise.fraction * residual.size)
        assert stats.kstest(residual[~gross] / noise.std, "norm").pvalue > 1e-3
    else:
        law = ("t", (noise.df,)) if noise.name == "student_t" else ("norm", ())
        assert stats.kstest(residual / noise.std, law[0], args=law[1]).pvalue > 1e-3


def test_validation_noise_is_not_the_test_noise():
    """The validation split draws its own noise for the same image ids; each split's noise is reproducible."""
    operator = operator_from("gaussian")
    x = images(2)
    test = MeasurementModel(operator, Noise("gaussian", 0.1), seed=7).measure(x, IDS)
    validation = MeasurementModel(operator, Noise("gaussian", 0.1), seed=7, split="validation")
    assert not torch.allclose(validation.measure(x, IDS) - operator(x), test - operator(x), atol=1e-3)
    assert torch.equal(validation.measure(x, IDS), validation.measure(x, IDS))


def test_the_validation_search_measures_with_its_own_noise(tmp_path, monkeypatch):
    """Hyperparameters are chosen on y with the validation split's noise: for the same image ids it is not the
    noise the test images get."""
    from csgm.recovery import tuning
    from csgm.solvers import build_solver

    seen = []
    monkeypatch.setattr(tuning, "validation_errors", lambda solver, candidates, x, y, *rest: seen.append(y) or [0.0])
    operator = operator_from("gaussian")
    test_model = MeasurementModel(operator, Noise("gaussian", 0.1), seed=7)
    x = images(2)
    solver = build_solver({"name": "lasso", "lambda_l1": "auto", "lambda_grid": [0.1]})
    tuning.tune_per_m(solver, [test_model], x, None, 7, tmp_path, {"dataset": "d"})
    (y,) = seen
    test_noise, validation_noise = test_model.measure(x, [0, 1]) - operator(x), y - operator(x)
    assert float(validation_noise.std()) == pytest.approx(0.1, rel=0.3)
    assert not torch.allclose(validation_noise, test_noise, atol=1e-3)

"""The solver's arithmetic: mixed precision and the float32 matmul precision apply to the solve alone."""

from __future__ import annotations

import pytest
import torch

from csgm.errors import CsgmError
from csgm.measurement import MeasurementModel
from csgm.metrics import per_pixel_error
from csgm.operators import Noise, build_operator
from csgm.precision import lightning_precision, precision_identity, solver_arithmetic
from csgm.recovery.module import RecoveryModule
from csgm.solvers import build_solver
from tests.helpers import compose_config


def test_mixed_precision_autocasts_products_and_the_matmul_setting_is_restored():
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    before = torch.get_float32_matmul_precision()
    with solver_arithmetic("bf16-mixed", "medium"):
        assert (a @ b).dtype == torch.bfloat16
        assert torch.get_float32_matmul_precision() == "medium"
    assert (a @ b).dtype == torch.float32 and torch.get_float32_matmul_precision() == before
    with solver_arithmetic("bf16"):  # Lightning's short names are accepted
        assert (a @ b).dtype == torch.bfloat16


def test_the_arithmetic_names_itself_for_the_run_identity():
    assert precision_identity("32") == precision_identity("32-true") == "32-true"
    assert precision_identity("bf16", "high") == "bf16-mixed+matmul-high"
    assert lightning_precision("bf16-mixed") == "32-true" and lightning_precision("64") == "64-true"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["trainer.precision=transformer-engine"], "unknown trainer.precision 'transformer-engine'; choose one of"),
        (["matmul_precision=low"], "matmul_precision='low' must be one of 'highest', 'high', 'medium'"),
    ],
)
def test_unknown_arithmetic_fails_in_one_line(overrides, message):
    from csgm.config import validate_recover_config
    from csgm.cli import plain

    with pytest.raises(CsgmError, match=message):
        validate_recover_config(plain(compose_config("recover", overrides)))


def test_bf16_solves_in_bfloat16_but_measures_and_reports_in_float32(vae_checkpoint):
    from csgm.data import load_splits
    from csgm.generators.checkpoint import load_generator

    vae_generator, _ = load_generator(vae_checkpoint)
    test = load_splits({"name": "mnist10k", "val_size": 1000, "test_size": 1000, "split_seed": 0})["test"]
    x = torch.stack([test[i][0] for i in range(3)])
    model = MeasurementModel(
        build_operator({"name": "gaussian"}, (1, 28, 28), seed=0, m=40), Noise("gaussian", 0.1), seed=0
    )
    solver = build_solver({"name": "csgm", "restarts": 2, "iterations": 30, "lr": 0.05})
    outputs = {}
    for precision in ("32-true", "bf16-mixed"):
        module = RecoveryModule(vae_generator, [(solver, {})], [model], seed=0, arithmetic=(precision, "highest"))
        ((rows, x_hat, _),) = module.predict_step((x, torch.arange(3), torch.zeros(3, dtype=torch.long)), 0)
        outputs[precision] = (rows, x_hat)
    (rows32, x32), (rows16, x16) = outputs["32-true"], outputs["bf16-mixed"]
    assert x16.dtype == torch.float32
    assert [r["measurement_loss"] for r in rows16] != [r["measurement_loss"] for r in rows32]  # the solve did change
    # y is the same float32 simulation in both (only the solve is autocast): bf16's error stays close to float32's
    assert float(per_pixel_error(x16, x).mean()) == pytest.approx(float(per_pixel_error(x32, x).mean()), rel=0.05)

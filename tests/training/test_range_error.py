"""val/range_error during training: logged every few epochs, and the training itself unchanged by it."""

from __future__ import annotations

import csv

import pytest

from csgm.errors import CsgmError
from csgm.generators.checkpoint import load_generator
from csgm.training.run import train
from tests.helpers import TINY_TRAIN, compose_config


def tiny(*extra):
    options = [o for o in TINY_TRAIN if o != "logger=none"]
    return compose_config("train", [*options, "logger=csv", "trainer.max_epochs=2", "generator.arch.hidden_dims=[32]", *extra])


def test_range_error_is_logged_and_does_not_change_training(tmp_path):
    logged = train(tiny("generator.training.range_error_every=1", "generator.training.range_error_images=4"), tmp_path / "on")
    silent = train(tiny("generator.training.range_error_every=0"), tmp_path / "off")
    assert load_generator(logged["checkpoint"])[1]["digest"] == load_generator(silent["checkpoint"])[1]["digest"]
    with open(next((tmp_path / "on").rglob("metrics.csv")), newline="") as handle:
        values = [float(r["val/range_error"]) for r in csv.DictReader(handle) if r.get("val/range_error")]
    assert len(values) == 2 and all(0.0 < v < 1.0 for v in values)  # one per epoch


def test_range_error_options_are_checked(tmp_path):
    with pytest.raises(CsgmError, match=r"generator.training.range_error_images=0 must be >= 1"):
        train(tiny("generator.training.range_error_images=0"), tmp_path / "run")

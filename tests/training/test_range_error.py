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
    return compose_config(
        "train", [*options, "logger=csv", "trainer.max_epochs=2", "generator.arch.hidden_dims=[32]", *extra]
    )


def test_range_error_is_logged_and_does_not_change_training(tmp_path):
    logged = train(tiny("range_error.every=1", "range_error.images=4"), tmp_path / "on")
    silent = train(tiny("range_error.every=0"), tmp_path / "off")
    assert load_generator(logged["checkpoint"])[1]["digest"] == load_generator(silent["checkpoint"])[1]["digest"]
    with open(next((tmp_path / "on").rglob("metrics.csv")), newline="") as handle:
        values = [float(r["val/range_error"]) for r in csv.DictReader(handle) if r.get("val/range_error")]
    assert len(values) == 2 and all(0.0 < v < 1.0 for v in values)  # one per epoch


def test_range_error_options_are_checked(tmp_path):
    with pytest.raises(CsgmError, match=r"range_error.images=0 must be >= 1"):
        train(tiny("range_error.images=0"), tmp_path / "run")


def validate_range_error(devices: int, images: int) -> float:
    """val/range_error of one fixed, untrained VAE decoder on ``devices`` CPU processes (gloo)."""
    import pytorch_lightning as pl

    from csgm.data import ImageDataModule
    from csgm.training import VAEModule

    pl.seed_everything(0, verbose=False)
    module = VAEModule(
        "vae",
        {"latent_dim": 4, "hidden_dims": [16]},
        (1, 28, 28),
        "mnist10k",
        range_error={"every": 1, "images": images, "steps": 20},
    )
    data = ImageDataModule({"name": "mnist10k", "val_size": 1000, "test_size": 1000, "split_seed": 0}, batch_size=50)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp_spawn" if devices > 1 else "auto",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=1,
        inference_mode=False,
    )  # as in fit: the latent search needs gradients
    return float(trainer.validate(module, datamodule=data, verbose=False)[0]["val/range_error"])


@pytest.mark.slow
def test_range_error_is_the_same_on_two_processes_as_on_one():
    # The distributed sampler gives rank r the validation images r, r + 2, ...; with 8 images per rank the two
    # ranks see exactly the first 16 images, which one process sees with images=16. Latent starts are seeded by
    # the dataset index, and the metric's sums and counts are reduced across the processes.
    from torch.multiprocessing import ProcessExitedException

    one = validate_range_error(1, 16)
    for attempt in range(3):  # a spawned gloo worker has been seen to abort at exit ("terminate called without an
        try:  # active exception") once in three CI runs; the value is still checked exactly below
            two = validate_range_error(2, 8)
            break
        except ProcessExitedException:
            if attempt == 2:
                raise
    assert 0 < one < 1
    assert two == pytest.approx(one, rel=1e-5)

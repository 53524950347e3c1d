"""A user's own operator, noise, solver and training classes, defined here (outside csgm), plug in from the config
by ``_target_`` with zero edits to csgm; their options are checked like csgm's own."""

from __future__ import annotations

import csv
from typing import Sequence

import pytest
import torch

from csgm.errors import CsgmError
import numpy as np
import torch.nn.functional as F

from csgm.generators.checkpoint import load_generator

from csgm.operators import GaussianNoise, LinearOperator, Noise
from csgm.recovery.run import recover
from csgm.seeding import seeded_rng
from csgm.solvers import Solver, SolverOutput
from csgm.training import GeneratorModule
from csgm.training.run import train
from tests.helpers import TINY_TRAIN, compose_config, run_script


class SignFlips(LinearOperator):
    """y = s * x with seeded random signs s (an orthogonal operator), optionally scaled."""

    name = "sign_flips"

    def __init__(self, image_shape: Sequence[int], seed: int = 0, scale: float = 1.0) -> None:
        super().__init__(image_shape)
        signs = torch.randint(0, 2, (self.n,), generator=seeded_rng("signs", seed)).float() * 2 - 1
        self.register_buffer("signs", signs * scale)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) * self.signs

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return (y * self.signs).view(-1, *self.image_shape)


class Halved(GaussianNoise):
    """Gaussian noise at half the given std."""

    def __init__(self, std: float = 0.1) -> None:
        super().__init__(std / 2)


class Laplace(Noise):
    """A noise model csgm does not have: Laplace noise of standard deviation std, with its likelihood's data term."""

    name = "laplace"

    def __init__(self, std: float = 0.1) -> None:
        super().__init__()
        self.std = std

    def data_term(self, prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """2 std^2 * |r| / b with b = std / sqrt(2), the Laplace scale."""
        return 2 * 2**0.5 * self.std * (prediction - y).abs().sum(1)

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.laplace(0.0, self.std / 2**0.5, size)


class BackProjection(Solver):
    """x_hat = A^T y / ||A||^2, clipped: no generator."""

    name = "back_projection"

    def __init__(self, label: str | None = None) -> None:
        self.label = label or self.name

    def solve(self, y, measurement, image_ids, generator=None, seed=0) -> SolverOutput:
        operator = measurement.operator
        x_hat = (operator.adjoint(y) / operator.norm_squared()).clamp(0, 1)
        zeros = torch.zeros(len(y), dtype=torch.long)
        return SolverOutput(
            x_hat=x_hat, measurement_loss=measurement.loss(x_hat, y), iterations=zeros, dropped_restarts=zeros
        )


class Regression(GeneratorModule):
    """A training method csgm does not have: G(z) regressed on the batch for fresh z ~ N(0, I) (a toy)."""

    method, generators = "regression", ("vae",)

    def __init__(
        self,
        name: str,
        arch: dict,
        image_shape: tuple[int, int, int],
        dataset: str = "",
        range_error: dict | None = None,
        lr: float = 1e-3,
    ) -> None:
        super().__init__(name, arch, image_shape, dataset, range_error)
        self.lr = lr

    def training_step(self, batch, batch_idx):
        x = batch[0]
        z = torch.randn(len(x), self.generator.latent_dim, device=x.device)
        return F.mse_loss(self.generator(z), x)

    def configure_optimizers(self):
        return torch.optim.SGD(self.generator.parameters(), lr=self.lr)


@pytest.fixture
def plugins(tmp_path) -> list[str]:
    """The user's own config folder (found through Hydra's search path): one YAML per class, nothing in csgm."""
    conf = tmp_path / "my_conf"
    for group, text in {
        "operator/sign_flips": "_target_: tests.test_plugins.SignFlips\nname: sign_flips\nscale: 2.0\n",
        "noise/halved": "_target_: tests.test_plugins.Halved\nname: halved\nstd: 0.1\n",
        "noise/laplace": "_target_: tests.test_plugins.Laplace\nname: laplace\nstd: 0.2\n",
        "solver/backproj": "_target_: tests.test_plugins.BackProjection\nname: back_projection\nlabel: backproj\n",
        "generator/training/regression": "_target_: tests.test_plugins.Regression\nmethod: regression\nlr: 0.01\n",
    }.items():
        (conf / group).parent.mkdir(parents=True, exist_ok=True)
        (conf / f"{group}.yaml").write_text(text)
    return [
        f"hydra.searchpath=[file://{conf}]",
        "operator=sign_flips",
        "noise=halved",
        "solver=backproj",
        "logger=none",
        "trainer.enable_progress_bar=false",
        "num_images=3",
        f"paths.output_root={tmp_path}",
    ]


def test_user_classes_plug_in_from_the_config(tmp_path, plugins):
    cfg = compose_config("recover", plugins)
    result = recover(cfg, tmp_path / "run")
    (entry,) = result["summary"]
    assert (entry["solver"], entry["operator"], entry["m"]) == ("backproj", "sign_flips", 784)
    # A^T A = 4 I and the noise std is 0.05: x_hat = x + s * e / 2 per pixel, so the error is about 0.025^2 (then clipped)
    assert 0.0 < entry["mse_mean"] < 0.025**2
    with open(tmp_path / "run" / "results.csv", newline="") as handle:
        assert [r["status"] for r in csv.DictReader(handle)] == ["ok"] * 3


def test_a_new_noise_model_is_one_class_and_one_yaml(tmp_path, plugins):
    cfg = compose_config("recover", [*plugins, "noise=laplace"])
    result = recover(cfg, tmp_path / "run")
    (entry,) = result["summary"]
    assert (entry["noise"], entry["noise_std"]) == ("laplace", 0.2)
    # x_hat = x + s * e / 2 per pixel with Laplace e of std 0.2: the error is about 0.1^2 before clipping
    assert 0.1**2 / 4 < entry["mse_mean"] < 0.1**2
    with open(tmp_path / "run" / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    x_hat = torch.load(tmp_path / "run" / "reconstructions.pt", weights_only=True)["x_hat"]
    assert all(float(r["measurement_loss"]) > 0 for r in rows) and x_hat.shape == (3, 1, 28, 28)


@pytest.mark.parametrize(
    "extra,message",
    [
        (["+operator.bogus=1"], "unknown key operator.bogus (value 1)"),
        (["operator.scale=big"], "operator.scale='big' must be a number"),
    ],
)
def test_user_class_options_are_checked(tmp_path, plugins, extra, message):
    cfg = compose_config("recover", [*plugins, *extra])
    with pytest.raises(CsgmError) as info:
        recover(cfg, tmp_path / "run")
    assert message in str(info.value)


@pytest.mark.parametrize(
    "target,message",
    [
        ("tests.test_plugins.Nowhere", "operator._target_='tests.test_plugins.Nowhere' cannot be imported"),
        ("tests.test_plugins.Halved", "is not a subclass of csgm.operators.base.Operator"),
    ],
)
@pytest.mark.slow
def test_bad_targets_fail_in_one_line(tmp_path, plugins, target, message):
    result = run_script("recover.py", *plugins, f"operator._target_={target}", cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr


@pytest.fixture
def train_plugin(plugins) -> list[str]:
    """train.py with the user's training method of the plug-in config folder, at a tiny size."""
    return [plugins[0], *TINY_TRAIN, "generator/training=regression"]


def test_a_new_training_method_is_one_class_and_one_yaml(tmp_path, train_plugin):
    summary = train(compose_config("train", [*train_plugin, "generator.arch.hidden_dims=[32]"]), tmp_path / "run")
    generator, meta = load_generator(summary["checkpoint"])
    assert summary["global_step"] == 4 and meta["training"] == "regression" and generator.image_shape == (1, 28, 28)


@pytest.mark.parametrize(
    "extra,message",
    [
        (["+generator.training.bogus=1"], "unknown key generator.training.bogus (value 1)"),
        (["generator.training.lr=fast"], "generator.training.lr='fast' must be a number"),
        (
            ["+generator.training.dataset=celeba"],
            "generator.training.dataset='celeba' is set by the training run; use dataset=celeba instead",
        ),
        (["generator=dcgan"], "generator.training.method=regression cannot train generator=dcgan"),
        (
            ["generator.training._target_=tests.test_plugins.Halved"],
            "generator.training._target_='tests.test_plugins.Halved' is not a subclass of "
            "csgm.training.base.GeneratorModule",
        ),
    ],
)
def test_user_training_options_are_checked(tmp_path, train_plugin, extra, message):
    with pytest.raises(CsgmError) as info:
        train(compose_config("train", [*train_plugin, *extra]), tmp_path / "run")
    assert message in str(info.value)

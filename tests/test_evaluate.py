"""Generator evaluation: the command on every generator config, and its numbers against known answers."""

from __future__ import annotations

import json
import math

import pytest
import torch

from csgm.evaluation.generator_metrics import jacobian_spectral_norms, pairwise_ratios, range_error
from csgm.errors import CsgmError
from csgm.evaluation.run import evaluate
from csgm.files import json_bytes
from csgm.generators import Generator
from tests.helpers import CONF, TINY_GENERATORS, TINY_TRAIN, compose_config, run_script, write_images

TINY_EVALUATE = ["num_images=3", "restarts=1", "iterations=5", "lipschitz_samples=3", "power_iterations=3", "pairs=10"]


@pytest.fixture(scope="module", params=sorted(TINY_GENERATORS))
def checkpoint(request, tmp_path_factory):
    from csgm.training.run import train

    cfg = compose_config("train", [*TINY_TRAIN, f"generator={request.param}", *TINY_GENERATORS[request.param]])
    return train(cfg, tmp_path_factory.mktemp(f"{request.param}_run"))["checkpoint"]


def strict_json(text: str):
    """json.loads that refuses the bare NaN and Infinity tokens, which are not JSON."""

    def refuse(token: str):
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_every_generator_config_is_tested():
    assert sorted(TINY_GENERATORS) == sorted(p.stem for p in (CONF / "generator").glob("*.yaml"))


def test_evaluation_runs_on_every_generator(checkpoint, tmp_path):
    result = evaluate(compose_config("evaluate", [f"checkpoint={checkpoint}", *TINY_EVALUATE]), tmp_path)
    numbers = strict_json(result["paths"]["evaluation"].read_text())
    for key in ("range_error", "optimisation_error"):
        assert math.isfinite(numbers[key]["mean"]) and numbers[key]["mean"] >= 0
    assert numbers["jacobian_spectral_norm"]["max"] >= numbers["jacobian_spectral_norm"]["median"] > 0
    assert result["paths"]["samples"].is_file() and numbers["images"] == 3
    bits = numbers["test_bits_per_dim"]
    if numbers["generator"] == "flow":  # the only generator with a density (a few training steps: above 1, finite)
        assert 0 < bits["mean"] < 12 and bits["ci95"] >= 0
        assert numbers["range_error"]["mean"] < 1e-10  # invertible: every image is G(G^-1(x))
        assert numbers["optimisation_error"]["mean"] > 1e-10  # the search, not the inverse
    else:
        assert bits is None


class Linear(Generator):
    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__(weight.shape[1], (1, 4, 4))
        self.register_buffer("weight", weight)

    def decode(self, z):
        return (z.to(self.weight) @ self.weight.T).view(-1, 1, 4, 4)


def test_lipschitz_proxies_of_a_linear_generator():
    """For G(z) = W z the Jacobian is W everywhere: its spectral norm is W's largest singular value, which
    also bounds every ratio ||G(z1) - G(z2)|| / ||z1 - z2||."""
    weight = torch.randn(16, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    top = float(torch.linalg.svdvals(weight)[0])
    generator = Linear(weight)
    spectral = jacobian_spectral_norms(generator, samples=4, iterations=200)
    assert spectral["median"] == pytest.approx(top, rel=1e-6) and spectral["max"] == pytest.approx(top, rel=1e-6)
    assert pairwise_ratios(generator, pairs=500)["max"] <= top + 1e-9


def test_range_error_is_zero_on_the_range():
    weight = torch.rand(16, 3, generator=torch.Generator().manual_seed(1)) / 3
    generator = Linear(weight)
    x = generator(torch.rand(2, 3, generator=torch.Generator().manual_seed(2)))
    assert range_error(generator, x, [0, 1], restarts=2, iterations=2000, lr=0.05)["mean"] < 1e-8


@pytest.mark.slow
def test_evaluate_command(checkpoint, tmp_path):
    result = run_script(
        "csgm/evaluate.py", f"checkpoint={checkpoint}", *TINY_EVALUATE, f"paths.output_root={tmp_path}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "range error" in result.stdout and "evaluation.json" in result.stdout
    bad = run_script(
        "csgm/evaluate.py", f"checkpoint={checkpoint}", "num_images=0", f"paths.output_root={tmp_path}", cwd=tmp_path
    )
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == ["csgm: error: num_images=0 must be >= 1"]


def test_json_bytes_writes_non_finite_numbers_as_null():
    value = {"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -float("inf")}, "e": "x", "f": (2, None)}
    assert strict_json(json_bytes(value)) == {"a": None, "b": [1.0, None], "c": {"d": None}, "e": "x", "f": [2, None]}


def test_evaluation_refuses_another_dataset_and_more_images_than_the_split(vae_checkpoint, tmp_path):
    write_images(tmp_path / "digits", 12, (28, 28), mode="L")
    folder = [
        "dataset=folder",
        f"dataset.data_dir={tmp_path / 'digits'}",
        "dataset.image_size=28",
        "dataset.channels=1",
    ]
    with pytest.raises(
        CsgmError, match="dataset 'mnist10k', but the images come from dataset 'folder'; pass dataset=mnist10k"
    ):
        evaluate(compose_config("evaluate", [f"checkpoint={vae_checkpoint}", *TINY_EVALUATE, *folder]), tmp_path / "a")
    with pytest.raises(CsgmError, match="num_images=5000 but the test split of mnist10k has 1000 images"):
        evaluate(
            compose_config("evaluate", [f"checkpoint={vae_checkpoint}", *TINY_EVALUATE, "num_images=5000"]), tmp_path
        )

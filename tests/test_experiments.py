"""A tiny version of every experiment config runs end to end through train.py / recover.py."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from csgm.cli import plain
from tests.helpers import TINY_TRAIN, compose_config, conf_options, make_fake_celeba, run_script, summary_lines

pytestmark = pytest.mark.slow  # runs the entry points in subprocesses

TINY = [
    "debug=quick",  # every solver of every experiment shrunk (csgm.recovery.quick)
    "trainer.enable_progress_bar=false",
    "trainer.accelerator=cpu",
    "logger=none",
    "num_images=2",
    "tuning.num_images=2",
    "save_images=2",
]


def recovery_experiments(dataset: str) -> list[str]:
    found = []
    for name in conf_options("experiment"):
        cfg = plain(compose_config("recover", [f"experiment={name}", "checkpoint=x.ckpt"]))
        if cfg.get("report_name") and cfg["dataset"]["name"] == dataset:
            found.append(name)
    return found


def test_every_experiment_is_covered():
    training_only = {"mnist_vae", "celeba_dcgan", "paper_mnist_generators"}
    hyperparameter_searches = {"tune_csgm"}  # Optuna sweeps: tests/test_optuna_sweep.py runs them
    assert set(conf_options("experiment")) == training_only | hyperparameter_searches | set(
        recovery_experiments("mnist10k")
    ) | set(recovery_experiments("celeba"))


def report_rows(root: Path, name: str) -> list[dict]:
    with open(root / "reports" / name / "summary.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def expected_solvers(name: str) -> set[str]:
    cfg = plain(compose_config("recover", [f"experiment={name}", "checkpoint=x.ckpt"]))
    labels = set()
    for option in cfg["sweep"]["solver"].split(","):
        labels.add(plain(compose_config("recover", [f"solver={option}"]))["solver"]["label"])
    return labels


@pytest.mark.parametrize("name", recovery_experiments("mnist10k"))
def test_mnist_experiment(name, vae_checkpoint, tmp_path):
    result = run_script(
        "recover.py",
        f"experiment={name}",
        f"checkpoint={vae_checkpoint}",
        "measurements=[20]",
        *TINY,
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = report_rows(tmp_path, name)
    assert {r["solver"] for r in rows} == expected_solvers(name)
    assert len(list((tmp_path / "reports" / name).glob("error_vs_*_mse.png"))) == 1
    if name == "paper_mnist_noise":
        assert sorted({float(r["noise_std"]) for r in rows}) == [0.0, 0.01, 0.05, 0.1, 0.2, 0.5]
        assert (tmp_path / "reports" / name / "error_vs_noise_std_mse.png").is_file()
    else:
        assert (tmp_path / "reports" / name / "error_vs_m_mse.png").is_file()


def test_mnist_vae_training_experiment(tmp_path):
    result = run_script("train.py", "experiment=mnist_vae", *TINY_TRAIN, f"paths.output_root={tmp_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert Path(summary_lines(result)["checkpoint"]).is_file()


def test_generators_training_experiment_trains_all_four(tmp_path):
    from csgm.generators.checkpoint import load_generator

    result = run_script(
        "train.py",
        "-m",
        "experiment=paper_mnist_generators",
        *TINY_TRAIN,
        f"paths.output_root={tmp_path}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trained = sorted(
        (meta["name"], meta["training"])
        for meta in (load_generator(path)[1] for path in (tmp_path / "sweep").glob("*/checkpoints/last.ckpt"))
    )
    assert trained == [("dcgan", "adversarial"), ("flow", "mle"), ("vae", "elbo"), ("vae", "glo")]


@pytest.fixture(scope="module")
def fake_celeba_checkpoint(tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("celeba")
    make_fake_celeba(root / "data", per_split=(6, 3, 3))
    result = run_script(
        "train.py",
        "experiment=paper_celeba",
        f"dataset.data_dir={root / 'data'}",
        *TINY_TRAIN,
        "batch_size=3",
        "generator.arch.base_channels=8",
        "generator.training.disc_base_channels=8",
        "trainer.max_steps=4",
        f"paths.output_root={root}",
        cwd=root,
    )
    assert result.returncode == 0, result.stderr
    return root / "data", summary_lines(result)["checkpoint"]


@pytest.mark.parametrize("name", recovery_experiments("celeba"))
def test_celeba_experiment_on_a_fake_tree(name, fake_celeba_checkpoint, tmp_path):
    data_dir, checkpoint = fake_celeba_checkpoint
    result = run_script(
        "recover.py",
        f"experiment={name}",
        f"checkpoint={checkpoint}",
        f"dataset.data_dir={data_dir}",
        "measurements=[30,60]",
        *TINY,
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = report_rows(tmp_path, name)
    assert {r["solver"] for r in rows} == expected_solvers(name)
    grids = list((tmp_path / "recover").glob("*/grid.png"))
    assert len(grids) == len(expected_solvers(name))

"""Every file of every config group composes, and its object builds (contract over conf/)."""

from __future__ import annotations

import pytest
from hydra.errors import MissingConfigException

from csgm.cli import plain
from csgm.errors import CsgmError
from csgm.generators import build_generator
from csgm.operators import build_noise, build_operator, operator_uses_m
from csgm.reporting.loggers import build_logger
from csgm.solvers import build_solver
from tests.helpers import compose_config, conf_options

TRAIN_GROUPS = ("dataset", "generator", "trainer", "logger", "experiment")
RECOVER_GROUPS = ("dataset", "operator", "noise", "solver", "trainer", "logger", "experiment")


@pytest.mark.parametrize("group,option", [(g, o) for g in TRAIN_GROUPS for o in conf_options(g)])
def test_train_config_composes(group, option):
    cfg = compose_config(
        "train",
        [f"{group}={option}", "dataset.data_dir=/data"]
        if group == "dataset" and option == "folder"
        else [f"{group}={option}"],
    )
    resolved = plain(cfg)
    for key in ("dataset", "generator", "trainer", "logger", "seed", "batch_size"):
        assert key in resolved
    assert resolved["dataset"]["name"] in {"mnist10k", "mnist", "fashion_mnist", "celeba", "folder"}


@pytest.mark.parametrize("group,option", [(g, o) for g in RECOVER_GROUPS for o in conf_options(g)])
def test_recover_config_composes(group, option):
    overrides = [f"{group}={option}", "checkpoint=some.ckpt"]
    if group == "dataset" and option == "folder":
        overrides.append("dataset.data_dir=/data")
    resolved = plain(compose_config("recover", overrides))
    for key in ("dataset", "operator", "noise", "solver", "measurements", "seed", "run_name"):
        assert key in resolved
    assert resolved["run_name"].startswith(f"{resolved['solver']['label']}-{resolved['operator']['name']}-")


@pytest.mark.parametrize("option", conf_options("generator"))
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64), (3, 32, 32)])
def test_every_generator_config_builds(option, shape):
    import torch

    cfg = plain(compose_config("train", [f"generator={option}"]))["generator"]
    generator = build_generator(cfg["name"], cfg["arch"], shape).eval()
    out = generator(torch.randn(3, generator.latent_dim))
    assert out.shape == (3, *shape)
    assert float(out.detach().min()) >= 0.0 and float(out.detach().max()) <= 1.0


@pytest.mark.parametrize("option", conf_options("operator"))
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64)])
def test_every_operator_config_builds(option, shape):
    cfg = plain(compose_config("recover", [f"operator={option}"]))["operator"]
    operator = build_operator(cfg, shape, seed=0, m=0.25 if operator_uses_m(cfg) else None)
    assert 1 <= operator.m <= operator.n


@pytest.mark.parametrize("option", conf_options("noise"))
def test_every_noise_config_builds(option):
    noise = build_noise(plain(compose_config("recover", [f"noise={option}"]))["noise"])
    assert noise.name == option


@pytest.mark.parametrize("option", conf_options("solver"))
def test_every_solver_config_builds(option):
    cfg = plain(compose_config("recover", [f"solver={option}"]))["solver"]
    solver = build_solver(cfg)
    assert solver.label == cfg["label"]


@pytest.mark.parametrize(
    "overrides,label",
    [
        ([], "csgm"),
        (["+solver.median_of_means=5"], "csgm_mom5"),
        (["+solver.median_of_means=5", "solver.label=robust"], "robust"),  # a label of the config's own stays
        (["solver=sparse_gen", "+solver.median_of_means=3", "solver.basis=dct"], "sparse_gen_mom3_dct"),
        (["solver=lasso", "solver.basis=wavelet"], "lasso_wavelet"),
        (["solver=biht", "solver.basis=pixel"], "biht_pixel"),  # BIHT's default basis is the DCT
        (["solver=langevin", "solver.mala=true"], "langevin_mala"),
        (["solver=mala"], "mala"),
    ],
)
def test_a_label_left_at_the_solver_name_says_what_ran(overrides, label):
    resolved = plain(compose_config("recover", ["checkpoint=some.ckpt", *overrides]))
    assert build_solver(resolved["solver"]).label == label
    assert resolved["run_name"].startswith(f"{label}-gaussian-gaussian-")


def test_a_solver_entry_that_does_not_build_names_its_folder_unresolved():
    resolved = plain(compose_config("recover", ["checkpoint=some.ckpt", "solver.lr=fast"]))
    assert resolved["run_name"].startswith("unresolved-gaussian-gaussian-")


@pytest.mark.parametrize("option", conf_options("logger"))
def test_every_logger_config_builds(option, tmp_path):
    logger = build_logger(plain(compose_config("train", [f"logger={option}"]))["logger"], tmp_path, "test")
    assert (logger is False) == (option == "none")


def test_unknown_config_name_lists_the_choices():
    with pytest.raises(MissingConfigException) as info:
        compose_config("train", ["dataset=imagenet"])
    assert "mnist10k" in str(info.value)


def test_unknown_operator_option_is_named():
    with pytest.raises(
        CsgmError, match=r"unknown key operator.sigma_typo \(value 1.0\); did you mean operator.sigma\?"
    ):
        build_operator({"name": "blur", "sigma_typo": 1.0}, (1, 8, 8))


def test_unknown_solver_option_is_named():
    with pytest.raises(CsgmError, match=r"unknown key solver.step \(value 0.1\); accepted keys: "):
        build_solver({"name": "csgm", "step": 0.1})


@pytest.mark.parametrize(
    "launcher,plugin,target",
    [
        ("local_parallel", "hydra_plugins.hydra_joblib_launcher", "JoblibLauncher"),
        ("slurm", "hydra_plugins.hydra_submitit_launcher", "SlurmLauncher"),
    ],
)
def test_launcher_configs_compose(launcher, plugin, target):
    pytest.importorskip(plugin)
    from hydra import compose, initialize_config_dir

    from tests.helpers import CONF

    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("recover", [f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(target)

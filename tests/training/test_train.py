"""train.py end to end (VAE, DCGAN on a fake CelebA tree, folder of PNGs), multirun and bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from csgm.generators.checkpoint import load_generator
from tests.helpers import TINY_TRAIN, make_fake_celeba, run_script, summary_lines, write_images

pytestmark = pytest.mark.slow  # runs the entry points in subprocesses


def assert_clean_error(result, *fragments):
    """Failed with status 2 and one 'csgm: error:' line naming the problem, without a traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    line = [l for l in result.stderr.splitlines() if l.startswith("csgm: error:")]
    assert len(line) == 1, result.stderr
    for fragment in fragments:
        assert fragment in line[0]


def test_train_vae_end_to_end(tmp_path):
    overrides = [o for o in TINY_TRAIN if not o.startswith("logger=")]
    result = run_script("train.py", *overrides, "logger=csv", f"paths.output_root={tmp_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = summary_lines(result)
    assert Path(summary["checkpoint"]).is_file() and Path(summary["samples"]).is_file()
    assert Path(summary["checkpoint"]).is_relative_to(tmp_path / "train")
    assert float(summary["test/nelbo"]) > 0
    assert int(summary["global_step"]) == 4 and int(summary["world_size"]) == 1
    generator, meta = load_generator(summary["checkpoint"])
    assert meta["dataset"] == "mnist10k" and generator.image_shape == (1, 28, 28) and generator.latent_dim == 20
    assert (Path(summary["run_dir"]) / "csv" / "metrics.csv").is_file()


def test_train_dcgan_experiment_on_fake_celeba(tmp_path):
    make_fake_celeba(tmp_path / "data")
    result = run_script(
        "train.py",
        *TINY_TRAIN,
        "experiment=celeba_dcgan",
        f"dataset.data_dir={tmp_path / 'data'}",
        "batch_size=4",
        "generator.arch.base_channels=8",
        "generator.training.disc_base_channels=8",
        "trainer.max_steps=4",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summary = summary_lines(result)
    assert int(summary["global_step"]) == 4  # 2 batches x (discriminator + generator step)
    generator, meta = load_generator(summary["checkpoint"])
    assert generator.image_shape == (3, 64, 64) and generator.latent_dim == 100 and meta["dataset"] == "celeba"


def test_train_on_a_folder_of_pngs(tmp_path):
    write_images(tmp_path / "imgs", 12, (40, 30))
    result = run_script(
        "train.py",
        *TINY_TRAIN,
        "dataset=folder",
        f"dataset.data_dir={tmp_path / 'imgs'}",
        "dataset.image_size=32",
        "dataset.channels=1",
        "batch_size=4",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    generator, _ = load_generator(summary_lines(result)["checkpoint"])
    assert generator.image_shape == (1, 32, 32)


def test_multirun_writes_one_run_per_job(tmp_path):
    result = run_script(
        "train.py",
        "-m",
        *TINY_TRAIN,
        "generator.training.lr=0.001,0.002",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    checkpoints = sorted(tmp_path.glob("train-multirun/*/*/checkpoints/last.ckpt"))
    assert [p.parts[-3] for p in checkpoints] == ["0", "1"]


def test_unknown_dataset_lists_the_options(tmp_path):
    result = run_script("train.py", "dataset=imagenet", cwd=tmp_path)
    assert result.returncode != 0
    assert "Could not find 'dataset/imagenet'" in result.stderr and "mnist10k" in result.stderr


def test_folder_without_images(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_script(
        "train.py", *TINY_TRAIN, "dataset=folder", f"dataset.data_dir={tmp_path / 'empty'}", cwd=tmp_path
    )
    assert_clean_error(result, "no images", str(tmp_path / "empty"))


def test_image_shape_the_generator_cannot_produce(tmp_path):
    write_images(tmp_path / "imgs", 6, (27, 27))
    result = run_script(
        "train.py",
        *TINY_TRAIN,
        "dataset=folder",
        f"dataset.data_dir={tmp_path / 'imgs'}",
        "dataset.image_size=27",
        "generator=dcgan",
        cwd=tmp_path,
    )
    assert_clean_error(result, "DCGAN cannot produce 27x27 images", "dataset.image_size")


def test_bad_trainer_option(tmp_path):
    result = run_script("train.py", *TINY_TRAIN, "+trainer.max_epoch=3", cwd=tmp_path)
    assert_clean_error(result, "unknown key trainer.max_epoch (value 3); did you mean trainer.max_epochs?")


def test_train_on_two_cpu_processes(tmp_path):
    overrides = [o for o in TINY_TRAIN if o != "logger=none"]
    result = run_script(
        "train.py",
        *overrides,
        "trainer=ddp",
        "logger=csv",
        "range_error.every=1",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summary = summary_lines(result)
    assert int(summary["global_step"]) == 4 and float(summary["test/nelbo"]) > 0
    assert int(summary["world_size"]) == 2  # the checkpoint was written by a trainer of two processes
    # the workers' training and validation rows and the main process's test row share one metrics.csv
    with open(Path(summary["run_dir"]) / "csv" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for key in ("train/nelbo", "val/nelbo", "val/range_error", "test/nelbo"):
        assert any(row.get(key) for row in rows), key
    generator, _ = load_generator(summary["checkpoint"])
    assert generator.image_shape == (1, 28, 28)

"""The wheel works outside the clone: built from the project, installed into a fresh virtual environment, its
console scripts train and recover (tiny) from a folder that holds no part of the repository."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import CONF, ROOT, TINY_TRAIN

pytestmark = pytest.mark.slow  # builds a wheel and runs the commands in subprocesses


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("PYTHONPATH", None)  # the installed wheel alone, never the checkout
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A virtual environment with the project's wheel installed (dependencies from the system's packages)."""
    root = tmp_path_factory.mktemp("wheel")
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root), str(ROOT)],
        cwd=root,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = root.glob("csgm-*.whl")
    shipped = {
        Path(name).relative_to("csgm/conf").as_posix()
        for name in zipfile.ZipFile(wheel).namelist()
        if name.startswith("csgm/conf/") and name.endswith(".yaml")
    }
    assert shipped == {p.relative_to(CONF).as_posix() for p in CONF.rglob("*.yaml")}  # every config ships
    env_dir = root / "venv"
    assert _run([sys.executable, "-m", "venv", "--system-site-packages", str(env_dir)], cwd=root).returncode == 0
    installed = _run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], cwd=root)
    assert installed.returncode == 0, installed.stderr
    return env_dir


def test_console_scripts_train_and_recover_outside_the_clone(venv, tmp_path):
    where = _run([str(venv / "bin" / "python"), "-c", "import csgm, csgm.conf; print(csgm.__file__)"], cwd=tmp_path)
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr
    trained = _run([str(venv / "bin" / "csgm-train"), *TINY_TRAIN, "generator.arch.hidden_dims=[32]"], cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert list(tmp_path.glob("outputs/train/*/checkpoints/last.ckpt"))
    recovered = _run(
        [
            str(venv / "bin" / "csgm-recover"),
            "num_images=2",
            "measurements=[50]",
            "solver.iterations=20",
            "solver.restarts=2",
            "logger=none",
            "trainer.enable_progress_bar=false",
        ],
        cwd=tmp_path,
    )
    assert recovered.returncode == 0, recovered.stderr
    (run,) = tmp_path.glob("outputs/recover/csgm-gaussian-gaussian-*")
    assert (run / "results.csv").read_text().count("\n") == 3  # header + 2 images
    assert (run / "recover.log").is_file()
    report = _run([str(venv / "bin" / "csgm-report"), str(run), "--out", str(tmp_path / "report")], cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "report" / "report.md").is_file()


def test_installed_commands_refuse_bad_input_in_one_line(venv, tmp_path):
    result = _run([str(venv / "bin" / "csgm-recover"), "+num_image=2"], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "csgm: error: unknown key num_image (value 2); did you mean num_images?"


def test_notebook_compose_uses_the_packaged_configs(venv, tmp_path):
    code = "import csgm; cfg = csgm.compose('recover', ['solver=csgm_fast']); print(cfg.solver.name, cfg.operator.name)"
    result = _run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["csgm", "gaussian"]

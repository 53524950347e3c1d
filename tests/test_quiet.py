"""Quiet by default: a sweep and a training run print no warnings or adverts the user cannot act on."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT, TINY_RECOVER, TINY_TRAIN

pytestmark = pytest.mark.slow  # runs the entry points in subprocesses


def _run(script: str, *args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONWARNINGS", None)  # every warning shows, as on a user's terminal
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_a_sweep_and_a_training_run_write_nothing_to_stderr(vae_checkpoint, tmp_path):
    swept = _run(
        "recover.py",
        "-m",
        "solver=csgm,csgm_reg,csgm_qn",  # csgm_qn: torch warns on its first forward-mode product
        *TINY_RECOVER,
        "num_images=2",
        "measurements=[20]",
        f"checkpoint={vae_checkpoint}",
        f"paths.output_root={tmp_path}",
        cwd=tmp_path,
    )
    assert swept.returncode == 0 and swept.stderr == "", swept.stderr
    trained = _run("train.py", *TINY_TRAIN, f"paths.output_root={tmp_path}", cwd=tmp_path)
    assert trained.returncode == 0 and trained.stderr == "", trained.stderr
    assert "Tip:" not in swept.stdout + trained.stdout

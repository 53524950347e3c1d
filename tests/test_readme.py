"""The README's notebook block and the Python API page's block run as written (so they can never rot) and give
recover.py's numbers."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow  # runs the entry points in subprocesses


def python_block(page: str, heading: str) -> str:
    """The first python block after the heading ``heading`` of ``page`` (relative to the repository)."""
    text = (ROOT / page).read_text()
    section = text.split(f"{heading}\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def latest_checkpoint(checkpoint: str, root) -> str:
    """``checkpoint`` copied to where ``csgm.resolve_checkpoint("latest", "outputs")`` finds it under ``root``."""
    target = root / "outputs" / "train" / "run" / "checkpoints" / "last.ckpt"
    target.parent.mkdir(parents=True)
    shutil.copy(checkpoint, target)
    return str(target)


def test_notebook_block_gives_what_recover_gives_from_the_same_files(vae_checkpoint, tmp_path, monkeypatch):
    target = latest_checkpoint(vae_checkpoint, tmp_path)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(python_block("README.md", "## In a notebook"), scope)  # the README block as written
    out, y, A = scope["out"], scope["y"], scope["A"]
    np.save(tmp_path / "y.npy", y[None])
    np.save(tmp_path / "A.npy", A)
    from csgm.recovery.run import recover
    from tests.helpers import compose_config

    cfg = compose_config(
        "recover",
        [
            f"checkpoint={target}",
            "input=file",
            f"file.y={tmp_path / 'y.npy'}",
            f"file.matrix={tmp_path / 'A.npy'}",
            "num_images=1",
            "logger=none",
            "trainer.enable_progress_bar=false",
            f"paths.output_root={tmp_path}",
        ],
    )
    recover(cfg, tmp_path / "run")
    x_hat = np.load(tmp_path / "run" / "x_hat.npy")
    np.testing.assert_allclose(out.x_hat.numpy(), x_hat, rtol=0, atol=1e-6)


def test_python_api_block_runs(vae_checkpoint, tmp_path):
    target = latest_checkpoint(vae_checkpoint, tmp_path)
    script = tmp_path / "block.py"
    script.write_text(python_block("docs/guide/python.md", "# Python API"))
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    printed = re.fullmatch(r"per-pixel error (0\.\d{5}), PSNR \d+\.\d\d dB\n", result.stdout)
    assert printed, result.stdout
    from csgm.recovery.run import recover
    from tests.helpers import compose_config

    cfg = compose_config(
        "recover",
        [
            f"checkpoint={target}",
            "measurements=[100]",
            "num_images=10",
            "logger=none",
            "trainer.enable_progress_bar=false",
            f"paths.output_root={tmp_path}",
        ],
    )
    (entry,) = recover(cfg, tmp_path / "run")["summary"]
    assert f"{entry['mse_mean']:.5f}" == printed.group(1)

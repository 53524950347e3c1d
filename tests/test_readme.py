"""The README's Python API block runs as written (so it can never rot) and gives recover.py's numbers."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow  # runs the entry points in subprocesses


def readme_block(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_python_api_block_runs(vae_checkpoint, tmp_path):
    target = tmp_path / "outputs" / "train" / "run" / "checkpoints" / "last.ckpt"
    target.parent.mkdir(parents=True)
    shutil.copy(vae_checkpoint, target)
    script = tmp_path / "block.py"
    script.write_text(readme_block("Python API"))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    printed = re.fullmatch(r"per-pixel error (0\.\d{5}), PSNR \d+\.\d\d dB\n", result.stdout)
    assert printed, result.stdout
    from csgm.recovery.run import recover
    from tests.helpers import compose_config

    cfg = compose_config("recover", [f"checkpoint={target}", "measurements=[100]", "num_images=10", "logger=none",
                                     "trainer.enable_progress_bar=false", f"paths.output_root={tmp_path}"])
    (entry,) = recover(cfg, tmp_path / "run")["summary"]
    assert f"{entry['mse_mean']:.5f}" == printed.group(1)

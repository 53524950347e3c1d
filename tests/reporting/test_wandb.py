"""What W&B recorded, read back from the offline run files (W&B's own record schema): a sweep of three
solvers gives three runs in one group whose per-m scalars share the step metric ``m``."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, TINY_RECOVER

pytestmark = pytest.mark.slow  # runs the entry points in subprocesses

pb = pytest.importorskip("wandb.proto.wandb_internal_pb2")

_BLOCK, _HEADER = 32768, 7  # the .wandb file: a LevelDB-style log of protobuf records after a 7-byte file header


def records(path: Path) -> list:
    """Every ``Record`` of an offline ``run-*.wandb`` file."""
    data, out, pos, pending = path.read_bytes(), [], _HEADER, b""
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + _HEADER])
        if length == 0 and kind == 0:
            pos += left
            continue
        pending += data[pos + _HEADER:pos + _HEADER + length]
        pos += _HEADER + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


def read_run(path: Path) -> dict:
    """group, name, step metrics ({metric: step metric}) and history rows of one offline run."""
    run = {"metrics": {}, "history": []}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run["group"], run["name"] = record.run.run_group, record.run.display_name
            run["config"] = {item.key: json.loads(item.value_json) for item in record.run.config.update}
        elif kind == "metric" and record.metric.name:
            run["metrics"][record.metric.name] = record.metric.step_metric
        elif kind == "history":
            run["history"].append({item.key or ".".join(item.nested_key): json.loads(item.value_json)
                                   for item in record.history.item})
    return run


def test_a_sweep_logs_one_run_per_solver_in_one_group_with_m_as_step(vae_checkpoint, tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
           "WANDB_SILENT": "true"}
    args = [arg for arg in TINY_RECOVER if not arg.startswith("logger=")]
    result = subprocess.run([sys.executable, str(ROOT / "recover.py"), "-m", *args, "logger=wandb", f"checkpoint={vae_checkpoint}",
                             "measurements=[20,40]", "num_images=2", "solver=csgm,csgm_reg,csgm_fast",
                             f"paths.output_root={tmp_path}"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    runs = [read_run(p) for p in sorted(tmp_path.glob("recover/*/wandb/offline-run-*/run-*.wandb"))]
    assert len(runs) == 3
    assert len({run["group"] for run in runs}) == 1 and runs[0]["group"].startswith("sweep-")
    assert sorted(run["name"].split(" | ")[0] for run in runs) == ["csgm", "csgm_fast", "csgm_reg"]
    for run in runs:
        assert run["metrics"]["mse_mean"] == "m" and run["metrics"]["failed"] == "m"
        points = [row for row in run["history"] if "mse_mean" in row]
        assert [row["m"] for row in points] == [20, 40] and all(row["mse_mean"] > 0 for row in points)
        assert run["config"]["solver.label"] in ("csgm", "csgm_reg", "csgm_fast") and "operator.name" in run["config"]

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
        _, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        if length == 0 and kind == 0:
            pos += left
            continue
        pending += data[pos + _HEADER : pos + _HEADER + length]
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
            run["history"].append(
                {item.key or ".".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            )
    return run


def test_a_sweep_logs_one_run_per_solver_in_one_group_with_m_as_step(vae_checkpoint, tmp_path):
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
        "WANDB_SILENT": "true",
    }
    args = [arg for arg in TINY_RECOVER if not arg.startswith("logger=")]
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "recover.py"),
            "-m",
            *args,
            "logger=wandb",
            f"checkpoint={vae_checkpoint}",
            "measurements=[20,40]",
            "num_images=2",
            "solver=csgm,csgm_reg,csgm_fast",
            f"paths.output_root={tmp_path}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
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


def _offline_env() -> dict:
    return {
        **os.environ,
        "WANDB_MODE": "offline",
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
        "WANDB_SILENT": "true",
    }


def test_a_rerun_resumes_the_recovery_run_by_its_folder_fingerprint(vae_checkpoint, tmp_path):
    args = [arg for arg in TINY_RECOVER if not arg.startswith("logger=")]
    command = [
        sys.executable,
        str(ROOT / "recover.py"),
        *args,
        "logger=wandb",
        f"checkpoint={vae_checkpoint}",
        "measurements=[20]",
        "num_images=2",
        f"paths.output_root={tmp_path}",
    ]
    for _ in range(2):
        result = subprocess.run(command, cwd=tmp_path, env=_offline_env(), capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
    (run_dir,) = tmp_path.glob("recover/*")
    fingerprint = json.loads((run_dir / "identity.json").read_text())["fingerprint"]
    ids = [
        record.run.run_id
        for path in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
        for record in records(path)
        if record.WhichOneof("record_type") == "run"
    ]
    assert len(ids) >= 2 and set(ids) == {f"recover-{fingerprint}"}  # one W&B run, resumed, not a duplicate


def test_training_logs_its_whole_config_and_the_final_checkpoint_as_an_artifact(tmp_path):
    from tests.helpers import TINY_TRAIN

    args = [arg for arg in TINY_TRAIN if not arg.startswith("logger=")]
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            *args,
            "logger=wandb",
            "batch_size=50",
            "generator.arch.hidden_dims=[16]",
            f"paths.output_root={tmp_path}",
        ],
        cwd=tmp_path,
        env=_offline_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    (path,) = tmp_path.glob("train/*/wandb/offline-run-*/run-*.wandb")
    config, artifacts = {}, []
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "run":
            config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "artifact":
            artifacts.append(record.artifact)
    assert config["batch_size"] == 50 and config["seed"] == 0 and config["trainer"]["max_epochs"] == 1
    assert [a.type for a in artifacts] == ["model"]
    assert any(entry.path.endswith(".ckpt") for entry in artifacts[0].manifest.contents)

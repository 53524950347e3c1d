"""The results store: atomic shards, merge without duplicates, resume keys, summaries."""

from __future__ import annotations

import csv

import pytest
import torch

from csgm.files import atomic_write_bytes
from csgm.recovery.store import ResultsStore, summarise


def row(m, image_id, mse=0.1, status="ok"):
    return {"solver": "csgm", "operator": "gaussian", "noise": "gaussian", "m": m, "image_id": image_id, "mse": mse,
            "psnr": 10.0, "ssim": 0.5, "measurement_loss": 1.0, "iterations": 5, "dropped_restarts": 0,
            "status": status, "seconds": 0.1}


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"first")

    with pytest.raises(TypeError):
        atomic_write_bytes(target, object())  # fails mid-write
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_shards_merge_and_resume_keys(tmp_path):
    store = ResultsStore(tmp_path)
    store.write_shard([row(10, 0), row(10, 1)], torch.zeros(2, 1, 2, 2))
    store.write_shard([row(20, 1, mse=0.3)], torch.ones(1, 1, 2, 2))
    store.write_shard([row(10, 1)], torch.zeros(1, 1, 2, 2))  # a recomputed duplicate
    assert store.done() == {(10, 0), (10, 1), (20, 1)}
    rows, summary = store.merge()
    assert [(r["m"], r["image_id"]) for r in rows] == [(10, 0), (10, 1), (20, 1)]
    with open(tmp_path / "results.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 3
    merged = torch.load(tmp_path / "reconstructions.pt", weights_only=True)
    assert merged["keys"].tolist() == [[10, 0], [10, 1], [20, 1]] and merged["x_hat"].shape == (3, 1, 2, 2)
    assert [(s["m"], s["images"]) for s in summary] == [(10, 2), (20, 1)]


def test_summary_mean_interval_and_failures():
    rows = [row(5, i, mse=v) for i, v in enumerate([0.1, 0.2, 0.3, 0.4])] + [row(5, 9, mse=0.5, status="all_restarts_diverged")]
    (entry,) = summarise(rows)
    values = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5], dtype=torch.float64)
    assert entry["mse_mean"] == pytest.approx(0.3)
    assert entry["mse_ci95"] == pytest.approx(1.96 * float(values.std()) / 5**0.5)
    assert entry["failed"] == 1 and entry["images"] == 5

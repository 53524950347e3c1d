"""The results store: atomic shards, merge without duplicates, resume keys, summaries, unreadable shards."""

from __future__ import annotations

import csv
import errno
import os

import pytest
import torch

from csgm import files
from csgm.files import atomic_write_bytes, atomic_write_files
from csgm.recovery.store import ResultsStore, summarise
from csgm.results import tensor_bytes


def row(m, image_id, mse=0.1, status="ok"):
    return {
        "solver": "csgm",
        "operator": "gaussian",
        "noise": "gaussian",
        "m": m,
        "image_id": image_id,
        "mse": mse,
        "psnr": 10.0,
        "ssim": 0.5,
        "measurement_loss": 1.0,
        "iterations": 5,
        "dropped_restarts": 0,
        "status": status,
        "seconds": 0.1,
    }


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
    merged = store.merge()
    atomic_write_files(merged.files(tmp_path))
    rows, summary = merged.rows, merged.summary
    assert [(r["m"], r["image_id"]) for r in rows] == [(10, 0), (10, 1), (20, 1)]
    with open(tmp_path / "results.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 3
    merged = torch.load(tmp_path / "reconstructions.pt", weights_only=True)
    assert merged["keys"].tolist() == [[10, 0], [10, 1], [20, 1]] and merged["x_hat"].shape == (3, 1, 2, 2)
    assert [(s["m"], s["images"]) for s in summary] == [(10, 2), (20, 1)]


def test_summary_mean_interval_and_failures():
    """Failed images are counted, never averaged: the mean is over the four images that have an estimate."""
    rows = [row(5, i, mse=v) for i, v in enumerate([0.1, 0.2, 0.3, 0.4])] + [
        row(5, 9, mse=None, status="all_restarts_diverged"),
        row(5, 8, mse=None, status="diverged"),
    ]
    (entry,) = summarise(rows)
    values = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    assert entry["mse_mean"] == pytest.approx(0.25)
    assert entry["mse_ci95"] == pytest.approx(1.96 * float(values.std()) / 4**0.5)
    assert entry["failed"] == 2 and entry["images"] == 6
    (all_failed,) = summarise([row(5, 0, mse=None, status="diverged")])
    assert all_failed["failed"] == 1 and all_failed["mse_mean"] != all_failed["mse_mean"]  # NaN, never a number


def test_unreadable_shards_are_moved_aside_and_temporary_files_never_read(tmp_path, capsys):
    store = ResultsStore(tmp_path)
    store.write_shard([row(10, 0)], torch.zeros(1, 1, 2, 2))
    (tmp_path / "shards" / "truncated.pt").write_bytes(
        store.write_shard([row(10, 1)], torch.zeros(1, 1, 2, 2)).read_bytes()[:50]
    )
    (tmp_path / "shards" / "empty.pt").write_bytes(b"")
    leftover = tmp_path / "shards" / ".m10_id2_abc.x1y2.pt"  # what kill -9 leaves of an atomic write
    torch.save({"rows": [row(10, 2)], "x_hat": torch.zeros(1, 1, 2, 2)}, leftover)
    assert store.done() == {(10, 0), (10, 1)}
    warnings = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(warnings) == 2 and all(line.startswith("csgm: warning: shard") for line in warnings)
    assert sorted(p.name for p in (tmp_path / "shards" / "unreadable").iterdir()) == ["empty.pt", "truncated.pt"]
    assert store.done() == {(10, 0), (10, 1)} and capsys.readouterr().err == ""  # moved aside: warned once
    assert leftover.exists()


def test_files_respect_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "a.csv", b"x")
        atomic_write_files({tmp_path / "b.csv": b"y"})
    finally:
        os.umask(old)
    assert {oct((tmp_path / n).stat().st_mode & 0o777) for n in ("a.csv", "b.csv")} == {oct(0o640)}


def test_a_full_disk_changes_none_of_the_files_written_together(tmp_path, monkeypatch):
    atomic_write_files({tmp_path / "results.csv": b"old rows", tmp_path / "grid.png": b"old grid"})
    real_open, calls = open, {"n": 0}

    def disk_fills_on_second_file(path, mode="r", *args, **kwargs):
        if "w" in mode:
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", disk_fills_on_second_file)
    with pytest.raises(OSError, match="No space left") as info:
        atomic_write_files({tmp_path / "results.csv": b"new rows", tmp_path / "grid.png": b"new grid"})
    monkeypatch.undo()
    assert info.value.filename == str(tmp_path / "grid.png")
    assert (tmp_path / "results.csv").read_bytes() == b"old rows" and (
        tmp_path / "grid.png"
    ).read_bytes() == b"old grid"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png", "results.csv"]  # no temporary file left
    assert files.is_temporary(tmp_path / ".results.abc.csv")


def test_merge_keeps_only_the_asked_estimates_in_memory_and_stacks_every_one_on_disk(tmp_path):
    """reconstructions.pt holds every estimate in (m, image id) order (the last shard's of a duplicate), as
    torch.stack of them would; the merge keeps in memory only those ``keep`` accepts; no temporary file is left."""
    store = ResultsStore(tmp_path)
    g = torch.Generator().manual_seed(0)
    images = {(m, i): torch.rand(1, 3, 4, generator=g) for m in (20, 10) for i in range(5)}
    for m in (20, 10):
        for first in (3, 0):  # shards written out of order
            ids = [i for i in range(first, first + 3) if i < 5]
            store.write_shard([row(m, i) for i in ids], torch.stack([images[(m, i)] for i in ids]))
    images[(10, 4)] = torch.full((1, 3, 4), 0.5)
    store.write_shard([row(10, 4)], images[(10, 4)][None])  # a recomputed duplicate: its estimate wins
    merged = store.merge(keep=lambda m, i: i < 2)
    assert sorted(merged.x_hat) == [(10, 0), (10, 1), (20, 0), (20, 1)]
    assert all(torch.equal(merged.x_hat[k], images[k]) for k in merged.x_hat)
    atomic_write_files(merged.files(tmp_path))
    saved = torch.load(tmp_path / "reconstructions.pt", weights_only=True)
    keys = sorted(images)
    assert saved["keys"].tolist() == [list(k) for k in keys]
    assert torch.equal(saved["x_hat"], torch.stack([images[k] for k in keys]))
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_merge_stacks_posterior_samples_of_samplers(tmp_path):
    store = ResultsStore(tmp_path)
    samples, std = torch.rand(2, 3, 1, 2, 2), torch.rand(2, 1, 2, 2)
    store.write_shard(
        [row(10, 1), row(10, 0)], torch.zeros(2, 1, 2, 2), posterior={"samples": samples, "pixel_std": std}
    )
    merged = store.merge(keep=lambda m, i: i == 0)
    assert list(merged.posterior) == [(10, 0)] and torch.equal(merged.posterior[(10, 0)]["samples"], samples[1])
    atomic_write_files(merged.files(tmp_path))
    saved = torch.load(tmp_path / "posterior.pt", weights_only=True)
    assert saved["keys"].tolist() == [[10, 0], [10, 1]]
    assert torch.equal(saved["samples"], samples.flip(0)) and torch.equal(saved["pixel_std"], std.flip(0))


def test_an_empty_store_merges_to_empty_tables(tmp_path):
    merged = ResultsStore(tmp_path).merge()
    atomic_write_files(merged.files(tmp_path))
    saved = torch.load(tmp_path / "reconstructions.pt", weights_only=True)
    assert saved["keys"].shape == (0, 2) and saved["x_hat"].numel() == 0 and merged.rows == []


def test_files_written_together_include_a_prepared_temporary_file(tmp_path):
    prepared = files.temporary_file(tmp_path / "big.pt")
    prepared.write_bytes(b"large")
    atomic_write_files({tmp_path / "big.pt": prepared, tmp_path / "small.csv": b"rows"})
    assert (tmp_path / "big.pt").read_bytes() == b"large" and (tmp_path / "small.csv").read_bytes() == b"rows"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.pt", "small.csv"]


def test_shards_written_before_rows_were_json_are_still_read(tmp_path):
    """A folder begun by an earlier version (rows pickled as a list) resumes and merges with new shards."""
    store = ResultsStore(tmp_path)
    atomic_write_bytes(
        tmp_path / "shards" / "m10_id0_old.pt",
        tensor_bytes({"rows": [row(10, 0)], "x_hat": torch.zeros(1, 1, 2, 2), "rank": 0}),
    )
    store.write_shard([row(10, 1)], torch.ones(1, 1, 2, 2))
    assert store.done() == {(10, 0), (10, 1)}
    merged = store.merge()
    assert [r["image_id"] for r in merged.rows] == [0, 1] and torch.equal(merged.x_hat[(10, 1)], torch.ones(1, 2, 2))

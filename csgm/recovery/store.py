"""The results store of one recovery run: atomic per-batch shards, merged tables, resume."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from csgm.files import atomic_write_bytes
from csgm.metrics import mean_ci95

__all__ = ["ResultsStore", "csv_bytes", "summarise", "summary_key", "RESULT_FIELDS", "SUMMARY_FIELDS"]

RESULT_FIELDS = ["solver", "operator", "noise", "noise_std", "m", "image_id", "mse", "psnr", "ssim", "measurement_loss",
                 "iterations", "dropped_restarts", "generator_evaluations", "status", "seconds", "params"]
SUMMARY_FIELDS = ["solver", "operator", "noise", "noise_std", "m", "images", "mse_mean", "mse_ci95", "psnr_mean", "psnr_ci95",
                  "ssim_mean", "ssim_ci95", "failed", "not_converged", "params"]


def csv_bytes(rows: Iterable[dict[str, Any]], fields: list[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def summary_key(row: dict[str, Any]) -> tuple[str, str, str, float, int]:
    """One point of a curve: (solver, operator, noise, noise std, m) of a result or summary row."""
    return row["solver"], row["operator"], row["noise"], float(row.get("noise_std", 0.0)), int(row["m"])


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and 95% interval of mse/psnr/ssim per (solver, operator, noise, noise std, m), sorted."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(summary_key(row), []).append(row)
    summary = []
    for (solver, operator, noise, noise_std, m), members in sorted(groups.items()):
        entry: dict[str, Any] = {"solver": solver, "operator": operator, "noise": noise, "noise_std": noise_std, "m": m,
                                 "images": len(members),
                                 "failed": sum(r["status"] == "all_restarts_diverged" for r in members),
                                 "not_converged": sum(r["status"] == "not_converged" for r in members),
                                 "params": members[0].get("params", "{}")}
        for metric in ("mse", "psnr", "ssim"):
            mean, half = mean_ci95([float(r[metric]) for r in members])
            entry[f"{metric}_mean"], entry[f"{metric}_ci95"] = mean, half
        summary.append(entry)
    return summary


class ResultsStore:
    """``run_dir/shards/*.pt`` hold (rows, reconstructions) per batch and m, each written atomically by the
    rank that computed it; ``merge`` writes ``results.csv`` (every row the folder holds), ``summary.csv``
    (the rows of the current request) and ``reconstructions.pt``.
    A rerun reads the shards and skips every (m, image id) already done.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.shard_dir = self.run_dir / "shards"

    def write_shard(self, rows: list[dict[str, Any]], x_hat: torch.Tensor) -> Path:
        """Store one batch's rows and reconstructions (B, C, H, W); returns the shard path."""
        ids = ",".join(f"{r['m']}:{r['image_id']}" for r in rows)
        name = f"m{rows[0]['m']}_id{rows[0]['image_id']}_{hashlib.sha1(ids.encode()).hexdigest()[:10]}.pt"
        buffer = io.BytesIO()
        torch.save({"rows": rows, "x_hat": x_hat.detach().cpu().float()}, buffer)
        path = self.shard_dir / name
        atomic_write_bytes(path, buffer.getvalue())
        return path

    def shards(self) -> list[dict[str, Any]]:
        return [torch.load(p, weights_only=True) for p in sorted(self.shard_dir.glob("*.pt"))]

    def done(self) -> set[tuple[int, int]]:
        """The (m, image id) pairs already stored."""
        return {(int(r["m"]), int(r["image_id"])) for shard in self.shards() for r in shard["rows"]}

    def reconstructions(self) -> dict[tuple[int, int], torch.Tensor]:
        """The merged reconstructions (``reconstructions.pt``) by (m, image id)."""
        merged = torch.load(self.run_dir / "reconstructions.pt", weights_only=True)
        return {tuple(key): x_hat for key, x_hat in zip(merged["keys"].tolist(), merged["x_hat"])}

    def merge(self, requested: Callable[[int, int], bool] | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Merge all shards (one row per (m, image id), sorted) into results.csv; summary.csv covers the
        (m, image id) pairs ``requested`` accepts (all if None). Returns (all rows, that summary)."""
        rows: dict[tuple[int, int], dict[str, Any]] = {}
        images: dict[tuple[int, int], torch.Tensor] = {}
        for shard in self.shards():
            for row, x_hat in zip(shard["rows"], shard["x_hat"]):
                key = (int(row["m"]), int(row["image_id"]))
                rows[key], images[key] = row, x_hat
        keys = sorted(rows)
        ordered = [rows[k] for k in keys]
        summary = summarise([rows[k] for k in keys if requested is None or requested(*k)])
        atomic_write_bytes(self.run_dir / "results.csv", csv_bytes(ordered, RESULT_FIELDS))
        atomic_write_bytes(self.run_dir / "summary.csv", csv_bytes(summary, SUMMARY_FIELDS))
        buffer = io.BytesIO()
        torch.save({"keys": torch.tensor(keys, dtype=torch.long).view(-1, 2),
                    "x_hat": torch.stack([images[k] for k in keys]) if keys else torch.zeros(0)}, buffer)
        atomic_write_bytes(self.run_dir / "reconstructions.pt", buffer.getvalue())
        return ordered, summary

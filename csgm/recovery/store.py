"""The results store of one recovery run: atomic per-batch shards, merged tables, resume.

A failed image (status ``diverged``) has no error values: its metric columns are empty in results.csv,
summaries average over the other images only and count the failed ones (``failed``), so no mean silently
includes a fallback estimate. Every row's status, reason and data fit come from csgm.recovery.verdicts.
"""

from __future__ import annotations

import hashlib
import sys
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from csgm.files import atomic_write_bytes, is_temporary
from csgm.metrics import std_error_correlation
from csgm.results import (
    FAILED_STATUSES,
    METRICS,
    RESULT_FIELDS,
    SUMMARY_FIELDS,
    ResultRow,
    coverage_column,
    csv_bytes,
    summarise,
    tensor_bytes,
)
from csgm.measurement import MeasurementModel
from csgm.recovery.stacked import StackedFile
from csgm.recovery.verdicts import data_fit, verdicts
from csgm.solvers import HealthLimits, SolverOutput

__all__ = ["ResultsStore", "MergedResults", "result_rows", "posterior_metrics"]


def posterior_metrics(out: SolverOutput, x: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Per-image sampler columns: mean pixel std and acceptance (always), single-sample error and the coverage
    of the central 50/80/90/95% pixel intervals (with ground truth x). Empty for point estimators."""
    if out.pixel_std is None:
        return {}
    columns = {"pixel_std": out.pixel_std.double().flatten(1).mean(1).cpu()}
    if out.acceptance is not None:
        columns["acceptance"] = out.acceptance.double().cpu()
    if x is not None:
        truth = x.double().cpu()
        samples = out.samples.double().cpu()
        if samples.shape[1]:
            columns["sample_mse"] = (samples - truth[:, None]).pow(2).flatten(2).mean(2).mean(1)
        for level, bounds in out.intervals.items():
            lower, upper = (bound.double().cpu() for bound in bounds)
            columns[coverage_column(level)] = ((truth >= lower) & (truth <= upper)).double().flatten(1).mean(1)
        columns["std_error_correlation"] = std_error_correlation(out.pixel_std.cpu(), out.x_hat.cpu(), truth)
    return columns


def result_rows(
    out: SolverOutput,
    metrics: dict[str, torch.Tensor] | None,
    ids: list[int],
    names: dict[str, str],
    measurement: MeasurementModel,
    limits: HealthLimits,
    seconds: float,
    params: dict,
    posterior: dict[str, torch.Tensor] | None = None,
) -> list[dict[str, Any]]:
    """The result rows of one solved batch (as dicts, the form shards store): each image's verdict and data fit
    (csgm.recovery.verdicts), no numbers for failed images; ``posterior`` holds sampler columns."""
    fits = data_fit(measurement, out.measurement_loss, measurement.operator.output_size)
    diagnostics = {k: _listed(v) for k, v in (out.diagnostics or {}).items() if k in ("rhat", "ess_bulk")}
    metric_values = {k: _listed(metrics[k]) for k in METRICS} if metrics is not None else None
    posterior_values = {k: _listed(v) for k, v in (posterior or {}).items()}
    losses, iterations = _listed(out.measurement_loss), _listed(out.iterations)
    dropped, evaluations = _listed(out.dropped_restarts), _listed(out.generator_evaluations)
    settings = json.dumps(params, sort_keys=True)
    rows = []
    for j, (image_id, verdict, fit) in enumerate(zip(ids, verdicts(out, limits), fits)):
        failed = verdict.status in FAILED_STATUSES
        row = ResultRow(
            **names,
            noise_std=measurement.noise.std,
            m=measurement.operator.m,
            image_id=image_id,
            **{k: None if failed or metric_values is None else float(metric_values[k][j]) for k in METRICS},
            measurement_loss=None if failed else float(losses[j]),
            iterations=int(iterations[j]),
            dropped_restarts=int(dropped[j]),
            generator_evaluations=int(evaluations[j]),
            status=verdict.status,
            seconds=seconds,
            params=settings,
            **{k: None if failed else float(v[j]) for k, v in posterior_values.items()},
            reason=verdict.reason,
            standardised_residual=None if failed else fit.standardised_residual,
            data_fit="" if failed else fit.label,
            **{k: float(v[j]) for k, v in diagnostics.items()},
        )
        rows.append({name: getattr(row, name) for name in RESULT_FIELDS})  # asdict without its deep copies
    return rows


def _listed(values: Any) -> list:
    """A tensor's (or array's) values as Python numbers, converted once rather than element by element."""
    return values.tolist() if hasattr(values, "tolist") else list(values)


@dataclass
class MergedResults:
    """Every row of a run folder (sorted by (m, image id)), the summary of a request, the estimates kept in memory
    (those the merge was asked to keep: the ones shown in grids) and the stacked files already written beside the
    run folder's tables under temporary names (``reconstructions.pt``, ``posterior.pt``: every estimate)."""

    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    x_hat: dict[tuple[int, int], torch.Tensor]
    posterior: dict[tuple[int, int], dict[str, torch.Tensor]] = field(default_factory=dict)  # samplers' samples, std
    stacked: dict[str, Path] = field(default_factory=dict)  # file name -> its complete temporary file

    def files(self, run_dir: Path) -> dict[Path, bytes | Path]:
        """results.csv, summary.csv and reconstructions.pt (and posterior.pt for samplers: the kept samples
        (N, S, C, H, W) and pixel std maps), to be written together (``atomic_write_files``)."""
        return {
            run_dir / "results.csv": csv_bytes(self.rows, RESULT_FIELDS),
            run_dir / "summary.csv": csv_bytes(self.summary, SUMMARY_FIELDS),
            **{run_dir / name: path for name, path in self.stacked.items()},
        }


class ResultsStore:
    """``run_dir/shards/*.pt`` hold (rows, reconstructions) per batch and m, each written atomically by the
    rank that computed it; ``merge`` gathers them (one row per (m, image id)) for results.csv (every row
    the folder holds), summary.csv (the rows of the current request) and reconstructions.pt.
    A rerun reads the shards and skips every (m, image id) already done. Temporary files of interrupted
    writes are never read; a shard that cannot be read is moved to ``shards/unreadable/`` with one
    warning line, and its images are recomputed.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.shard_dir = self.run_dir / "shards"

    def write_shard(
        self,
        rows: list[dict[str, Any]],
        x_hat: torch.Tensor,
        rank: int = 0,
        posterior: dict[str, torch.Tensor] | None = None,
    ) -> Path:
        """Store one batch's rows and reconstructions (B, C, H, W), with the rank that computed them and, for
        samplers, ``posterior`` = {samples (B, S, C, H, W), pixel_std (B, C, H, W)}; returns the shard path."""
        ids = ",".join(f"{r['m']}:{r['image_id']}" for r in rows)
        name = f"m{rows[0]['m']}_id{rows[0]['image_id']}_{hashlib.sha1(ids.encode()).hexdigest()[:10]}.pt"
        path = self.shard_dir / name
        payload = {"rows": json.dumps(rows), "x_hat": x_hat.detach().cpu().float(), "rank": rank}  # JSON: fast to read
        if posterior:
            payload["posterior"] = {k: v.detach().cpu().float() for k, v in posterior.items()}
        atomic_write_bytes(path, tensor_bytes(payload))
        return path

    def _read(self, path: Path) -> dict[str, Any] | None:
        """A shard memory-mapped: its rows are read, its tensors only where they are used."""
        try:
            shard = torch.load(path, weights_only=True, mmap=True)
            if isinstance(shard, dict) and isinstance(shard.get("rows"), str):
                shard["rows"] = json.loads(shard["rows"])  # rows of shards written before are a list already
            if not (isinstance(shard, dict) and len(shard["rows"]) == len(shard["x_hat"])):
                raise ValueError("not a results shard")
            return shard
        except Exception as exc:  # truncated, empty or foreign file
            aside = self.shard_dir / "unreadable" / path.name
            aside.parent.mkdir(parents=True, exist_ok=True)
            path.replace(aside)
            print(
                f"csgm: warning: shard {str(path)!r} is unreadable ({type(exc).__name__}); moved to {str(aside)!r}, "
                "its images will be recomputed",
                file=sys.stderr,
                flush=True,
            )
            return None

    def shards(self) -> list[dict[str, Any]]:
        """Every readable shard, memory-mapped (temporary files of interrupted writes are skipped)."""
        paths = sorted(p for p in self.shard_dir.glob("*.pt") if not is_temporary(p))
        return [shard for shard in map(self._read, paths) if shard is not None]

    def done(self) -> set[tuple[int, int]]:
        """The (m, image id) pairs already stored."""
        return {(int(r["m"]), int(r["image_id"])) for shard in self.shards() for r in shard["rows"]}

    def reconstructions(self) -> dict[tuple[int, int], torch.Tensor]:
        """The merged reconstructions (``reconstructions.pt``) by (m, image id)."""
        merged = torch.load(self.run_dir / "reconstructions.pt", weights_only=True)
        return {tuple(key): x_hat for key, x_hat in zip(merged["keys"].tolist(), merged["x_hat"])}

    def merge(
        self,
        requested: Callable[[int, int], bool] | None = None,
        keep: Callable[[int, int], bool] | None = None,
    ) -> MergedResults:
        """All shards merged (one row per (m, image id), sorted; of duplicates the last shard's); the summary covers
        the (m, image id) pairs ``requested`` accepts (all if None). Every shard is read once: its rows, then its
        estimates copied straight into ``reconstructions.pt`` (and ``posterior.pt``), written under temporary names
        (see ``MergedResults.files``); only the estimates ``keep`` accepts (all if None) stay in memory."""
        shards = self.shards()
        rows: dict[tuple[int, int], dict[str, Any]] = {}
        source: dict[tuple[int, int], tuple[int, int]] = {}  # (m, image id) -> (shard, position in it)
        for s, shard in enumerate(shards):
            for j, row in enumerate(shard["rows"]):
                key = (int(row["m"]), int(row["image_id"]))
                rows[key], source[key] = row, (s, j)
        keys = sorted(rows)
        summary = summarise([rows[k] for k in keys if requested is None or requested(*k)])
        reconstructions = StackedFile(self.run_dir / "reconstructions.pt", keys, {"x_hat": torch.zeros(0)})
        sampled = sorted(k for k in keys if "posterior" in shards[source[k][0]])
        posterior_file = StackedFile(self.run_dir / "posterior.pt", sampled)
        sampled_slot = {key: n for n, key in enumerate(sampled)}
        winners: dict[int, list[tuple[tuple[int, int], int, int]]] = {}  # shard -> [(key, slot, position)]
        for index, key in enumerate(keys):
            winners.setdefault(source[key][0], []).append((key, index, source[key][1]))
        images: dict[tuple[int, int], torch.Tensor] = {}
        posterior: dict[tuple[int, int], dict[str, torch.Tensor]] = {}
        try:
            for s, found in winners.items():  # each shard's estimates copied in one step
                shard, positions = shards[s], [j for _, _, j in found]
                reconstructions.put("x_hat", [index for _, index, _ in found], shard["x_hat"][positions])
                if "posterior" in shard:
                    for name in ("samples", "pixel_std"):
                        values = shard["posterior"][name][positions]
                        posterior_file.put(name, [sampled_slot[key] for key, _, _ in found], values)
                for key, _, j in found:
                    if keep is None or keep(*key):
                        images[key] = shard["x_hat"][j].clone()
                        if "posterior" in shard:
                            posterior[key] = {name: values[j].clone() for name, values in shard["posterior"].items()}
            stacked = {"reconstructions.pt": reconstructions.finish()}
            if sampled:
                stacked["posterior.pt"] = posterior_file.finish()
        finally:
            reconstructions.discard()
            posterior_file.discard()
        return MergedResults([rows[k] for k in keys], summary, images, posterior, stacked)

"""Time outside the solver and memory as a recovery grows (images x m values), by stage; prints JSON.

    python benchmarks/scale.py [--checkpoint latest] [--configurations 100x1,1000x1,100x10,1000x10] [--threads 1]
                               [overrides of recover.py, e.g. solver=csgm solver.iterations=5]

Each configuration IMAGESxCOUNT is one ``recover()`` (the Lightning job) of the first IMAGES test images at the
first COUNT m values of the paper's grid, in a fresh folder and a fresh process, with a short solver
(``solver=csgm_gn`` unless overridden), under cProfile; a stage's time is
the cumulative time of the functions that do it (measurement simulation, metrics incl. SSIM, shard writes, the
shard reads of the resume check and of the merge, summaries, grids and curves, data loading, the solver). The
``outside`` share is everything but the solver's ``solve``; ``growth`` divides each configuration's outside time
by the smallest one's and by the growth of the work (images x m values), 1 meaning linear.

Memory (Linux): the process's resident set before the job and its peak (VmHWM, which also counts the pages of
memory-mapped files: shards and the stacked reconstructions being written), the peak of its anonymous resident
memory (RssAnon, sampled every 5 ms: what the process itself holds), and how many estimates the merge kept in
memory (those of the grids, ``save_images`` per m) against the (m, image) pairs it merged.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from common import ROOT, add_dataset_options, emit, environment, run_entry  # noqa: F401  (ROOT puts csgm on the path)
from csgm.api import compose
from csgm.recovery.run import recover
from csgm.recovery.store import ResultsStore

PAPER_GRID = [10, 25, 50, 100, 200, 300, 400, 500, 750, 784]  # m values, the first N of them per configuration
# stage -> (file suffix, function name) pairs whose cumulative time is the stage's
STAGES = {
    "solver": [("csgm/solvers/csgm.py", "solve"), ("csgm/solvers/gauss_newton.py", "solve")],
    "measurement_simulation": [("csgm/measurement.py", "measure")],
    "metrics": [("csgm/metrics.py", "image_metrics")],
    "ssim": [("csgm/metrics.py", "ssim")],
    "shard_writes": [("csgm/recovery/store.py", "write_shard")],
    "resume_check_reads": [("csgm/recovery/store.py", "done")],
    "merge": [("csgm/recovery/store.py", "merge")],
    "result_files": [("csgm/recovery/store.py", "files")],
    "grids_and_curves": [
        ("csgm/reporting/plots.py", "image_rows_png"),
        ("csgm/reporting/plots.py", "error_curves_png"),
    ],
    "file_writes": [("csgm/files.py", "atomic_write_files")],
    "data_loading": [("csgm/data/datasets.py", "load_splits"), ("torch/utils/data/dataloader.py", "__next__")],
}


def stage_seconds(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative seconds per stage (a function counted once per stage, recursion not double counted)."""
    found = {stage: 0.0 for stage in STAGES}
    for (path, _, name), (_, _, _, cumulative, _) in stats.stats.items():
        for stage, targets in STAGES.items():
            if any(path.replace("\\", "/").endswith(suffix) and name == function for suffix, function in targets):
                found[stage] += cumulative
    return {stage: round(value, 3) for stage, value in found.items()}


def _status_kib(field: str) -> int:
    """A ``/proc/self/status`` figure in KiB (0 where there is no /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class AnonymousPeak:
    """The peak of RssAnon while running, sampled every ``interval`` seconds in a thread."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval, self.peak, self._stop = interval, _status_kib("RssAnon"), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, _status_kib("RssAnon"))

    def __enter__(self) -> "AnonymousPeak":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _status_kib("RssAnon"))


def run_configuration(images: int, grid: list[int], args) -> dict:
    """One configuration in this process: times by stage and memory."""
    merged_counts = {}
    merge = ResultsStore.merge

    def counted_merge(store, *a, **k):
        merged = merge(store, *a, **k)
        merged_counts.update(pairs=len(merged.rows), estimates_in_memory=len(merged.x_hat))
        return merged

    ResultsStore.merge = counted_merge
    with tempfile.TemporaryDirectory() as root:
        cfg = compose(
            "recover",
            [
                f"checkpoint={args.checkpoint}",
                f"num_images={images}",
                f"measurements=[{','.join(map(str, grid))}]",
                f"paths.output_root={root}",
                "logger=none",
                "trainer.enable_progress_bar=false",
                "trainer.accelerator=cpu",
                f"dataset={args.dataset}",
                *(f"dataset.{option}" for option in args.dataset_option),
                "solver=csgm_gn",
                *args.overrides,
            ],
        )
        rss_before, anonymous_before = _status_kib("VmRSS"), _status_kib("RssAnon")
        profile = cProfile.Profile()
        with AnonymousPeak() as anonymous:
            start = time.perf_counter()
            profile.enable()
            recover(cfg, f"{root}/run")
            profile.disable()
            total = time.perf_counter() - start
        peak = _status_kib("VmHWM")
    ResultsStore.merge = merge
    stages = stage_seconds(pstats.Stats(profile))
    outside = total - stages["solver"]
    return {
        "images": images,
        "m_values": len(grid),
        "total_seconds": round(total, 3),
        "outside_seconds": round(outside, 3),
        "outside_fraction": round(outside / total, 4),
        "stages": stages,
        "memory_mib": {
            "rss_before_job": round(rss_before / 1024, 1),
            "peak_rss": round(peak / 1024, 1),
            "anonymous_before_job": round(anonymous_before / 1024, 1),
            "peak_anonymous": round(anonymous.peak / 1024, 1),
        },
        "merged_pairs": merged_counts.get("pairs"),
        "estimates_kept_in_memory": merged_counts.get("estimates_in_memory"),
    }


def _in_fresh_process(images: int, count: int, argv: list[str]) -> dict:
    """``run_configuration`` in a child process (its own memory peak and start-up)."""
    child = subprocess.run(
        [sys.executable, __file__, f"--single={images}x{count}", *argv], capture_output=True, text=True, check=False
    )
    if child.returncode != 0:
        raise RuntimeError(f"configuration {images}x{count} failed: {child.stderr[-2000:]}")
    return json.loads(child.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="latest")
    parser.add_argument(
        "--configurations",
        default="100x1,1000x1,100x10,1000x10",
        help="IMAGESxCOUNT: that many test images at the first COUNT m values of the paper's grid",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--single", default=None, help=argparse.SUPPRESS)  # one configuration, in this process
    add_dataset_options(parser)
    parser.add_argument("overrides", nargs="*", help="recover.py overrides, e.g. solver=csgm solver.iterations=5")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.single:
        images, count = (int(v) for v in args.single.split("x"))
        print(json.dumps(run_configuration(images, PAPER_GRID[:count], args)))
        return
    sizes = [tuple(int(v) for v in item.split("x")) for item in args.configurations.split(",")]
    argv = [
        f"--checkpoint={args.checkpoint}",
        f"--threads={args.threads}",
        f"--dataset={args.dataset}",
        *(f"--dataset-option={option}" for option in args.dataset_option),
        "--",
        *args.overrides,
    ]
    load = [round(v, 2) for v in os.getloadavg()]  # other jobs on the machine slow every stage alike
    table = [_in_fresh_process(images, count, argv) for images, count in sizes]
    smallest = table[0]
    for row in table:
        work = row["images"] * row["m_values"] / (smallest["images"] * smallest["m_values"])
        row["growth"] = round(row["outside_seconds"] / smallest["outside_seconds"] / work, 3)
    emit(
        {
            "environment": environment(args.threads, "cpu"),
            "load_average_before": load,
            "load_average_after": [round(v, 2) for v in os.getloadavg()],
            "overrides": args.overrides,
            "table": table,
        }
    )


if __name__ == "__main__":
    run_entry(main)

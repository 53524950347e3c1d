"""The console of a recovery: the plan line, the validation choices, and a progress line fed by the solvers' steps."""

from __future__ import annotations

import io
from types import SimpleNamespace

import torch

from csgm.progress import report_steps
from csgm.recovery.console import ProgressLine, choices_line, plan_line


def _batch(grid: list[int]) -> tuple:
    return torch.zeros(len(grid), 1, 2, 2), torch.arange(len(grid)), torch.tensor(grid)


def test_progress_line_follows_the_solver_steps_and_the_images_done():
    stream, trainer = io.StringIO(), SimpleNamespace(is_global_zero=True)
    line = ProgressLine([25, 100], total=4, stream=stream, interval=0.0)
    line.on_predict_start(trainer, None)
    report_steps(3, 10)  # nobody listens yet: nothing is written
    assert stream.getvalue() == ""
    line.on_predict_batch_start(trainer, None, _batch([0, 0]), 0)
    assert stream.getvalue().split("\r")[-1].startswith("recovered 0/4 | m = 25: starting | 0:00")
    report_steps(5, 10)
    shown = stream.getvalue().split("\r")[-1]
    assert shown.startswith("recovered 0/4 | m = 25: step 5/10 | 0:00") and "left" in shown
    line.on_predict_batch_end(trainer, None, None, _batch([0, 0]), 0)
    assert stream.getvalue().split("\r")[-1].startswith("recovered 2/4 | 0:00")
    report_steps(7, 10)  # between batches nobody listens
    assert "step 7/10" not in stream.getvalue()
    line.on_predict_batch_start(trainer, None, _batch([1, 1]), 1)
    report_steps(1, 4)
    assert stream.getvalue().split("\r")[-1].startswith("recovered 2/4 | m = 100: step 1/4")
    line.on_predict_batch_end(trainer, None, None, _batch([1, 1]), 1)
    line.on_predict_end(trainer, None)
    assert stream.getvalue().endswith("\n") and "recovered 4/4" in stream.getvalue().split("\r")[-1]


def test_other_ranks_show_nothing():
    stream, trainer = io.StringIO(), SimpleNamespace(is_global_zero=False)
    line = ProgressLine([25], total=2, stream=stream, interval=0.0)
    line.on_predict_start(trainer, None)
    line.on_predict_batch_start(trainer, None, _batch([0, 0]), 0)
    report_steps(1, 2)
    line.on_predict_batch_end(trainer, None, None, _batch([0, 0]), 0)
    line.on_predict_end(trainer, None)
    assert stream.getvalue() == ""


def test_plan_and_choices_lines():
    assert plan_line("csgm", "gaussian", "gaussian std 0.1", [25, 100], 100, "test", 200, "out/run") == (
        "csgm: csgm | gaussian | gaussian std 0.1 | m = 25, 100 | 100 test images | 200 (m, image) pairs to solve "
        "-> out/run"
    )
    assert "all done, merging" in plan_line("lasso", "gaussian", "no noise", [25], 5, "test", 0, "r")
    assert choices_line([(25, {"lambda_l1": 0.01}), (100, {"lambda_l1": 0.3})]) == (
        "csgm: chosen on validation images: lambda_l1 = 0.01 (m = 25); lambda_l1 = 0.3 (m = 100)"
    )

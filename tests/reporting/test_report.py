"""Reports: curves with bands, image rows, the report CLI over several runs."""

from __future__ import annotations

import shutil

import pytest
import torch
from PIL import Image

from csgm.errors import CsgmError
from csgm.recovery.run import recover
from csgm.report import main as report_main
from csgm.reporting.experiment_report import read_summaries
from csgm.reporting.plots import MIN_CELL_PIXELS, error_curves_png, plot_error_curves, save_image_rows, wants_log_scale
from csgm.reporting.table import format_summary
from tests.helpers import TINY_RECOVER, compose_config

SUMMARY = [
    {
        "solver": s,
        "operator": "gaussian",
        "noise": "gaussian",
        "m": m,
        "images": 4,
        "mse_mean": v,
        "mse_ci95": v / 10,
        "psnr_mean": 20.0,
        "psnr_ci95": 1.0,
        "ssim_mean": 0.8,
        "ssim_ci95": 0.01,
        "failed": 0,
    }
    for s, pts in (("csgm", [(10, 0.05), (20, 0.03)]), ("lasso", [(10, 0.09), (20, 0.04)]))
    for m, v in pts
]


def test_curve_png_is_written(tmp_path):
    path = plot_error_curves(SUMMARY, tmp_path / "curve.png")
    with Image.open(path) as image:
        assert image.size[0] > 400 and image.size[1] > 300


def test_image_rows_grid_is_labelled_and_readable(tmp_path):
    """Every image at least 56 px wide, a label column left of the rows: wider than the images alone."""
    rows = [torch.zeros(10, 1, 28, 28), torch.ones(10, 1, 28, 28), torch.full((10, 1, 28, 28), 0.5)]
    with Image.open(save_image_rows(rows, tmp_path / "grid.png", ["original", "m = 25", "m = 50"], "csgm")) as image:
        width, height = image.size
    assert width >= 10 * MIN_CELL_PIXELS + 40 and height >= 3 * MIN_CELL_PIXELS
    with Image.open(save_image_rows(rows, tmp_path / "plain.png")) as image:
        assert image.size[0] < width  # the labels take room


def test_log_axis_when_values_span_more_than_two_decades():
    assert wants_log_scale([1e-5, 0.01, 0.1]) and not wants_log_scale([0.01, 0.05, 0.5]) and not wants_log_scale([])
    wide = [{**row, "mse_mean": row["mse_mean"] / 10**i} for i, row in enumerate(SUMMARY)]
    assert error_curves_png(wide) != error_curves_png(wide, log_y=False)
    assert error_curves_png(wide) == error_curves_png(wide, log_y=True)


def test_table_has_one_line_per_point():
    lines = format_summary(SUMMARY).splitlines()
    assert len(lines) == 2 + len(SUMMARY)
    assert "0.05000 ± 0.00500" in lines[2]


def test_report_cli_combines_runs(vae_checkpoint, tmp_path, capsys):
    for solver in ("csgm", "csgm_reg"):
        cfg = compose_config(
            "recover",
            [*TINY_RECOVER, f"checkpoint={vae_checkpoint}", f"solver={solver}", "measurements=[20,40]", "num_images=3"],
        )
        recover(cfg, tmp_path / "sweep" / solver)
    assert report_main([str(tmp_path / "sweep"), "--out", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert out.count("csgm_reg ") == 2 and out.count("csgm ") == 2
    assert (tmp_path / "report" / "error_vs_m_mse.png").is_file()
    assert (tmp_path / "report" / "comparison_m40.png").is_file()
    report = (tmp_path / "report" / "report.md").read_text()
    assert "![error versus m](error_vs_m_mse.png)" in report and "![comparison at m = 40](comparison_m40.png)" in report
    assert sum(line.startswith("| csgm") for line in report.splitlines()) == 4  # 2 solvers x 2 m


def test_report_cli_on_a_missing_folder(tmp_path, capsys):
    assert report_main([str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.fixture(scope="module")
def one_run(vae_checkpoint, tmp_path_factory):
    """A finished recovery run folder (m = 20, 3 images)."""
    root = tmp_path_factory.mktemp("one_run")
    cfg = compose_config(
        "recover", [*TINY_RECOVER, f"checkpoint={vae_checkpoint}", "measurements=[20]", "num_images=3"]
    )
    recover(cfg, root / "run")
    return root / "run"


def _edited(run, tmp_path, name, edit):
    """A copy of the run folder whose ``name`` table went through ``edit`` (text -> text), as by hand."""
    copy = tmp_path / "edited"
    shutil.copytree(run, copy)
    (copy / name).write_text(edit((copy / name).read_text()))
    return copy


@pytest.mark.parametrize(
    "args,message",
    [
        (["--out", "{file}"], "--out '{file}' is a file; give a folder for the report"),
        (["--m", "7"], "m=7 matches no run; the runs have m = [20]"),
        (["--images", "-1"], "--images -1 must be >= 1"),
    ],
)
def test_report_cli_refuses_bad_arguments_in_one_line(one_run, tmp_path, capsys, args, message):
    (tmp_path / "a_file").write_text("")
    args = [a.format(file=tmp_path / "a_file") for a in args]
    assert report_main([str(one_run), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message.format(file=tmp_path / "a_file") in err[0]


@pytest.mark.parametrize(
    "name,edit,message",
    [
        ("summary.csv", lambda t: t.replace("mse_mean", "mse_avg", 1), "has no column mse_mean"),
        ("summary.csv", lambda t: _cell(t, "m", "twenty"), "line 2: m='twenty' is not an integer"),
        ("summary.csv", lambda t: _cell(t, "mse_mean", "low"), "line 2: mse_mean='low' is not a number"),
    ],
)
def test_report_cli_refuses_hand_edited_tables(one_run, tmp_path, capsys, name, edit, message):
    assert report_main([str(_edited(one_run, tmp_path, name, edit)), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and name in err[0]


def _cell(text: str, column: str, value: str) -> str:
    """``text`` (a CSV table) with ``column`` of its first row set to ``value``."""
    header, first, *rest = text.split("\n")
    cells = first.split(",")
    cells[header.split(",").index(column)] = value
    return "\n".join([header, ",".join(cells), *rest])


def test_hand_edited_results_fail_in_one_line(one_run, tmp_path):
    run = _edited(one_run, tmp_path, "results.csv", lambda t: _cell(t, "image_id", "first"))
    with pytest.raises(CsgmError, match=r"results.csv' line 2: image_id='first' is not an integer"):
        read_summaries([(run, {"m": [20], "images": 3})])

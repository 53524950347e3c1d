"""input=file: a user's own measurements. Simulating with the dataset path, saving y (and A), then
recovering from the files gives identical estimates; shapes that do not fit fail in one line."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import scipy.sparse
import torch

from csgm.data import load_splits
from csgm.errors import CsgmError
from csgm.measurement import MeasurementModel
from csgm.operators import Noise, build_operator
from csgm.recovery.file_input import check_matrix
from csgm.recovery.run import recover
from csgm.reporting.table import format_summary
from tests.helpers import TINY_RECOVER, compose_config

IDS = [0, 1, 2]


def config(checkpoint, root, *extra):
    return compose_config(
        "recover", [*TINY_RECOVER, f"checkpoint={checkpoint}", f"paths.output_root={root}", "num_images=3", *extra]
    )


@pytest.fixture(scope="module")
def simulated(vae_checkpoint, tmp_path_factory):
    """The dataset path's estimates at m = 20, and y and A saved as files the way a user would."""
    root = tmp_path_factory.mktemp("simulated")
    recover(config(vae_checkpoint, root, "measurements=[20]"), root / "run")
    merged = torch.load(root / "run" / "reconstructions.pt", weights_only=True)
    test = load_splits({"name": "mnist10k"})["test"]
    x = torch.stack([test[i][0] for i in IDS])
    operator = build_operator({"name": "gaussian"}, (1, 28, 28), seed=0, m=20)
    y = MeasurementModel(operator, Noise("gaussian", 0.1), seed=0).measure(x, IDS)
    np.save(root / "y.npy", y.numpy())
    torch.save(operator.matrix.clone(), root / "A.pt")
    return {"root": root, "x_hat": merged["x_hat"], "y": y, "A": operator.matrix}


@pytest.mark.parametrize("with_matrix", [True, False])
def test_recovering_from_files_round_trips(vae_checkpoint, simulated, tmp_path, with_matrix):
    root = simulated["root"]
    extra = [f"file.matrix={root / 'A.pt'}"] if with_matrix else ["measurements=[20]"]
    result = recover(
        config(vae_checkpoint, tmp_path, "input=file", f"file.y={root / 'y.npy'}", *extra), tmp_path / "run"
    )
    estimates = np.load(tmp_path / "run" / "x_hat.npy")
    assert torch.equal(torch.from_numpy(estimates), simulated["x_hat"])
    assert sorted(p.name for p in (tmp_path / "run" / "images").iterdir()) == [f"x_hat_{i:05d}.png" for i in IDS]
    with open(tmp_path / "run" / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["mse"] for r in rows] == [""] * 3 and all(float(r["measurement_loss"]) > 0 for r in rows)
    assert [r["status"] for r in rows] == ["ok"] * 3
    (entry,) = result["summary"]
    assert entry["failed"] == 0 and entry["mse_mean"] != entry["mse_mean"]
    assert "no ground truth" in format_summary(result["summary"])
    assert not (tmp_path / "run" / "error_vs_m.png").exists() and (tmp_path / "run" / "grid.png").is_file()


def test_new_file_content_is_a_new_run_folder(vae_checkpoint, simulated, tmp_path):
    path = tmp_path / "y.npy"
    np.save(path, simulated["y"].numpy())
    folder = lambda: config(vae_checkpoint, tmp_path, "input=file", f"file.y={path}", "measurements=[20]").run_name  # noqa: E731
    before = folder()
    np.save(path, simulated["y"].numpy() + 1.0)
    assert folder() != before


@pytest.mark.parametrize(
    "y_rows,matrix,extra,message",
    [
        (slice(None), "wide", [], "file.y has shape (3, 20) (20 numbers per image) but file.matrix has 21 rows"),
        (slice(None), "narrow", [], "the matrix has shape (20, 700) but the images are 1x28x28 (n = 784)"),
        (slice(0, 2), None, ["measurements=[20]"], "num_images=3 but file.y has 2 rows"),
        (
            slice(None),
            None,
            ["measurements=[25]"],
            "file.y has shape (3, 20) (20 numbers per image) but operator 'gaussian' with m=25",
        ),
        (slice(None), None, [], "input=file measures each image once: give the m of your measurements as one value"),
    ],
)
def test_shapes_that_do_not_fit_fail_in_one_line(vae_checkpoint, simulated, tmp_path, y_rows, matrix, extra, message):
    np.save(tmp_path / "y.npy", simulated["y"][y_rows].numpy())
    if matrix == "wide":
        np.save(tmp_path / "A.npy", torch.cat([simulated["A"], simulated["A"][:1]]).numpy())
    elif matrix == "narrow":
        np.save(tmp_path / "A.npy", simulated["A"][:, :700].numpy())
    files = [f"file.y={tmp_path / 'y.npy'}", *([f"file.matrix={tmp_path / 'A.npy'}"] if matrix else [])]
    with pytest.raises(CsgmError) as info:
        recover(config(vae_checkpoint, tmp_path, "input=file", *files, *extra), tmp_path / "run")
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "file.y is required with input=file"),
        ("missing", "does not exist"),
        (np.zeros((2, 3, 4)), "has shape (2, 3, 4); it must be a 2-D real array"),
        (np.full((3, 20), np.nan), "holds NaN or infinite values"),
        (np.ones((3, 20), dtype=complex), "holds complex numbers (complex128)"),
        (np.ones((3, 20), dtype=np.int32), "holds integers (int32)"),
        (np.ones((3, 20), dtype=bool), "holds booleans (bool)"),
        (np.array([[1.0, "a"]], dtype=object), "holds an object array (Python objects)"),
        (np.full((3, 20), "x"), "holds <U1 values, not numbers"),
        (np.full((3, 20), 1e39), "holds values up to 1e+39, beyond float32"),
        ("sparse", "is a scipy sparse matrix (scipy.sparse.save_npz); save it dense"),
        ("torch_sparse", "is a sparse tensor; save it dense"),
        ("folder", "is a folder; give the path of a .npy/.npz/.pt file inside it"),
    ],
)
def test_bad_measurement_files(vae_checkpoint, tmp_path, content, message):
    extra = []
    if isinstance(content, np.ndarray):
        np.save(tmp_path / "y.npy", content)
        extra = [f"file.y={tmp_path / 'y.npy'}"]
    elif content == "missing":
        extra = [f"file.y={tmp_path / 'nope.npy'}"]
    elif content == "sparse":
        scipy.sparse.save_npz(tmp_path / "y.npz", scipy.sparse.csr_matrix(np.eye(3, 20)))
        extra = [f"file.y={tmp_path / 'y.npz'}"]
    elif content == "torch_sparse":
        torch.save(torch.eye(3, 20).to_sparse(), tmp_path / "y.pt")
        extra = [f"file.y={tmp_path / 'y.pt'}"]
    elif content == "folder":
        extra = [f"file.y={tmp_path}"]
    with pytest.raises(CsgmError) as info:
        recover(config(vae_checkpoint, tmp_path, "input=file", "measurements=[20]", *extra), tmp_path / "run")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "operator,y,message",
    [
        (["operator=phase_retrieval", "noise=none"], -np.ones((3, 20)), "file.y holds 60 negative values"),
        (["operator=one_bit"], np.zeros((3, 20)), "the levels -1, 1"),
        (["operator=quantize"], np.full((3, 20), 0.3), "cannot record (first: 0.3 at row 0)"),
    ],
)
def test_measurements_the_operator_and_noise_cannot_give(vae_checkpoint, tmp_path, operator, y, message):
    np.save(tmp_path / "y.npy", y)
    cfg = config(vae_checkpoint, tmp_path, "input=file", f"file.y={tmp_path / 'y.npy'}", "measurements=[20]", *operator)
    with pytest.raises(CsgmError, match=message.replace("(", r"\(").replace(")", r"\)")):
        recover(cfg, tmp_path / "run")


def test_poisson_values_must_be_counts(vae_checkpoint, tmp_path):
    np.save(tmp_path / "y.npy", np.full((3, 784), 0.015))  # 1.5 photons at noise.scale=100
    cfg = config(
        vae_checkpoint, tmp_path, "input=file", f"file.y={tmp_path / 'y.npy'}", "operator=identity", "noise=poisson"
    )
    with pytest.raises(CsgmError, match=r"2352 values whose y \* noise.scale \(100\) are not photon counts"):
        recover(cfg, tmp_path / "run")


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda a: a * 0, "file.matrix is all zeros"),
        (lambda a: a.index_fill(0, torch.tensor([3, 7]), 0.0), "file.matrix has 2 rows of zeros (rows 3, 7)"),
        (lambda a: a[:2].repeat(10, 1), "file.matrix has rank 2, far below min(m, n) = 20"),
    ],
)
def test_degenerate_matrices_are_refused(vae_checkpoint, simulated, tmp_path, edit, message):
    np.save(tmp_path / "A.npy", edit(simulated["A"].double()).numpy())
    cfg = config(
        vae_checkpoint,
        tmp_path,
        "input=file",
        f"file.y={simulated['root'] / 'y.npy'}",
        f"file.matrix={tmp_path / 'A.npy'}",
    )
    with pytest.raises(CsgmError) as info:
        recover(cfg, tmp_path / "run")
    assert message in str(info.value)


def test_a_few_duplicate_rows_are_a_warning(simulated, capsys):
    matrix = simulated["A"].double().clone()
    matrix[5] = matrix[4]
    check_matrix(matrix)
    assert capsys.readouterr().err.splitlines() == [
        "csgm: warning: file.matrix has 1 duplicate row(s), which measure the same thing twice; remove them from "
        "the matrix and the same columns from file.y if that was not intended"
    ]

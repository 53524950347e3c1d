"""The top-level schemas of the entry points' configurations and their cross-key rules; no component here.

The top-level keys of ``conf/recover.yaml``, ``conf/train.yaml`` and ``conf/evaluate.yaml`` have typed
schemas (dataclasses below, with ranges in the field metadata). Group entries (operator, noise, solver, ...)
are checked by their ``csgm.components.Group`` (csgm.checks runs both). An unknown key or a value of the
wrong type fails in one line that names the key, the value and what is expected.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

from csgm.errors import CsgmError, check_range
from csgm.options import check_keys, check_value
from csgm.precision import canonical_precision

__all__ = [
    "RecoverConfig",
    "TrainConfig",
    "EvaluateConfig",
    "validate_recover_config",
    "validate_train_config",
    "validate_evaluate_config",
    "check_recover_schema",
    "check_recover_rules",
    "check_train_schema",
    "check_train_rules",
    "MAX_SEED",
]

MAX_SEED = 2**32 - 1  # numpy's and Lightning's seed range


def _bounded(default: Any, low: float | None = None, high: float | None = None) -> Any:
    return field(default=default, metadata={"low": low, "high": high})


@dataclass
class Paths:
    output_root: str = "outputs"


@dataclass
class Tuning:
    num_images: int = _bounded(20, 0)
    halving_every: int = _bounded(100, 0)


@dataclass
class FileInput:
    y: Optional[str] = None  # input=file: your measurements, one row per image (.npy, .npz or .pt)
    matrix: Optional[str] = None  # optional dense A (rows = length of y, columns = C*H*W); else the operator config


@dataclass
class Quick:
    """``debug=quick``: a smoke test of any run or sweep (recover.py: images, m values, every solver's work;
    train.py: epochs and batches)."""

    images: int = _bounded(4, 1)  # at most this many test (and validation) images
    m_values: int = _bounded(2, 1)  # at most this many m values, spread over the grid
    work: float = _bounded(0.05, 0, 1)  # every solver's iterations, restarts, steps, draws ... times this
    epochs: int = _bounded(1, 1)  # train.py: at most this many epochs
    batches: int = _bounded(10, 1)  # train.py: at most this many batches per epoch and split


@dataclass
class RecoverConfig:
    """Top-level keys of recover.py (groups are checked against the objects they build)."""

    dataset: dict
    operator: dict
    noise: dict
    solver: dict
    trainer: dict
    logger: dict
    generator: Optional[dict] = None  # read from the checkpoint; experiments shared with train.py set it
    checkpoint: Optional[str] = "latest"
    input: Literal["test", "val", "gen_span", "file"] = "test"
    file: FileInput = field(default_factory=FileInput)
    num_images: int = _bounded(100, 1)
    batch_size: int = _bounded(100, 1)
    num_workers: int = _bounded(0, 0)
    measurements: Union[list[Union[int, float]], int, float, None] = None
    seed: int = _bounded(0, 0, MAX_SEED)
    save_images: int = _bounded(10, 0)
    tuning: Tuning = field(default_factory=Tuning)
    paths: Paths = field(default_factory=Paths)
    matmul_precision: Literal["highest", "high", "medium"] = "highest"
    report_name: Optional[str] = None
    report_x: Literal["m", "noise_std"] = "m"
    sweep: dict = field(default_factory=dict)
    run_name: str = ""
    quick: Optional[Quick] = None  # debug=quick


@dataclass
class RangeErrorLogging:
    every: int = _bounded(10, 0)
    images: int = _bounded(16, 1)
    steps: int = _bounded(50, 1)


@dataclass
class TrainConfig:
    """Top-level keys of train.py."""

    dataset: dict
    generator: dict
    trainer: dict
    logger: dict
    operator: Optional[dict] = None  # used by recover.py; experiments shared with it set them
    noise: Optional[dict] = None
    solver: Optional[dict] = None
    seed: int = _bounded(0, 0, MAX_SEED)
    batch_size: int = _bounded(100, 1)
    num_workers: int = _bounded(0, 0)
    num_samples: int = _bounded(64, 1)
    range_error: RangeErrorLogging = field(default_factory=RangeErrorLogging)
    checkpoint_every: int = _bounded(0, 0)
    resume: Optional[str] = None  # a run folder (or its checkpoints/last.ckpt) to continue
    paths: Paths = field(default_factory=Paths)
    # keys of recover.py that experiments shared by both entry points set; train.py ignores them
    checkpoint: Optional[str] = None
    input: Optional[str] = None
    num_images: Optional[int] = None
    measurements: Any = None
    report_name: Optional[str] = None
    report_x: Optional[str] = None
    sweep: Optional[dict] = None
    quick: Optional[Quick] = None  # debug=quick


@dataclass
class EvaluateConfig:
    """The top-level keys of ``python -m csgm.evaluate``."""

    dataset: dict
    checkpoint: Optional[str] = "latest"
    num_images: int = _bounded(100, 1)
    restarts: int = _bounded(5, 1)
    iterations: int = _bounded(500, 1)
    lr: float = _bounded(0.01, 0)
    lipschitz_samples: int = _bounded(100, 1)
    power_iterations: int = _bounded(20, 1)
    pairs: int = _bounded(1000, 1)
    seed: int = _bounded(0, 0, MAX_SEED)
    paths: Paths = field(default_factory=Paths)


def _check_schema(schema: type, cfg: dict, prefix: str = "") -> None:
    """Unknown keys, types and ranges of ``cfg`` against the dataclass ``schema`` (nested ones recurse)."""
    if not isinstance(cfg, dict):
        raise CsgmError(f"{prefix.rstrip('.') or 'config'}={cfg!r} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    check_keys(prefix, cfg, fields)
    for name, spec in fields.items():
        if name not in cfg:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise CsgmError(f"{prefix}{name} is missing; add it to the config")
            continue
        value, hint = cfg[name], _optional_schema(hints[name], cfg[name])
        if dataclasses.is_dataclass(hint):
            _check_schema(hint, value, f"{prefix}{name}.")
            continue
        check_value(f"{prefix}{name}", value, hint)
        if spec.metadata and isinstance(value, (int, float)):
            check_range(f"{prefix}{name}", value, spec.metadata["low"], spec.metadata["high"])


def _optional_schema(hint: Any, value: Any) -> Any:
    """The dataclass of an ``Optional[schema]`` field that holds a value (else the hint as it is)."""
    members = typing.get_args(hint) if typing.get_origin(hint) is Union else ()
    schemas = [m for m in members if dataclasses.is_dataclass(m)]
    return schemas[0] if schemas and value is not None else hint


def check_recover_schema(cfg: dict) -> None:
    """The top-level keys of a resolved recover.py config (one-line CsgmError)."""
    _check_schema(RecoverConfig, cfg)


def check_recover_rules(cfg: dict) -> None:
    """The cross-key rules of a recover.py config whose groups are checked: the solver's arithmetic (csgm.precision)."""
    canonical_precision(cfg["trainer"].get("precision", "32-true"))


def validate_recover_config(cfg: dict) -> None:
    """The top-level keys of a resolved recover.py config and its cross-key rules (one-line CsgmError)."""
    check_recover_schema(cfg)
    check_recover_rules(cfg)


def validate_evaluate_config(cfg: dict) -> None:
    """The top-level keys of a resolved csgm.evaluate config (one-line CsgmError)."""
    _check_schema(EvaluateConfig, cfg)


def check_train_schema(cfg: dict) -> None:
    """The top-level keys of a resolved train.py config (one-line CsgmError)."""
    _check_schema(TrainConfig, cfg)


def check_train_rules(cfg: dict) -> None:
    """The cross-key rules of a train.py config whose groups are checked: the training must take a step and end."""
    _check_training_length(cfg["trainer"])


def validate_train_config(cfg: dict) -> None:
    """The top-level keys of a resolved train.py config and its cross-key rules (one-line CsgmError)."""
    check_train_schema(cfg)
    check_train_rules(cfg)


def _check_training_length(trainer: dict) -> None:
    """A training run must take at least one step and must end."""
    epochs, steps = trainer.get("max_epochs"), trainer.get("max_steps", -1)
    if epochs is not None and (epochs == 0 or epochs < -1):
        raise CsgmError(
            f"trainer.max_epochs={epochs} trains nothing; set it to a number >= 1 "
            "(or -1 together with trainer.max_steps >= 1)"
        )
    if steps is not None and (steps == 0 or steps < -1):
        raise CsgmError(f"trainer.max_steps={steps} trains nothing; set it to a number >= 1, or -1 for no step limit")
    if epochs == -1 and (steps is None or steps == -1):
        raise CsgmError("trainer.max_epochs=-1 with trainer.max_steps=-1 never stops; set one of them to a number >= 1")
    limit = trainer.get("limit_train_batches")
    if limit is not None and not limit > 0:
        raise CsgmError(
            f"trainer.limit_train_batches={limit} trains nothing; set it > 0 (a count, or a fraction in (0, 1])"
        )

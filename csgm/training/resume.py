"""Continue a training run: ``python train.py resume=RUN_FOLDER`` (or ``resume=RUN_FOLDER/checkpoints/last.ckpt``).

The resumed run writes into the same folder, appends to the same metrics and W&B run, and uses the run's own
settings: the overrides it was started with are applied again under the ones given now (``hydra.compose``), and
any resulting setting that differs from the run's, other than how long to train and what to log
(``RESUME_MAY_CHANGE``), is refused in one line.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any


from csgm.errors import CsgmError
from csgm.files import atomic_write_bytes
from csgm.generators.checkpoint import check_weights, read_checkpoint
from csgm.run_folders import resume_checkpoint
from csgm.training.checkpointing import RUN_KEY

__all__ = [
    "RESUME_MAY_CHANGE",
    "check_same_settings",
    "compose_resumed",
    "read_run_record",
    "resumed_overrides",
    "trim_metrics",
]

RESUME_MAY_CHANGE = (
    "resume",
    "paths.",
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.enable_progress_bar",
    "trainer.log_every_n_steps",
    "trainer.enable_model_summary",
    "checkpoint_every",
    "range_error.",
)


def read_run_record(path: Path) -> dict[str, Any]:
    """The run record of a training checkpoint (config, overrides, progress, logger run id), after checking that
    its weights are finite; one line if it is unreadable, has no record or diverged."""
    checkpoint = read_checkpoint(path)
    record = checkpoint.get(RUN_KEY) if isinstance(checkpoint, dict) else None
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise CsgmError(
            f"checkpoint {str(path)!r}: it has no {RUN_KEY!r} entry (written by an older train.py or "
            "by another program), so the run cannot be resumed; start a new run"
        )
    check_weights(path, checkpoint.get("state_dict", {}))
    return record


def compose_resumed(cfg: Any) -> tuple[Any, list[str]]:
    """Inside ``@hydra.main``: the config and overrides of this job. With ``resume=``, the run's own overrides come
    first and the ones given now after them (recomposed with ``hydra.compose``)."""
    from hydra import compose
    from hydra.core.hydra_config import HydraConfig

    given = list(HydraConfig.get().overrides.task)
    if not cfg.get("resume"):
        return cfg, given
    record = read_run_record(resume_checkpoint(cfg.resume))
    overrides = resumed_overrides(record["overrides"], given)
    resume = [o for o in given if _override_key(o) == "resume"]
    return compose(HydraConfig.get().job.config_name, overrides=[*overrides, *resume]), overrides


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def resumed_overrides(saved: list[str], given: list[str]) -> list[str]:
    """The run's own overrides, then the ones given now (minus ``resume``); a key given now replaces the run's."""
    now = [o for o in given if _override_key(o) != "resume"]
    keys = {_override_key(o) for o in now}
    return [o for o in saved if _override_key(o) not in keys] + now


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): value}


def check_same_settings(cfg: dict, saved: dict, resume: str) -> None:
    """Refuse a resumed config that differs from the run's in a setting that changes the weights."""
    now, before = _flatten(cfg), _flatten(saved)
    for key in sorted(set(now) | set(before), key=lambda k: (k.count("."), k)):  # generator.name before its options
        if key.startswith(RESUME_MAY_CHANGE) or now.get(key) == before.get(key):
            continue
        raise CsgmError(
            f"resume={resume}: {key}={now.get(key)!r} differs from the run's {key}={before.get(key)!r}; "
            f"a resumed run keeps its settings (only {', '.join(k.rstrip('.') for k in RESUME_MAY_CHANGE[2:])}"
            " may change): drop the override, or start a new run"
        )


def trim_metrics(metrics: Path, epoch: int, step: int | None) -> None:
    """Drop the rows of metrics.csv logged after the checkpoint (work the resumed run does again): rows of later
    epochs, for a checkpoint written mid-epoch rows of its epoch after its ``step``, and the test rows of a run
    that had ended (the resumed run tests its own end point)."""
    if not metrics.is_file():
        return
    with open(metrics, newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames or [], list(reader)

    def later(row: dict) -> bool:
        row_epoch, row_step = int(float(row.get("epoch") or -1)), int(float(row.get("step") or -1))
        tested = any(key.startswith("test/") and value for key, value in row.items())
        return tested or row_epoch > epoch or (step is not None and row_epoch == epoch and row_step > step)

    kept = [row for row in rows if not later(row)]
    if len(kept) == len(rows):
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(kept)
    atomic_write_bytes(metrics, buffer.getvalue().encode())

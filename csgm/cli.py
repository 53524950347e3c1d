"""Shared parts of the entry points: one-line errors, failed-job accounting in sweeps, run folders.

Failure classes a user can cause (bad configuration, unreadable or unwritable files, a full disk) end
in one line on stderr and exit status 2, wherever they arise: in Hydra's composition, in Hydra's own
output folder, in our code, in a DataLoader worker or in a spawned DDP worker. In a multirun, a failed
job prints its line and the sweep goes on; the sweep ends by listing every failed job (exit status 2).
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import re
import shutil
import sys
import tempfile
import traceback
import warnings
from importlib.resources import files
from pathlib import Path
from typing import Any, Callable, Sequence

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from csgm.errors import CsgmError

__all__ = [
    "config_path",
    "plain",
    "report_errors",
    "run_entry",
    "user_error_line",
    "hydra_run_dir",
    "quiet_third_party",
    "route_lightning_logs",
    "FailedJobs",
]

_LEDGER_ENV = "CSGM_FAILED_JOBS_DIR"
_HYDRA_OWN_FILES = {".hydra", ".lock", "identity.json"}  # what a run folder holds before any work


class _DropAdverts(logging.Filter):
    """Lightning's product adverts ("💡 Tip: ... litmodels", litlogger) say nothing about the run."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "litlogger" not in message and "💡 Tip" not in message


def quiet_third_party() -> None:
    """Hide third-party noise that says nothing about the run (adverts, internal deprecations)."""
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated")  # torch's own forward-mode AD
    warnings.filterwarnings("ignore", message=r".*no `validation_step`.*")  # GAN training has no validation loss
    warnings.filterwarnings("ignore", message=r"\s*Running Hydra app with --multirun")  # experiments set the mode
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_DropAdverts())


def route_lightning_logs() -> None:
    """Send Lightning's log records to the logging the job set up (Hydra's: stdout and the job's .log file).
    Lightning gives its loggers a stderr handler of their own when it is imported before logging is set up
    (by a plugin, or by the Python API in the same process), which would put its info lines on stderr."""
    if not logging.getLogger().hasHandlers():
        return
    for name in ("pytorch_lightning", "lightning_fabric"):
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if type(h) is logging.StreamHandler]:
            logger.removeHandler(handler)
        logger.propagate = True


def plain(cfg: DictConfig | dict | None) -> Any:
    """Resolve an OmegaConf node into plain Python containers (a missing mandatory value ``???`` raises)."""
    if cfg is None or isinstance(cfg, (dict, list)):
        return cfg
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def _os_error_line(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else "a file"
    reason = exc.strerror or type(exc).__name__
    disk = "free disk space or set paths.output_root to another disk"
    writable = "make it writable or set paths.output_root to a writable folder"
    fixes = {
        errno.ENOSPC: disk,
        errno.EDQUOT: disk,
        errno.EACCES: writable,
        errno.EPERM: writable,
        errno.EROFS: "set paths.output_root to a writable folder",
    }
    fix = fixes.get(exc.errno or 0, "check the path")
    return f"cannot use {str(where)!r}: {reason}; {fix}"


def _condense(text: str) -> str:
    """Hydra's multi-line messages as one line: the lines of a list after 'Title:' joined by commas, the
    search-path dump left out."""
    parts: list[str] = []
    listing = False
    for line in (line.strip() for line in str(text).splitlines()):
        if line.startswith("Config search path"):
            break
        if not line:
            continue
        if listing and not line.endswith(":"):
            parts[-1] += (" " if parts[-1].endswith(":") else ", ") + line
        else:
            parts.append(line)
            listing = line.endswith(":")
    return " ".join([p if p.endswith((".", ";", ":")) else p + ";" for p in parts[:-1]] + parts[-1:])


def _override_grammar_line(exc: Any) -> str:
    """Hydra's grammar error for one override, with the fix for a path value: quote it (a value holding ``~``,
    ``=``, spaces or non-ASCII letters is not a plain word of Hydra's override grammar)."""
    key, _, value = str(exc.override).partition("=")
    reason = _condense(str(exc.message)).split("; See https://")[0]
    if value.startswith(("[", "{")):
        hint = f"write a list as {key}=[a,b] and a mapping as {key}={{k:v}}, inside shell quotes"
    elif value:
        hint = f"quote the value for Hydra, inside shell quotes: '{key}=\"{value}\"'"
    else:
        hint = "see https://hydra.cc/docs/advanced/override_grammar/basic"
    return f"cannot read the override {exc.override!r} ({reason}); {hint}"


_NOT_IN_STRUCT = re.compile(r"Could not override '(\w+)\.([\w.]+)'")


def _option_config(folder: Any, group: str, option: str) -> DictConfig:
    """A group option's config file with the same group's options it lists as defaults merged under it."""
    node = OmegaConf.create((folder / group / f"{option}.yaml").read_text())
    parents = [entry for entry in node.pop("defaults", []) if isinstance(entry, str) and entry != "_self_"]
    return OmegaConf.merge(*(_option_config(folder, group, parent) for parent in parents), node)


def _swept_options(folder: Any, group: str, argv: Sequence[str]) -> list[str]:
    """The options of ``group`` a sweep lists: on the command line (``group=a,b,c``) or in the ``sweep`` of the
    experiment it names (``experiment=NAME``)."""
    lists = [arg.split("=", 1)[1] for arg in argv if arg.startswith(f"{group}=") and "," in arg]
    for experiment in (arg.split("=", 1)[1] for arg in argv if arg.startswith("experiment=")):
        try:
            sweep = OmegaConf.create((folder / "experiment" / f"{experiment}.yaml").read_text()).get("sweep") or {}
        except (OSError, OmegaConfBaseException):
            continue
        if sweep.get(group):
            lists.append(str(sweep[group]))
    return [option.strip() for listed in lists for option in listed.split(",")]


def _sweep_jobs_without(group: str, key: str, argv: Sequence[str]) -> list[str]:
    """The options of ``group`` that a sweep lists (``_swept_options``) and whose configs lack ``key``."""
    root = config_path()
    folder = files("csgm.conf") if root.startswith("pkg://") else Path(root)
    lacking = []
    for option in _swept_options(folder, group, argv):
        try:
            node = _option_config(folder, group, option)
        except (OSError, OmegaConfBaseException):
            continue  # not a config file of the group: Hydra's own message stands
        if OmegaConf.select(node, key, default=None) is None:
            lacking.append(option)
    return lacking


def _composition_line(exc: BaseException, argv: Sequence[str]) -> str | None:
    """A multirun override that some jobs' configs cannot take: Hydra checks every job before starting any, so
    name those jobs and the fix (None when the sweep is not the cause)."""
    match = _NOT_IN_STRUCT.search(str(exc))
    if not match:
        return None
    group, key = match.groups()
    lacking = _sweep_jobs_without(group, key, argv)
    if not lacking:
        return None
    jobs = ", ".join(f"{group}={option}" for option in lacking)
    return (
        f"the sweep's job(s) {jobs} have no option {group}.{key}, so no job was started; give {group}.{key} only to "
        f"the {group}s that take it (a separate sweep), or shrink every {group} of a sweep with debug=quick"
    )


def user_error_line(exc: BaseException) -> str | None:
    """The one line for a failure the user can fix, or None for a bug (which keeps its traceback)."""
    from hydra.errors import HydraException, OverrideParseException
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    if isinstance(exc, MissingMandatoryValue) and getattr(exc, "full_key", None):
        return f"{exc.full_key} is required (it is ??? in the config); set {exc.full_key}=VALUE"
    if isinstance(exc, CsgmError):
        return str(exc).strip().splitlines()[-1]  # a DataLoader worker prepends its own lines
    if isinstance(exc, OmegaConfBaseException):  # a CsgmError raised by a resolver, under OmegaConf's wrappers
        inner: BaseException | None = exc
        while isinstance(inner, OmegaConfBaseException):
            inner = inner.__cause__ or inner.__context__
        if isinstance(inner, CsgmError):
            return user_error_line(inner)
    if isinstance(exc, OSError) and exc.errno is not None:
        return _os_error_line(exc)
    if isinstance(exc, OverrideParseException):
        return _override_grammar_line(exc)
    if isinstance(exc, HydraException) and (line := _composition_line(exc, sys.argv[1:])):
        return line
    if isinstance(exc, (HydraException, OmegaConfBaseException)):
        cause = exc.__cause__
        text = _condense(str(exc))
        if isinstance(cause, OmegaConfBaseException) and str(cause).strip():
            text += " (" + _condense(str(cause).split("\n")[0]) + ")"
        return text
    if type(exc).__name__ == "ProcessRaisedException":  # torch.multiprocessing: a DDP worker's traceback as text
        last = str(exc).strip().splitlines()[-1]
        match = re.match(r"^(?:[\w.]+\.)?(CsgmError|\w*Error): (.*)$", last)
        if match and (match.group(1) == "CsgmError" or "[Errno" in match.group(2)):
            return match.group(2)
    return None


def _remove_if_empty(run_dir: Path) -> None:
    """Remove a run folder that holds nothing but Hydra's own files (a job that failed before any work)."""
    if run_dir.is_dir() and all(p.name in _HYDRA_OWN_FILES or p.suffix == ".log" for p in run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)


def report_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a Hydra task function: a failed job leaves no empty run folder behind; in a multirun it
    prints its reason, is recorded for the end of the sweep, and the other jobs still run."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        route_lightning_logs()
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            from hydra.core.hydra_config import HydraConfig
            from hydra.types import RunMode

            hydra = HydraConfig.get()
            _remove_if_empty(Path(hydra.runtime.output_dir))
            ledger = os.environ.get(_LEDGER_ENV)
            line = user_error_line(exc)
            if hydra.mode != RunMode.MULTIRUN or not ledger:
                if line is None:
                    raise
                print(f"csgm: error: {line}", file=sys.stderr, flush=True)
                sys.exit(2)  # SystemExit passes Hydra's job runner without its own "Error executing job" line
            if line is None:
                traceback.print_exc()
                line = f"{type(exc).__name__}: {exc}".splitlines()[0]
            job = f"job {hydra.job.num} ({' '.join(hydra.overrides.task)})"
            print(f"csgm: error: {job}: {line}", file=sys.stderr, flush=True)
            Path(ledger, f"{int(hydra.job.num):06d}.txt").write_text(f"{job}: {line}\n")
            return None

    return wrapper


class FailedJobs(Callback):
    """Hydra callback: collects the failed jobs of a multirun and lists them at its end (exit status 2)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ[_LEDGER_ENV] = tempfile.mkdtemp(prefix="csgm-failed-jobs-")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        ledger = os.environ.pop(_LEDGER_ENV, None)
        if not ledger:
            return
        lines = [p.read_text().strip() for p in sorted(Path(ledger).glob("*.txt"))]
        shutil.rmtree(ledger, ignore_errors=True)
        if lines:
            print(f"csgm: error: {len(lines)} job(s) of the sweep failed:", file=sys.stderr)
            for line in lines:
                print(f"  {line}", file=sys.stderr)
            sys.stderr.flush()
            sys.exit(2)


def run_entry(main: Callable[[], Any]) -> None:
    """Run a ``@hydra.main`` function as a command: user-fixable failures become one line and exit 2."""
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let exceptions reach us instead of Hydra's own traceback printer
    quiet_third_party()
    try:
        main()
    except Exception as exc:
        line = user_error_line(exc)
        if line is None:
            raise
        print(f"csgm: error: {line}", file=sys.stderr, flush=True)
        sys.exit(2)


def config_path() -> str:
    """Where Hydra finds the configs: the repository's ``conf/`` beside the package when it runs from a clone
    (editable or not installed), else the configs shipped inside the installed package (``pkg://csgm.conf``)."""
    source = Path(__file__).resolve().parents[1] / "conf"
    return str(source) if (source / "recover.yaml").is_file() else "pkg://csgm.conf"


def hydra_run_dir() -> Path:
    """The output folder Hydra made for this job."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)

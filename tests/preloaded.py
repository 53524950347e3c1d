"""Run the entry-point scripts as the tests' subprocesses, minus the seconds of importing torch and Lightning.

A *preloaded Python* is a ``python -m tests.preloaded`` process that imports the heavy modules once and then,
for each request, forks a child that runs ``python SCRIPT ARGS...`` as a fresh interpreter would: its own argv,
working folder, environment (plus what the imports set in it), fresh random entropy, stdin from /dev/null,
stdout and stderr to files (with whatever the imports themselves printed in front) and its exit status. It shuts
down as Python does (threading's exit hooks and joins, garbage collection, atexit, flushed output) except for the
module teardown, which takes seconds with torch loaded. The server holds no threads when it forks (checked), so
the child inherits no held lock. test_quiet.py, test_packaging.py and test_readme.py still run fresh
interpreters, shutdown included.

Import-time environment variables (``OMP_NUM_THREADS`` and the like) are read once, when a server starts, so
the client keeps one pool of servers per environment (pytest's per-test PYTEST_CURRENT_TEST aside): a request
whose environment differs gets servers started with it.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRELOAD = (
    "torch",
    "pytorch_lightning",
    "hydra",
    "csgm.commands",
    "csgm.components",
    "csgm.recovery.run",
    "csgm.training.run",
    "csgm.evaluation.run",
    "csgm.reporting.artifacts",
)


class _Server:
    """One preloaded Python, serving one request at a time over its stdin/stdout."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.preloaded"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, request: dict) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        reply = self.process.stdout.readline()
        if not reply:
            raise RuntimeError(f"the preloaded Python stopped (exit {self.process.wait()})")
        return json.loads(reply)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


_idle: dict[tuple, list[_Server]] = {}
_lock = threading.Lock()


def run_python(
    script: str, args: list[str], *, cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess:
    """``subprocess.run([python, script, *args], cwd=cwd, env=env, capture_output=True, text=True,
    timeout=timeout)``, served by a preloaded Python; raises ``subprocess.TimeoutExpired`` as that would."""
    key = tuple(sorted((k, v) for k, v in env.items() if k != "PYTEST_CURRENT_TEST"))  # pytest's per-test name
    with _lock:
        pool = _idle.setdefault(key, [])
        server = pool.pop() if pool else None
    server = server or _Server(env)
    with tempfile.TemporaryDirectory() as folder:
        out, err = Path(folder, "stdout"), Path(folder, "stderr")
        request = {"script": script, "args": args, "cwd": str(cwd), "env": env, "timeout": timeout}
        reply = server.run({**request, "stdout": str(out), "stderr": str(err)})
        stdout, stderr = out.read_text(errors="replace"), err.read_text(errors="replace")
    with _lock:
        _idle[key].append(server)
    command = [sys.executable, script, *args]
    if reply["timed_out"]:
        raise subprocess.TimeoutExpired(command, timeout, stdout, stderr)
    return subprocess.CompletedProcess(command, reply["returncode"], stdout, stderr)


@atexit.register
def _close_servers() -> None:
    for pool in _idle.values():
        for server in pool:
            server.close()


def _serve() -> None:
    """The server: import, then fork one child per request line; reply with its exit status."""
    import importlib
    import select
    import signal

    environment_before = dict(os.environ)
    imported_output = []
    for fd in (1, 2):  # what importing prints belongs to every child's output, as it would in a fresh process
        saved, capture = os.dup(fd), tempfile.TemporaryFile()
        os.dup2(capture.fileno(), fd)
        imported_output.append((saved, capture))
    for name in PRELOAD:
        importlib.import_module(name)
    sys.stdout.flush()
    sys.stderr.flush()
    printed = []
    for fd, (saved, capture) in zip((1, 2), imported_output):
        os.dup2(saved, fd)
        os.close(saved)
        capture.seek(0)
        printed.append(capture.read())
    environment_set = {k: v for k, v in os.environ.items() if environment_before.get(k) != v}
    protocol_in, protocol_out = sys.stdin, os.fdopen(os.dup(1), "w")
    for line in protocol_in:
        request = json.loads(line)
        if threading.active_count() != 1 or len(os.listdir("/proc/self/task")) != 1:
            raise RuntimeError("the preloaded Python holds threads; forking it is unsafe")
        pid = os.fork()
        if pid == 0:
            _child(request, printed, environment_set)  # ends the process
        handle = os.pidfd_open(pid)
        finished = select.select([handle], [], [], request["timeout"])[0]
        if not finished:
            os.kill(pid, signal.SIGKILL)
        status = os.waitpid(pid, 0)[1]
        os.close(handle)
        reply = {"returncode": os.waitstatus_to_exitcode(status), "timed_out": not finished}
        protocol_out.write(json.dumps(reply) + "\n")
        protocol_out.flush()


def _child(request: dict, printed: list[bytes], environment_set: dict[str, str]) -> None:
    """Become ``python SCRIPT ARGS`` in the request's folder and environment; exit as that interpreter would."""
    import random
    import runpy

    import numpy as np

    for fd, path, before in ((1, request["stdout"], printed[0]), (2, request["stderr"], printed[1])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(target, before)
        os.dup2(target, fd)
        os.close(target)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdin = open(0, closefd=False)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.update(environment_set)  # what the imports set (Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK)
    random.seed()  # a fresh interpreter draws new entropy; forked children would otherwise share the server's
    np.random.seed()
    script = str(Path(request["script"]).resolve())
    sys.argv = [script, *request["args"]]
    sys.path[0] = str(Path(script).parent)
    try:
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as stop:
        code = _exit_code(stop.code)
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    _shut_down(code)


def _exit_code(code: object) -> int:
    """The exit status Python gives ``sys.exit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _shut_down(code: int) -> None:
    """Python's shutdown without its module teardown (seconds with torch loaded): join the other threads,
    collect garbage (finalizers run), run atexit, flush, exit."""
    import gc

    threading._shutdown()  # what the interpreter runs first: threading's atexit hooks, then join the threads
    gc.collect()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


if __name__ == "__main__":
    _serve()

"""What the CLI's terminal shows: cultura's own output, not Ray's start-up chatter.

The CLI calls :func:`configure` once per process: without ``--verbose`` (or ``CULTURA_VERBOSE=1``)
every later :func:`cultura.ray_utils.init_ray`, so every command that starts or joins Ray, calls
:func:`quiet_ray`, which keeps off the terminal

- the console lines of Ray's Python loggers below ERROR ("Started a local Ray instance", Serve's
  INFO lines, Ray Data's and Ray Train's notices); Ray's log files keep what they log;
- the notices the raylet sends the driver (the worker-count warning, retried-task notices), which
  the driver prints to stdout even with ``log_to_driver=False``; the raylet's log keeps them;
- what the driver's C++ core worker writes to the standard error stream (error-level lines from
  ``core_worker.cc`` such as actor-restart notices; Ray's ``python-core-driver-*.log`` has them too):
  file descriptor 2 goes to ``cultura-driver-<pid>.err`` in Ray's session log folder, while Python's
  ``sys.stderr`` (progress bars, cultura's messages, errors) keeps the terminal.

Errors still reach the user: cultura's own as one ``error:`` line, anything unexpected as one line
naming the file that holds the traceback (:func:`write_traceback`).
"""

from __future__ import annotations

import os
from pathlib import Path

_verbose: bool | None = None  # None until the CLI configures this process
_stderr_log: Path | None = None  # where file descriptor 2 goes once redirected


def configure(verbose: bool) -> None:
    """Choose, once per process, whether Ray's chatter reaches the terminal (later calls keep the
    first choice, so a command that runs other commands inherits it). Quiet and offline (nothing to
    download, so no download progress to lose), it also hides transformers' weight-loading bars."""
    global _verbose
    if _verbose is not None:
        return
    _verbose = verbose or os.environ.get("CULTURA_VERBOSE", "") not in ("", "0")
    if not _verbose and os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read when transformers is imported


def is_quiet() -> bool:
    """True when the CLI keeps Ray's chatter off the terminal."""
    return _verbose is False


def quiet_ray(session_dir: str | None = None) -> None:
    """In quiet mode, keep Ray's console chatter off the terminal from now on (see the module doc).

    Safe to call repeatedly: Ray libraries imported since the last call (Serve, Train) set up their
    own console handlers, which are quieted too; Ray Data is imported here for that. ``session_dir`` (Ray's session folder, known
    once Ray runs) is where the standard error file goes.
    """
    if not is_quiet():
        return
    import importlib
    import logging

    import ray._private.worker as ray_worker

    # Ray Data sets up its console handler when imported, which most commands do after Ray starts.
    importlib.import_module("ray.data")
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if (name == "ray" or name.startswith("ray.")) and isinstance(logger, logging.Logger):
            for handler in logger.handlers:
                if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                    handler.setLevel(max(handler.level, logging.ERROR))
    # The driver prints the raylet's notices with this switch on, whatever log_to_driver says.
    if hasattr(ray_worker, "_worker_logs_enabled"):
        ray_worker._worker_logs_enabled = False
    if session_dir and _stderr_log is None:
        _redirect_stderr_fd(Path(session_dir) / "logs" / f"cultura-driver-{os.getpid()}.err")


def _redirect_stderr_fd(path: Path) -> None:
    """File descriptor 2 (what C and C++ code writes) to ``path``; ``sys.stderr`` stays on the terminal."""
    import io
    import sys

    global _stderr_log
    if not path.parent.is_dir():  # a remote cluster's session folder: keep the file locally instead
        import tempfile

        path = Path(tempfile.gettempdir()) / path.name
    sys.stderr.flush()
    terminal = os.dup(2)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 2)
    os.close(log)
    sys.stderr = io.TextIOWrapper(io.FileIO(terminal, "w"), encoding=sys.stderr.encoding or "utf-8",
                                  errors="backslashreplace", line_buffering=True, write_through=True)
    _stderr_log = path


def write_traceback(exc: BaseException) -> Path | None:
    """Append ``exc``'s traceback to the standard error file (None when there is none)."""
    if _stderr_log is None:
        return None
    import traceback

    with open(_stderr_log, "a", encoding="utf-8") as f:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=f)
    return _stderr_log

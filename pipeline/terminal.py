"""The command line's terminal: a line per stage, a bar per stage drawn in place, the
results; everything else only with ``-v``.

:func:`session` sets the process up before TensorFlow, TFX or Beam is imported, and
puts everything back when the command ends (tests and notebooks call the CLI in-process):

- TF's C++ logs (the cuDNN/cuFFT/cuBLAS factory errors, oneDNN notes) are read from
  ``TF_CPP_MIN_LOG_LEVEL`` when TensorFlow loads; it is set to 3 in ``os.environ``, so the
  Beam DirectRunner's worker processes, which inherit the environment, get it too.
- The FutureWarnings the Google client libraries raise when imported on Python 3.10 are
  filtered here and, through ``PYTHONWARNINGS``, in the worker processes.
- Python's logging, absl's included, goes to one handler on the root logger that shows
  errors only (``-v``: INFO and warnings, ``-vv``: DEBUG); Python warnings are routed
  into it, so ``-v`` shows them too. Beam workers' logs reach the runner's logging.
- Stage lines come from the LocalDagRunner's own announcements: it logs ``Component %s
  is running.`` and ``Component %s is finished.`` through absl for every node, and the
  launcher logs ``A cached execution %d is used.``; :class:`StageLines` is a logging
  handler that reads those records, so it works the same with ``-v`` (where they are
  also printed as they are).

``-q`` leaves errors and the results on stdout. Bars are drawn only when stderr is a
terminal, and never with ``--no-progress`` (see :mod:`keyclass.components.progress`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import warnings
from collections.abc import Iterator, Sequence

from keyclass.components import progress

# Filters for the warnings the Google client libraries print on import in every process
# (message prefixes; PYTHONWARNINGS syntax action:message:category).
GOOGLE_CLIENT_WARNINGS = (
    "ignore:You are using a non-supported Python version:FutureWarning",
    "ignore:Support for google-cloud-storage < 3.0.0 will be removed:FutureWarning",
)

# LocalDagRunner's and the launcher's announcements (tfx/orchestration/local/
# local_dag_runner.py and tfx/orchestration/portable/launcher.py, TFX 1.16).
RUNNING = "Component %s is running."
FINISHED = "Component %s is finished."
CACHED = "A cached execution %d is used."
EXECUTION_FAILED = "Execution %d failed."


def verbosity(verbose: int, quiet: bool) -> int:
    """``-q`` / nothing / ``-v`` / ``-vv`` as a progress level (QUIET .. VERBOSE + 1)."""
    return progress.QUIET if quiet else min(verbose, 2)


class _LineHandler(logging.Handler):
    """Log records as lines on the current stderr, above any bar being drawn."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            progress.write(self.format(record))
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)


class _PlainFormatter(logging.Formatter):
    """``error: message``: no timestamps or logger names by default."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


@contextlib.contextmanager
def session(level: int, bars: bool | None = None) -> Iterator[None]:
    """The process set up for a command at ``level`` (see :func:`verbosity`); ``bars``
    False turns every progress bar off. Restores what it changed on exit."""
    saved_env = {k: os.environ.get(k) for k in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONWARNINGS")}
    root = logging.getLogger()
    saved_root_level = root.level
    saved_progress = (progress.bars_setting(), progress.level())
    from absl import logging as absl_logging

    saved_absl = absl_logging.get_verbosity()
    handler = _LineHandler()
    with warnings.catch_warnings():
        if level <= progress.NORMAL:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
            worker_filters = [os.environ["PYTHONWARNINGS"]] if os.environ.get("PYTHONWARNINGS") else []
            os.environ["PYTHONWARNINGS"] = ",".join([*worker_filters, *GOOGLE_CLIENT_WARNINGS])
            for spec in GOOGLE_CLIENT_WARNINGS:
                action, message, _ = spec.split(":")
                warnings.filterwarnings(action, message=message, category=FutureWarning)
            handler.setLevel(logging.ERROR)
            handler.setFormatter(_PlainFormatter())
            handler.addFilter(_Restated())
            root.setLevel(logging.WARNING)
        else:
            handler.setLevel(logging.DEBUG if level > progress.VERBOSE else logging.INFO)
            handler.setFormatter(logging.Formatter("%(levelname).1s %(asctime)s %(name)s] %(message)s"))
            root.setLevel(handler.level)
        root.addHandler(handler)
        logging.captureWarnings(True)
        # Records must exist for StageLines to see them; the handler above filters them.
        absl_logging.set_verbosity(absl_logging.INFO)
        progress.configure(bars=False if bars is False else None, level=level)
        try:
            yield
        finally:
            logging.captureWarnings(False)
            root.removeHandler(handler)
            root.setLevel(saved_root_level)
            absl_logging.set_verbosity(saved_absl)
            progress.configure(bars=saved_progress[0], level=saved_progress[1])
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _stage_line(name: str, seconds: float, note: str = "") -> str:
    return f"{name:<10}{progress.format_seconds(seconds):>12}" + (f"  {note}" if note else "")


class StageLines(logging.Handler):
    """One line per stage, with its time, from the runner's announcements.

    ``stages`` is ``[(stage, [node ids])]`` in pipeline order. A stage's time is the sum
    of its nodes' (a resolver may run long before the Evaluator it feeds); its line is
    printed when the last of its nodes has finished, ``cached`` when every node was a
    cache hit.
    """

    def __init__(self, stages: Sequence[tuple[str, Sequence[str]]]):
        super().__init__(logging.INFO)
        self._stage_of = {node: name for name, nodes in stages for node in nodes}
        self._pending = {name: set(nodes) for name, nodes in stages}
        self._cached: dict[str, int] = {name: 0 for name, _ in stages}
        self._seconds: dict[str, float] = {name: 0.0 for name, _ in stages}
        self._node: str | None = None
        self._node_started = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if record.msg == RUNNING and args and str(args[0]) in self._stage_of:
            self._node, self._node_started = str(args[0]), time.perf_counter()
        elif record.msg == CACHED and self._node is not None:
            self._cached[self._stage_of[self._node]] += 1
        elif record.msg == FINISHED and args and str(args[0]) == self._node:
            stage = self._stage_of[self._node]
            self._seconds[stage] += time.perf_counter() - self._node_started
            self._pending[stage].discard(self._node)
            self._node = None
            if not self._pending[stage]:
                everything_cached = self._cached[stage] == sum(1 for s in self._stage_of.values() if s == stage)
                progress.say(_stage_line(stage, self._seconds[stage], "cached" if everything_cached else ""))

    def fail(self) -> None:
        """The run stopped: the stage of the node under way ends with ``failed``."""
        if self._node is not None:
            stage = self._stage_of[self._node]
            seconds = self._seconds[stage] + time.perf_counter() - self._node_started
            progress.say(_stage_line(stage, seconds, "failed"))
            self._node = None


class _Restated(logging.Filter):
    """Drops TFX's "Execution N failed." by default: the CLI's last line says what failed."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != EXECUTION_FAILED


@contextlib.contextmanager
def stage_lines(stages: Sequence[tuple[str, Sequence[str]]]) -> Iterator[StageLines]:
    """Print a line per pipeline stage while a LocalDagRunner run is under way."""
    from absl import logging as absl_logging

    handler = StageLines(stages)
    logger = absl_logging.get_absl_logger()
    logger.addHandler(handler)
    try:
        yield handler
    except BaseException:
        handler.fail()
        raise
    finally:
        logger.removeHandler(handler)


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """A stage run by keyclass itself (predict): its line and time when it ends."""
    t0 = time.perf_counter()
    try:
        yield
    except BaseException:
        progress.say(_stage_line(name, time.perf_counter() - t0, "failed"))
        raise
    progress.say(_stage_line(name, time.perf_counter() - t0))


def write_error(message: str) -> None:
    """The CLI's last word on stderr (clears any bar first)."""
    progress.write(f"keyclass: {message}")


__all__ = ["GOOGLE_CLIENT_WARNINGS", "StageLines", "session", "stage", "stage_lines", "verbosity", "write_error"]

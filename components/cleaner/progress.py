"""A progress bar for the cleaner's decode stage when Beam runs on this machine.

Beam's DirectRunner decodes in worker processes (or threads), which cannot draw on the
user's terminal. Each worker appends one byte per image it finished to a file of its own
in a local directory; a thread in the executor sums the file sizes into the bar. On
Dataflow or Flink the workers are elsewhere, so no directory is given and the stage
reports only its closing line here (Beam's own UI and the decode counters show progress
there). When no bar is drawn (not a terminal, ``--no-progress``), the workers are given
no directory either and write nothing.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

from keyclass.components import progress


def tick(progress_dir: str | None) -> None:
    """Record one finished image (called by a worker; no-op without a directory)."""
    if not progress_dir:
        return
    with open(os.path.join(progress_dir, f"{os.getpid()}-{threading.get_ident()}"), "ab") as f:
        f.write(b".")


def done(progress_dir: str) -> int:
    return sum(p.stat().st_size for p in Path(progress_dir).iterdir())


class ProgressBar:
    """Context manager: ``.dir`` for the workers, a bar that follows it until
    :meth:`finish` replaces it with the stage's closing line."""

    def __init__(self, total: int, desc: str = "clean", interval_s: float = 0.5, enabled: bool = True):
        self.total, self.desc, self.interval_s = total, desc, interval_s
        self.enabled = enabled and progress.bars_on()
        self.dir: str | None = None
        self._bar: progress.Bar | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> ProgressBar:
        if not self.enabled:
            return self
        self._tmp = tempfile.TemporaryDirectory(prefix="keyclass-progress-")
        self.dir = self._tmp.name
        self._bar = progress.Bar(self.total, self.desc)
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()
        return self

    @property
    def n(self) -> int:
        return self._bar.n if self._bar else 0

    def _follow(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._bar.set(min(done(self.dir), self.total))

    def finish(self, summary: str | None = None) -> None:
        """Stop following; print ``summary`` in the bar's place (also without a bar)."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._bar.set(min(done(self.dir), self.total))
        if self._bar is not None:
            self._bar.close(summary)
        elif summary:
            progress.say(summary)

    def __exit__(self, *exc) -> None:
        self.finish()
        if self.dir is not None:
            self._tmp.cleanup()

"""A progress bar for the cleaner's decode stage when Beam runs on this machine.

Beam's DirectRunner decodes in worker processes, which cannot draw on the user's
terminal. Each worker appends one byte per image it finished to a file of its own in a
local directory; a thread in the executor sums the file sizes into a tqdm bar. On
Dataflow or Flink the workers are elsewhere, so no directory is given and the stage
reports nothing here (Beam's own UI and the decode counters show progress there).
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

from tqdm import tqdm


def tick(progress_dir: str | None) -> None:
    """Record one finished image (called by a worker; no-op without a directory)."""
    if not progress_dir:
        return
    with open(os.path.join(progress_dir, f"{os.getpid()}-{threading.get_ident()}"), "ab") as f:
        f.write(b".")


def done(progress_dir: str) -> int:
    return sum(p.stat().st_size for p in Path(progress_dir).iterdir())


class ProgressBar:
    """Context manager: ``.dir`` for the workers, a bar that follows it until exit."""

    def __init__(self, total: int, desc: str = "clean", interval_s: float = 0.5, enabled: bool = True):
        self.total, self.desc, self.interval_s, self.enabled = total, desc, interval_s, enabled
        self.dir: str | None = None
        self._stop = threading.Event()

    def __enter__(self) -> ProgressBar:
        if not self.enabled:
            return self
        self._tmp = tempfile.TemporaryDirectory(prefix="keyclass-progress-")
        self.dir = self._tmp.name
        self._bar = tqdm(total=self.total, desc=self.desc, unit="img")
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()
        return self

    def _follow(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._bar.n = min(done(self.dir), self.total)
            self._bar.refresh()

    def __exit__(self, *exc) -> None:
        if not self.enabled:
            return
        self._stop.set()
        self._thread.join()
        self._bar.n = min(done(self.dir), self.total)
        self._bar.close()
        self._tmp.cleanup()

"""What a run shows on the user's terminal while it works: progress bars drawn in place
that end as one line with the real result, and plain result lines.

One setting for the whole process, :func:`configure`d by the command line before a run:

- ``bars``: draw bars or not. By default only when stderr is a terminal, so cron logs
  and pod logs get the result lines without a redraw per update.
- ``level``: how much is said. ``QUIET`` (-1): nothing but errors; ``NORMAL`` (0):
  result lines; ``VERBOSE`` (1 and more): the libraries also speak as they usually do
  (Keras prints its epochs). Without the command line (tests, library use, a Kubeflow
  pod) the level is ``VERBOSE``: nothing is hidden that used to be shown.

Everything here writes to stderr; stdout is left to the commands' results.
"""

from __future__ import annotations

import dataclasses
import sys
import threading

from tqdm import tqdm

QUIET, NORMAL, VERBOSE = -1, 0, 1


@dataclasses.dataclass
class _Settings:
    bars: bool | None = None  # None: when stderr is a terminal
    level: int = VERBOSE


_settings = _Settings()
_lock = threading.RLock()


def configure(*, bars: bool | None = None, level: int = NORMAL) -> None:
    """Set the process's terminal behaviour (the command line calls this once)."""
    _settings.bars, _settings.level = bars, level


def level() -> int:
    return _settings.level


def bars_setting() -> bool | None:
    """What :func:`configure` was given for ``bars`` (None: automatic)."""
    return _settings.bars


def bars_on() -> bool:
    """Whether bars are drawn: asked for (or stderr is a terminal) and not quiet."""
    if _settings.level < NORMAL:
        return False
    if _settings.bars is not None:
        return _settings.bars
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def say(line: str) -> None:
    """Print a result line on stderr unless quiet, above any bar being drawn."""
    if _settings.level >= NORMAL:
        write(line)


def write(line: str) -> None:
    """Print a line on stderr whatever the level (errors), above any bar being drawn."""
    with _lock:
        tqdm.write(line, file=sys.stderr)


def format_seconds(seconds: float) -> str:
    """``0.4 s``, ``12.3 s``, ``2 min 05 s``, ``1 h 02 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


class Bar:
    """A bar redrawn in place on one line, cleared at the end and replaced by one line
    that says what really happened::

        bar = Bar(1000, "golden retriever")
        bar.update(1)  # per image found
        bar.close("golden retriever: 165 found, engine exhausted")

    Without bars (not a terminal, ``--no-progress``, or ``draw=False`` where something
    else already shows the progress) only the closing line is printed; when quiet,
    nothing. Safe to update from another thread.
    """

    def __init__(self, total: int | None, desc: str, unit: str = "img", draw: bool = True):
        self.n = 0
        self._closed = False
        self._tqdm = tqdm(
            total=total,
            desc=desc,
            unit=unit,
            leave=False,
            dynamic_ncols=True,
            file=sys.stderr,
            disable=not (draw and bars_on()),
        )

    def update(self, n: int = 1) -> None:
        self.set(self.n + n)

    def set(self, n: int) -> None:
        """Show ``n`` done (absolute)."""
        with _lock:
            self.n = n
            if not self._tqdm.disable and n != self._tqdm.n:
                self._tqdm.update(n - self._tqdm.n)  # redrawn at most every 0.1 s

    def note(self, text: str) -> None:
        """A short status after the counts, e.g. the source being read."""
        if not self._tqdm.disable:
            with _lock:
                self._tqdm.set_postfix_str(text, refresh=True)

    def close(self, summary: str | None = None) -> None:
        """Clear the bar and print ``summary`` in its place (once)."""
        if self._closed:
            return
        self._closed = True
        with _lock:
            self._tqdm.close()
        if summary:
            say(summary)

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""The results folder of ``keyclass predict``/``run``/``demo``: where it may be, and when
it may be emptied.

``--overwrite`` empties the results folder, so a wrong ``--results`` must never reach a
folder that holds the user's files. :func:`check_results_dir` runs before any work and
refuses (exit 2):

- the prediction folder itself, a folder that contains it, or one inside it (the input
  images would be deleted, or mixed with the results);
- ``/``, the user's home (``$HOME``) or a folder containing it, the current folder or
  one containing it, and the keyclass home, a folder containing it or inside it
  (pipelines, metadata and pushed models);
- an existing file;
- an existing, non-empty folder without ``--overwrite``; with ``--overwrite``, one that
  keyclass did not create.

keyclass marks every results folder it creates with :data:`MARKER`, and
:func:`prepare_results_dir` only ever deletes a folder holding that marker.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from pathlib import Path

from keyclass.components.errors import ConfigError

MARKER = ".keyclass-results"


class ResultsDirError(ConfigError):
    """The results folder is refused; the message says why and what to do."""


def _real(path: str | os.PathLike) -> Path:
    return Path(path).expanduser().resolve()


def _related(a: Path, b: Path) -> str:
    """How ``a`` relates to ``b``: "is", "contains", "is inside" or ""."""
    if a == b:
        return "is"
    if b.is_relative_to(a):
        return "contains"
    if a.is_relative_to(b):
        return "is inside"
    return ""


def is_keyclass_results(folder: str | os.PathLike) -> bool:
    """True when ``folder`` carries the marker keyclass writes into results it creates."""
    return (Path(folder) / MARKER).is_file()


def check_results_dir(
    results: str | os.PathLike,
    *,
    prediction_root: str | os.PathLike | None = None,
    home: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> None:
    """Refuse a results folder that could delete or hide the user's files (see the module
    docstring); raises ResultsDirError naming the folder and the reason."""
    given = str(results)
    if not given.strip():
        raise ResultsDirError("--results: give a folder for the results")
    r = _real(results)
    if r == Path(r.anchor):
        raise ResultsDirError(f"--results {given}: refusing the filesystem root as the results folder")
    if prediction_root is not None:
        how = _related(r, _real(prediction_root))
        if how:
            raise ResultsDirError(
                f"--results {given} {how} the prediction folder {prediction_root}; "
                "choose a results folder outside it (results would mix with, or replace, your images)"
            )
    if home is not None:
        how = _related(r, _real(home))
        if how:
            raise ResultsDirError(
                f"--results {given} {how} the keyclass home {home} (pipelines, metadata, models); choose another folder"
            )
    for name, place in (("your home folder", Path.home()), ("the current folder", Path.cwd())):
        how = _related(r, place.resolve())
        if how in ("is", "contains"):
            raise ResultsDirError(f"--results {given} {how} {name}; choose a dedicated results folder")
    if r.exists() and not r.is_dir():
        raise ResultsDirError(f"--results {given}: {r} is a file, not a folder")
    if r.is_dir() and any(r.iterdir()):
        if not overwrite:
            raise ResultsDirError(f"results folder {given} already holds results; pass --overwrite or choose another")
        if not is_keyclass_results(r):
            raise ResultsDirError(
                f"results folder {given} is not empty and keyclass did not create it (no {MARKER} marker); "
                "--overwrite only replaces results keyclass wrote: remove it yourself or choose another folder"
            )


def prepare_results_dir(
    results: str | os.PathLike,
    overwrite: bool,
    *,
    prediction_root: str | os.PathLike | None = None,
    home: str | os.PathLike | None = None,
) -> Path:
    """Check ``results`` (:func:`check_results_dir`), empty it if it is keyclass's own and
    ``overwrite``, and create it with the marker. Returns the folder."""
    check_results_dir(results, prediction_root=prediction_root, home=home, overwrite=overwrite)
    r = _real(results)
    if r.is_dir() and any(r.iterdir()):
        shutil.rmtree(r)  # check_results_dir verified keyclass's marker
    r.mkdir(parents=True, exist_ok=True)
    marker = {"created_by": "keyclass", "created": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    (r / MARKER).write_text(json.dumps(marker) + "\n")
    return r

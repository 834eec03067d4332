"""Publishing a model version in TF Serving's layout, atomically and idempotently.

TF Serving polls ``<base>/<version>/`` and loads a version as soon as the directory
exists. TFX's stock Pusher copies straight into that directory (``saved_model.pb``
last), so a poll during the copy can still see a half-written version. Here a version
is copied into a hidden temporary directory beside it, ``saved_model.pb`` last, and then
renamed into place, so it appears whole or not at all. Versions are integers that only
grow, even when two pushes happen within the same second.

Interrupted pushes (:func:`publish`): a push killed before its rename leaves only a
``.tmp-*`` directory, which the next push removes; a run that fails *after* the rename
(copying the pushed_model artifact, recording it in ML Metadata) is retried by the next
run with the same model, which finds that model's version by its fingerprint and reuses
it instead of pushing a duplicate. Local pushes into one base directory are serialised
by a lock file, so a leftover ``.tmp-*`` is never a push in flight.

No TFX here (the executor adapts TFX's Pusher to it): local paths use the standard
library, ``gs://`` and other URIs ``tf.io.gfile`` through :mod:`keyclass.serving.model_layout`.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import uuid
from collections.abc import Iterator

from keyclass.serving import model_layout
from keyclass.serving.model_layout import SAVED_MODEL_PB

log = logging.getLogger(__name__)


def push_atomically(model_path: str, base_directory: str, version: int, model_fingerprint: str = "") -> str:
    """Copy ``model_path`` to ``base_directory/version`` via a temp dir and one rename;
    the push record (the model's fingerprint) is written before ``saved_model.pb``."""
    final = model_layout.join(base_directory, str(version))
    if model_layout.exists(final):
        raise FileExistsError(f"push: {final} already exists; refusing to overwrite a served version")
    model_layout.makedirs(base_directory)
    pb = model_layout.join(model_path, SAVED_MODEL_PB)
    if not model_layout.exists(pb):
        raise FileNotFoundError(f"push: {model_path} holds no {SAVED_MODEL_PB}")
    tmp = model_layout.join(base_directory, f"{model_layout.TMP_PREFIX}{version}-{uuid.uuid4().hex[:8]}")
    try:
        model_layout.copy_tree(model_path, tmp, skip=(SAVED_MODEL_PB,))
        record = {
            "fingerprint": model_fingerprint or model_layout.fingerprint(model_path),
            "source": model_path,
            "pushed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        }
        model_layout.write_text(model_layout.push_record_path(tmp), json.dumps(record, indent=2, sort_keys=True))
        model_layout.copy_file(pb, model_layout.join(tmp, SAVED_MODEL_PB))
        model_layout.rename(tmp, final)
    finally:
        if model_layout.exists(tmp):
            model_layout.rmtree(tmp)
    return final


@contextlib.contextmanager
def push_lock(base_directory: str) -> Iterator[None]:
    """Serialise pushes into one local base directory (remote ones are not locked)."""
    if "://" in base_directory:
        yield
        return
    import fcntl

    os.makedirs(base_directory, exist_ok=True)
    with open(os.path.join(base_directory, model_layout.PUSH_LOCK), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def publish(model_path: str, base_directory: str) -> tuple[int, str, bool]:
    """Push ``model_path`` as the next version under ``base_directory`` unless a version
    of exactly this model is already there; returns (version, path, already_pushed).
    Removes leftover temp dirs of killed pushes first."""
    with push_lock(base_directory):
        for leftover in model_layout.remove_temp_dirs(base_directory):
            log.warning("Removed %s, left by a push that never finished.", leftover)
        model_fingerprint = model_layout.fingerprint(model_path)
        existing = model_layout.version_with_fingerprint(base_directory, model_fingerprint)
        if existing is not None:
            path = model_layout.join(base_directory, str(existing))
            log.info("This model is already pushed as %s (an earlier run failed after its push).", path)
            return existing, path, True
        version = model_layout.next_version(base_directory)
        return version, push_atomically(model_path, base_directory, version, model_fingerprint), False

"""The exported model's layout: the one home of every name and rule a pushed keyclass
model is read and written by.

A model base directory (``<models>/<model_name>/``, TF Serving's layout) holds one
integer directory per pushed version. A version directory is a SavedModel with:

- the signatures :data:`SIGNATURE_INPUTS` names, each answering :data:`OUTPUTS` and
  :data:`RAW_OUTPUTS` (plus ``heatmap`` for :data:`HEATMAP_SIGNATURES`);
- ``assets.extra/keyclass.json``: classes (label order), input size, backbone,
  training metrics, and the ``calibration`` record (temperature, ECE before and after,
  certified thresholds, held-out scores); :func:`read_metadata` / :func:`write_metadata`;
- ``assets.extra/tf_serving_warmup_requests``: TF Serving's warmup replay.

The Pusher writes a version into a hidden ``.tmp-*`` directory beside the versions
(``saved_model.pb`` last) and renames it into place, so :func:`version_dirs` (what TF
Serving and keyclass load) only ever sees whole versions. Each pushed version carries
``assets.extra/keyclass_push.json`` with the :func:`fingerprint` of the model it came
from, so a push that is repeated (its run failed after the rename) finds its version
instead of adding a duplicate (:func:`version_with_fingerprint`); the next push removes
the ``.tmp-*`` directories a killed push left (:func:`remove_temp_dirs`).

Standard library only: ``keyclass models`` lists models without importing TensorFlow.
Paths with a scheme (``gs://``, ``s3://``) go through ``tf.io.gfile``, imported then.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterable, Iterator

# Signatures ----------------------------------------------------------------------
SERVING_DEFAULT = "serving_default"
GRAD_CAM = "grad_cam"
GRAD_CAM_CLASS = "grad_cam_class"
SERVING_TF_EXAMPLE = "serving_tf_example"

IMAGES_INPUT = "images"
CLASS_INDEX_INPUT = "class_index"
EXAMPLES_INPUT = "examples"

# Every exported signature, in export order, and its named inputs.
SIGNATURE_INPUTS: dict[str, tuple[str, ...]] = {
    SERVING_DEFAULT: (IMAGES_INPUT,),
    GRAD_CAM: (IMAGES_INPUT,),
    GRAD_CAM_CLASS: (IMAGES_INPUT, CLASS_INDEX_INPUT),
    SERVING_TF_EXAMPLE: (EXAMPLES_INPUT,),
}
SIGNATURES: tuple[str, ...] = tuple(SIGNATURE_INPUTS)
HEATMAP_SIGNATURES = (GRAD_CAM, GRAD_CAM_CLASS)
# probabilities and confidence are calibrated: softmax(logits / T), T the temperature
# fitted at training time and stored in the graph (keyclass.json 'calibration' records it).
OUTPUTS = ("probabilities", "class_id", "class_name", "confidence")
# The uncalibrated softmax(logits), from models exported with a temperature (optional:
# earlier models lack them).
RAW_OUTPUTS = ("raw_probabilities", "raw_confidence")
HEATMAP_OUTPUT = "heatmap"
# The tf.Example feature that serving_tf_example parses (the cleaner writes it).
IMAGE_FEATURE = "image/encoded"

# Files -----------------------------------------------------------------------------
SAVED_MODEL_PB = "saved_model.pb"
ASSETS_EXTRA = "assets.extra"
METADATA_FILE = "keyclass.json"
WARMUP_FILE = "tf_serving_warmup_requests"
PUSH_RECORD_FILE = "keyclass_push.json"  # the pushed model's fingerprint and source
TMP_PREFIX = ".tmp-"  # a push in flight (or one killed mid-copy)
PUSH_LOCK = ".push.lock"  # held while pushing into a local model base directory


def metadata_path(version_dir: str) -> str:
    return _join(version_dir, ASSETS_EXTRA, METADATA_FILE)


def warmup_path(version_dir: str) -> str:
    return _join(version_dir, ASSETS_EXTRA, WARMUP_FILE)


def push_record_path(version_dir: str) -> str:
    return _join(version_dir, ASSETS_EXTRA, PUSH_RECORD_FILE)


# A small filesystem shim: local paths with os, URIs with tf.io.gfile ------------------
def _remote(path: str) -> bool:
    return "://" in str(path)


def _join(*parts: str) -> str:
    return "/".join(p.rstrip("/") for p in parts) if _remote(parts[0]) else os.path.join(*parts)


def join(*parts: str) -> str:
    """Join path parts, local or URI (``gs://b/m`` + ``1`` -> ``gs://b/m/1``)."""
    return _join(*parts)


def _gfile():
    import tensorflow as tf  # only for gs:// and other remote paths

    return tf.io.gfile


def exists(path: str) -> bool:
    return _gfile().exists(path) if _remote(path) else os.path.exists(path)


def isdir(path: str) -> bool:
    return _gfile().isdir(path) if _remote(path) else os.path.isdir(path)


def listdir(path: str) -> list[str]:
    if not isdir(path):
        return []
    names = _gfile().listdir(path) if _remote(path) else os.listdir(path)
    return sorted(n.rstrip("/") for n in names)


def read_text(path: str) -> str:
    if _remote(path):
        with _gfile().GFile(path, "r") as f:
            return f.read()
    with open(path, encoding="utf-8") as f:
        return f.read()


def write_text(path: str, text: str) -> None:
    if _remote(path):
        gfile = _gfile()
        gfile.makedirs(os.path.dirname(path))
        with gfile.GFile(path, "w") as f:
            f.write(text)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def makedirs(path: str) -> None:
    if _remote(path):
        _gfile().makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def rmtree(path: str) -> None:
    if _remote(path):
        _gfile().rmtree(path)
    else:
        shutil.rmtree(path)


def rename(src: str, dst: str) -> None:
    """Rename a directory (one atomic step on a local filesystem)."""
    if _remote(src):
        _gfile().rename(src, dst)
    else:
        os.rename(src, dst)


def copy_file(src: str, dst: str) -> None:
    makedirs(os.path.dirname(dst))
    if _remote(src) or _remote(dst):
        _gfile().copy(src, dst, overwrite=True)
    else:
        shutil.copyfile(src, dst)


def copy_tree(src: str, dst: str, skip: tuple[str, ...] = ()) -> None:
    """Copy every file below ``src`` to ``dst``, except the relative paths in ``skip``."""
    makedirs(dst)
    for rel, full in _files(src):
        if rel not in skip:
            copy_file(full, _join(dst, *rel.split("/")))


# Versions --------------------------------------------------------------------------
def is_saved_model(path: str) -> bool:
    return exists(_join(path, SAVED_MODEL_PB))


def version_numbers(base_dir: str) -> list[int]:
    """Every integer directory name under ``base_dir``, complete or not, ascending.
    Hidden temporary directories of pushes in flight are not versions."""
    return sorted(int(n) for n in listdir(base_dir) if n.isdigit())


def version_dirs(base_dir: str) -> dict[int, str]:
    """``{version: path}`` for the integer subdirectories holding a SavedModel, as TF
    Serving sees them (hidden or non-numeric names, e.g. a push in flight, ignored)."""
    out = {}
    for v in version_numbers(base_dir):
        path = _join(base_dir, str(v))
        if is_saved_model(path):
            out[v] = path
    return out


def temp_dirs(base_dir: str) -> list[str]:
    """Leftover ``.tmp-*`` directories of pushes that never finished."""
    return [_join(base_dir, n) for n in listdir(base_dir) if n.startswith(TMP_PREFIX)]


def remove_temp_dirs(base_dir: str) -> list[str]:
    """Delete the ``.tmp-*`` directories under ``base_dir`` (call it with no push in
    flight, e.g. holding the push lock); returns what was removed."""
    removed = temp_dirs(base_dir)
    for path in removed:
        rmtree(path)
    return removed


def _files(root: str) -> Iterator[tuple[str, str]]:
    """(relative path with /, full path) of every file below ``root``, sorted."""
    walk = _gfile().walk(root) if _remote(root) else os.walk(root)
    found = []
    for dirpath, _dirnames, filenames in walk:
        for name in filenames:
            full = _join(dirpath, name)
            found.append((os.path.relpath(full, root).replace(os.sep, "/"), full))
    return iter(sorted(found))


def fingerprint(model_dir: str) -> str:
    """sha256 over every file of a SavedModel directory (relative paths and bytes),
    leaving out keyclass's push record: equal for the model and its pushed copy."""
    h = hashlib.sha256()
    record = f"{ASSETS_EXTRA}/{PUSH_RECORD_FILE}"
    for rel, full in _files(model_dir):
        if rel == record:
            continue
        h.update(f"\0{rel}\0".encode())
        if _remote(full):
            with _gfile().GFile(full, "rb") as f:
                h.update(f.read())
        else:
            with open(full, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
    return h.hexdigest()


def read_push_record(version_dir: str) -> dict | None:
    """The push record of a pushed version, or None."""
    return _read_json(push_record_path(version_dir))


def version_with_fingerprint(base_dir: str, model_fingerprint: str) -> int | None:
    """The pushed version of ``base_dir`` whose model has this fingerprint, if any."""
    for version, path in sorted(version_dirs(base_dir).items()):
        record = read_push_record(path)
        if record and record.get("fingerprint") == model_fingerprint:
            return version
    return None


def next_version(base_dir: str, now: float | None = None) -> int:
    """The unix time in seconds, or one past the newest existing version if that is later:
    versions only grow, even for two pushes within one second."""
    stamp = int(now if now is not None else time.time())
    return max([stamp] + [v + 1 for v in version_numbers(base_dir)])


def resolve_saved_model_dir(path: str, version: int | None = None) -> tuple[str, int | None]:
    """``path`` is a SavedModel, or a model base dir ``<model_name>/`` with version
    subdirs: then ``version`` or, by default, the newest. Returns (dir, version)."""
    if is_saved_model(path):
        base = os.path.basename(os.path.normpath(path))
        found = int(base) if base.isdigit() else None
        if version and found is not None and found != version:
            raise FileNotFoundError(f"{path} is version {found}, not the requested version {version}")
        return path, found
    versions = version_dirs(path)
    if not versions:
        raise FileNotFoundError(f"{path}: no SavedModel here and no numbered version directories holding one")
    if version:
        if version not in versions:
            raise FileNotFoundError(f"{path}: no version {version} (have {sorted(versions)})")
        return versions[version], version
    newest = max(versions)
    return versions[newest], newest


# Metadata --------------------------------------------------------------------------
def read_metadata(version_dir: str) -> dict | None:
    """The ``assets.extra/keyclass.json`` the export writes, or None when absent or unreadable."""
    return _read_json(metadata_path(version_dir))


def _read_json(path: str) -> dict | None:
    """A JSON object file, or None when absent, unreadable or not an object."""
    if not exists(path):
        return None
    try:
        value = json.loads(read_text(path))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_metadata(version_dir: str, metadata: dict) -> str:
    """Write ``assets.extra/keyclass.json``; returns its path."""
    path = metadata_path(version_dir)
    write_text(path, json.dumps(metadata, indent=2, sort_keys=True))
    return path


def model_dirs(models_dir: str) -> list[str]:
    """The model base directories under a models dir (hidden ones skipped)."""
    return [_join(models_dir, n) for n in listdir(models_dir) if not n.startswith(".") and isdir(_join(models_dir, n))]


def complete_versions(models_dir: str) -> Iterable[tuple[str, int, str, dict]]:
    """(model name, version, path, metadata) for every whole, keyclass-exported version."""
    for base in model_dirs(models_dir):
        name = os.path.basename(base.rstrip("/"))
        for version, path in sorted(version_dirs(base).items()):
            meta = read_metadata(path)
            if meta is not None:
                yield name, version, path, meta

"""Read a legacy-format (pre-1.6, non-zip) PyTorch state dict into numpy arrays, without torch.

The legacy format written by ``torch.save(..., _use_new_zipfile_serialization=False)`` is a
sequence of pickles followed by raw storage bytes:

1. the magic number ``0x1950a86a20f9469cfc6c``,
2. the protocol version (1001),
3. system info (``little_endian`` and type sizes),
4. the main pickle: here an ``OrderedDict`` of name -> tensor, where each tensor is
   ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` and each storage is a
   persistent id ``("storage", StorageType, key, location, numel, view_metadata)``,
5. a pickled list of storage keys,
6. for each key in that order: an int64 element count, then the storage's raw bytes.

Tensors are views into storages: offset, size and strides (in elements) are honoured, so
non-contiguous tensors (such as conv kernels permuted from a TensorFlow layout) come out right.
The unpickler is restricted to the few globals a state dict needs; anything else is refused.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import os
import pickle
from typing import BinaryIO

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch storage class name -> numpy dtype (little-endian, as the legacy writer stores them).
STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class TorchLegacyFormatError(ValueError):
    """The file is not a legacy PyTorch state dict this reader understands."""


@dataclasses.dataclass(frozen=True)
class _StorageType:
    name: str
    dtype: np.dtype


@dataclasses.dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: np.dtype
    numel: int  # elements in the stored (root) storage
    view: tuple[int, int] | None  # (element offset, element count) of an old-style storage view


@dataclasses.dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    if not isinstance(storage, _StorageRef):
        raise TorchLegacyFormatError(f"_rebuild_tensor_v2 got {type(storage).__name__}, expected a storage")
    return _TensorRef(storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


class _StateDictUnpickler(pickle.Unpickler):
    """Resolves only the globals a plain state dict needs; storages become ``_StorageRef``s."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name, STORAGE_DTYPES[name])
        raise TorchLegacyFormatError(
            f"refusing to load global {module}.{name}: only collections.OrderedDict, "
            f"torch._utils._rebuild_tensor_v2 and torch storage types are allowed in a state dict"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise TorchLegacyFormatError(f"unknown persistent id {pid!r}")
        _, storage_type, key, _location, numel, view = pid
        if not isinstance(storage_type, _StorageType):
            raise TorchLegacyFormatError(f"storage {key!r}: {storage_type!r} is not a storage type")
        if view is not None:  # (view key, offset, size): a window on the root storage ``key``
            _view_key, view_offset, view_numel = view
            view = (int(view_offset), int(view_numel))
        return _StorageRef(str(key), storage_type.dtype, int(numel), view)


def _load_plain(f: BinaryIO, what: str):
    """Load one of the small header pickles; they contain only builtins."""
    try:
        return _StateDictUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError) as e:
        raise TorchLegacyFormatError(f"cannot read the {what}: {e}") from e


def _read_storages(buf: memoryview, pos: int, keys: list[str], refs: dict[str, _StorageRef]) -> dict[str, np.ndarray]:
    """Storages follow the key list, each as int64 element count + raw bytes, in key order."""
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        if pos + 8 > len(buf):
            raise TorchLegacyFormatError(f"file ends before storage {key!r}")
        numel = int(np.frombuffer(buf, "<i8", count=1, offset=pos)[0])
        pos += 8
        ref = refs.get(key)
        if ref is None:
            raise TorchLegacyFormatError(f"storage {key!r} is listed but no tensor refers to it")
        if numel != ref.numel:
            raise TorchLegacyFormatError(f"storage {key!r}: {numel} elements stored, {ref.numel} declared")
        nbytes = numel * ref.dtype.itemsize
        if numel < 0 or pos + nbytes > len(buf):
            raise TorchLegacyFormatError(f"storage {key!r}: {numel} elements do not fit in the file")
        storages[key] = np.frombuffer(buf, ref.dtype, count=numel, offset=pos)
        pos += nbytes
    if pos != len(buf):
        raise TorchLegacyFormatError(f"{len(buf) - pos} unexpected bytes after the last storage")
    missing = set(refs) - set(storages)
    if missing:
        raise TorchLegacyFormatError(f"storages referenced but not stored: {sorted(missing)}")
    return storages


def _materialize(name: str, t: _TensorRef, storages: dict[str, np.ndarray]) -> np.ndarray:
    data = storages[t.storage.key]
    if t.storage.view is not None:  # an old-style storage view: a window on a root storage
        view_offset, view_numel = t.storage.view
        data = data[view_offset : view_offset + view_numel]
    if len(t.shape) != len(t.strides):
        raise TorchLegacyFormatError(f"tensor {name!r}: size {t.shape} and stride {t.strides} differ in rank")
    if any(s < 0 for s in t.shape) or any(s < 0 for s in t.strides) or t.offset < 0:
        raise TorchLegacyFormatError(f"tensor {name!r}: negative size, stride or offset")
    if 0 in t.shape:
        return np.zeros(t.shape, data.dtype)
    last = t.offset + sum((n - 1) * s for n, s in zip(t.shape, t.strides, strict=True))
    if last >= data.size:
        raise TorchLegacyFormatError(
            f"tensor {name!r}: offset {t.offset}, size {t.shape}, stride {t.strides} "
            f"reach element {last} of a storage of {data.size}"
        )
    item = data.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[t.offset :], shape=t.shape, strides=tuple(s * item for s in t.strides), writeable=False
    )
    return np.array(view, dtype=data.dtype.newbyteorder("="), order="C", copy=True)


def _parse(raw: bytes) -> dict[str, np.ndarray]:
    if raw[:2] == b"PK":
        raise TorchLegacyFormatError("a zip-format torch file, not the legacy format this reader reads")
    f = io.BytesIO(raw)
    if _load_plain(f, "magic number") != LEGACY_MAGIC:
        raise TorchLegacyFormatError("wrong magic number; not a legacy PyTorch file")
    protocol = _load_plain(f, "protocol version")
    if protocol != LEGACY_PROTOCOL:
        raise TorchLegacyFormatError(f"protocol version {protocol!r}, expected {LEGACY_PROTOCOL}")
    sys_info = _load_plain(f, "system info")
    if not (isinstance(sys_info, dict) and sys_info.get("little_endian") is True):
        raise TorchLegacyFormatError(f"not written on a little-endian machine ({sys_info!r})")
    obj = _load_plain(f, "main pickle")
    keys = _load_plain(f, "storage key list")
    if not isinstance(obj, dict) or not all(isinstance(v, _TensorRef) for v in obj.values()):
        raise TorchLegacyFormatError("the main pickle is not a flat dict of tensors (a state dict)")
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise TorchLegacyFormatError("the storage key list is not a list of strings")

    refs: dict[str, _StorageRef] = {}
    for name, t in obj.items():
        known = refs.setdefault(t.storage.key, t.storage)
        if (known.dtype, known.numel) != (t.storage.dtype, t.storage.numel):
            raise TorchLegacyFormatError(f"storage {t.storage.key!r} declared twice differently (tensor {name!r})")
    storages = _read_storages(memoryview(raw), f.tell(), keys, refs)
    return {str(name): _materialize(str(name), t, storages) for name, t in obj.items()}


def load_legacy_state_dict(source: str | os.PathLike | BinaryIO) -> dict[str, np.ndarray]:
    """Read a legacy-format PyTorch state dict (a path or a binary file object) as name -> array.

    Arrays are C-contiguous copies in the tensors' logical (PyTorch) layout and dtype.
    Raises ``TorchLegacyFormatError`` naming the source for anything it cannot read safely.
    """
    if isinstance(source, str | os.PathLike):
        label = os.fspath(source)
        with open(source, "rb") as fh:
            raw = fh.read()
    else:
        label = str(getattr(source, "name", "<stream>"))
        raw = source.read()
    try:
        return _parse(raw)
    except TorchLegacyFormatError as e:
        raise TorchLegacyFormatError(f"{label}: {e}") from e

"""SavedModel helpers shared by the local predictor, the stand-in server and warmup:
TF Serving's version-directory layout, the keyclass metadata file and signature maps."""

from __future__ import annotations

import json
import os

import tensorflow as tf
from tensorflow.core.framework import tensor_shape_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

METADATA_FILE = "keyclass.json"  # <saved_model_dir>/assets.extra/keyclass.json


def is_saved_model(path: str) -> bool:
    return tf.io.gfile.exists(os.path.join(path, "saved_model.pb"))


def version_dirs(base_dir: str) -> dict[int, str]:
    """``{version: path}`` for the integer subdirectories holding a SavedModel, as TF
    Serving sees them (hidden or non-numeric names, e.g. a pusher's temp dir, ignored)."""
    if not tf.io.gfile.isdir(base_dir):
        return {}
    out = {}
    for name in tf.io.gfile.listdir(base_dir):
        name = name.rstrip("/")
        if name.isdigit() and is_saved_model(os.path.join(base_dir, name)):
            out[int(name)] = os.path.join(base_dir, name)
    return out


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


def read_keyclass_metadata(saved_model_dir: str) -> dict | None:
    """The ``assets.extra/keyclass.json`` the export writes, or None when absent."""
    path = os.path.join(saved_model_dir, "assets.extra", METADATA_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.loads(f.read())


def _tensor_info(spec: tf.TensorSpec, name: str) -> meta_graph_pb2.TensorInfo:
    shape = tensor_shape_pb2.TensorShapeProto()
    if spec.shape.rank is None:
        shape.unknown_rank = True
    else:
        for d in spec.shape.as_list():
            shape.dim.add(size=-1 if d is None else d)
    return meta_graph_pb2.TensorInfo(name=name, dtype=spec.dtype.as_datatype_enum, tensor_shape=shape)


def signature_def_map(loaded) -> get_model_metadata_pb2.SignatureDefMap:
    """The loaded SavedModel's signatures as the SignatureDefMap TF Serving's
    GetModelMetadata returns (tensor names are indicative, not the graph's)."""
    out = get_model_metadata_pb2.SignatureDefMap()
    for key, fn in loaded.signatures.items():
        sig = out.signature_def[key]
        sig.method_name = "tensorflow/serving/predict"
        for name, spec in fn.structured_input_signature[1].items():
            sig.inputs[name].CopyFrom(_tensor_info(spec, f"{key}_{name}:0"))
        for i, (name, spec) in enumerate(sorted(fn.structured_outputs.items())):
            sig.outputs[name].CopyFrom(_tensor_info(spec, f"StatefulPartitionedCall:{i}"))
    return out


def signature_map_to_dict(sig_map: get_model_metadata_pb2.SignatureDefMap) -> dict[str, dict]:
    """``{signature: {"inputs": {name: {"dtype", "shape"}}, "outputs": {...}}}`` with
    dtype names as TF Serving reports them (``DT_STRING``) and -1 for unknown dims."""

    def tensors(infos) -> dict[str, dict]:
        return {
            name: {
                "dtype": types_pb2.DataType.Name(info.dtype),
                "shape": None if info.tensor_shape.unknown_rank else [int(d.size) for d in info.tensor_shape.dim],
            }
            for name, info in sorted(infos.items())
        }

    return {
        key: {"inputs": tensors(sig.inputs), "outputs": tensors(sig.outputs)}
        for key, sig in sorted(sig_map.signature_def.items())
        if not key.startswith("__")  # TF Serving lists "__saved_model_init_op"; it is not callable
    }

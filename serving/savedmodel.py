"""SavedModel signature maps as TF Serving's GetModelMetadata reports them (the layout
of a pushed model, its versions and metadata file live in :mod:`model_layout`)."""

from __future__ import annotations

import tensorflow as tf
from tensorflow.core.framework import tensor_shape_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import get_model_metadata_pb2


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

"""TF Serving's BatchingParameters and MonitoringConfig messages for the config tests.

The tensorflow-serving-api 2.16.1 wheel ships only the API protos and
model_server_config_pb2: ``monitoring_config_pb2`` and ``session_bundle_config_pb2``
are not in it. When they are importable they are used; otherwise the messages are
built here from the upstream definitions (tensorflow/serving:
tensorflow_serving/config/monitoring_config.proto and
tensorflow_serving/servables/tensorflow/session_bundle_config.proto, BatchingParameters'
long-standing fields), with the same package, names, types and field numbers, so
text_format parses the files exactly as the model server's parser would for them.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

_F = descriptor_pb2.FieldDescriptorProto


def _build():
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    f = descriptor_pb2.FileDescriptorProto(
        name="keyclass_tests/tfs_configs.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    prom = f.message_type.add(name="PrometheusConfig")
    prom.field.add(name="enable", number=1, type=_F.TYPE_BOOL, label=_F.LABEL_OPTIONAL)
    prom.field.add(name="path", number=2, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
    mon = f.message_type.add(name="MonitoringConfig")
    mon.field.add(
        name="prometheus_config",
        number=1,
        type=_F.TYPE_MESSAGE,
        type_name=".tensorflow.serving.PrometheusConfig",
        label=_F.LABEL_OPTIONAL,
    )
    bp = f.message_type.add(name="BatchingParameters")
    for name, number, wrapper in [
        ("max_batch_size", 1, "Int64Value"),
        ("batch_timeout_micros", 2, "Int64Value"),
        ("max_enqueued_batches", 3, "Int64Value"),
        ("num_batch_threads", 4, "Int64Value"),
        ("thread_pool_name", 5, "StringValue"),
    ]:
        bp.field.add(
            name=name,
            number=number,
            type=_F.TYPE_MESSAGE,
            type_name=f".google.protobuf.{wrapper}",
            label=_F.LABEL_OPTIONAL,
        )
    bp.field.add(name="allowed_batch_sizes", number=6, type=_F.TYPE_INT64, label=_F.LABEL_REPEATED)
    bp.field.add(name="pad_variable_length_inputs", number=7, type=_F.TYPE_BOOL, label=_F.LABEL_OPTIONAL)
    pool.Add(f)
    # protobuf 4.21+ has GetMessageClass; older releases only the MessageFactory method.
    get = getattr(message_factory, "GetMessageClass", None) or message_factory.MessageFactory(pool).GetPrototype
    return (
        get(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")),
        get(pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig")),
    )


try:
    from tensorflow_serving.config.monitoring_config_pb2 import MonitoringConfig
    from tensorflow_serving.servables.tensorflow.session_bundle_config_pb2 import BatchingParameters

    FROM_WHEEL = True
except ImportError:
    BatchingParameters, MonitoringConfig = _build()
    FROM_WHEEL = False

"""Warmup requests: a readable PredictionLog TFRecord whose every request fits a signature
of the exported model and runs, as TF Serving replays them at load time."""

from __future__ import annotations

import shutil

import pytest
import tensorflow as tf

from keyclass.serving.model_layout import WARMUP_FILE
from keyclass.serving.warmup import read_warmup_requests, write_warmup_requests


@pytest.fixture()
def model_copy(exported_model, tmp_path):
    path = tmp_path / "1"
    shutil.copytree(exported_model.path, path)
    return str(path)


def test_every_warmup_request_fits_and_runs_a_signature(model_copy, images):
    path = write_warmup_requests(model_copy, images[:3], class_count=3)
    assert path.endswith(f"assets.extra/{WARMUP_FILE}")
    logs = read_warmup_requests(model_copy)
    loaded = tf.saved_model.load(model_copy)
    seen = set()
    for log in logs:
        assert log.WhichOneof("log_type") == "predict_log"
        request = log.predict_log.request
        fn = loaded.signatures[request.model_spec.signature_name]
        specs = fn.structured_input_signature[1]
        assert set(request.inputs) == set(specs)
        inputs = {}
        for name, proto in request.inputs.items():
            assert tf.dtypes.as_dtype(proto.dtype) == specs[name].dtype
            inputs[name] = tf.constant(tf.make_ndarray(proto), dtype=specs[name].dtype)
        sizes = {int(t.shape[0]) for t in inputs.values()}
        assert sizes in ({1}, {3})
        out = fn(**inputs)
        assert out["probabilities"].shape[0] in (1, 3)
        seen.add((request.model_spec.signature_name, sizes.pop()))
    sigs = ("serving_default", "grad_cam", "grad_cam_class", "serving_tf_example")
    assert seen == {(s, n) for s in sigs for n in (1, 3)}
    cam_class = [log for log in logs if log.predict_log.request.model_spec.signature_name == "grad_cam_class"]
    assert tf.make_ndarray(cam_class[-1].predict_log.request.inputs["class_index"]).tolist() == [0, 1, 2]


def test_warmup_refuses_what_cannot_work(model_copy, images):
    with pytest.raises(ValueError, match="at least one"):
        write_warmup_requests(model_copy, [], 3)
    with pytest.raises(ValueError, match="class_count"):
        write_warmup_requests(model_copy, images, 0)

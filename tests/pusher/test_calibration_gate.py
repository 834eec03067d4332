"""The Pusher refuses a blessed model whose calibration failed: a non-finite temperature,
or ECE after scaling worse than before. Executor.Do on real TFX artifacts in a temp dir."""

from __future__ import annotations

import json
import os

import pytest
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import path_utils

from keyclass.components.pusher import executor
from keyclass.serving import model_layout

GOOD = {"temperature": 1.6, "ece_before": 0.061, "ece_after": 0.012, "bins": 15, "images": 400, "confidence": 0.9}


def _do(tmp_path, calibration: dict | None):
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "trainer" / "model")
    serving = path_utils.serving_model_dir(model.uri)
    os.makedirs(os.path.join(serving, "variables"))
    with open(os.path.join(serving, "saved_model.pb"), "wb") as f:
        f.write(b"pb")
    meta = {"classes": ["cat", "dog"]}
    if calibration is not None:
        meta["calibration"] = calibration
    model_layout.write_metadata(serving, meta)
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", 1)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    base = tmp_path / "models" / "cat-dog"
    executor.Executor().Do(
        {standard_component_specs.MODEL_KEY: [model], standard_component_specs.MODEL_BLESSING_KEY: [blessing]},
        {standard_component_specs.PUSHED_MODEL_KEY: [pushed]},
        {
            standard_component_specs.PUSH_DESTINATION_KEY: json.dumps({"filesystem": {"base_directory": str(base)}}),
            standard_component_specs.CUSTOM_CONFIG_KEY: "null",
        },
    )
    return pushed, base


@pytest.mark.parametrize("calibration", [GOOD, {**GOOD, "ece_after": 0.07, "ece_change_lower_bound": -0.01}])
def test_a_well_calibrated_blessed_model_is_pushed(tmp_path, calibration):
    """Also when ECE after is higher by an amount the bootstrap says is sampling noise."""
    pushed, base = _do(tmp_path, calibration)
    assert pushed.get_int_custom_property("pushed") == 1
    assert len(model_layout.version_dirs(str(base))) == 1


@pytest.mark.parametrize(
    "calibration, why",
    [
        ({**GOOD, "temperature": float("nan")}, "temperature is not a finite positive number"),
        ({**GOOD, "temperature": None}, "temperature is not a finite positive number"),
        ({**GOOD, "ece_after": 0.07}, "ECE after temperature scaling (0.0700) is worse than before (0.0610)"),
        ({**GOOD, "ece_after": 0.07, "ece_change_lower_bound": 0.002}, "by more than sampling noise"),
        (None, "no calibration record"),
    ],
)
def test_a_failed_calibration_is_not_pushed(tmp_path, calibration, why):
    pushed, base = _do(tmp_path, calibration)
    assert pushed.get_int_custom_property("pushed") == 0
    assert why in pushed.get_string_custom_property(executor.NOT_PUSHED_REASON)
    assert not base.exists() or model_layout.version_dirs(str(base)) == {}

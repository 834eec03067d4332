"""The Trainer's calibration figures label what was measured: a model with no error on
the held-out images has AURC 0, which the risk-coverage legend must print as 0, not NaN."""

from __future__ import annotations

import hashlib
from unittest import mock

import numpy as np
from matplotlib.axes import Axes

from keyclass.components.trainer import calibrate


def _perfect(n: int = 400, classes: int = 3):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, n)
    logits = rng.normal(0, 1, (n, classes))
    logits[np.arange(n), labels] += 8.0  # always right, confidently
    keys = np.array([hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)])
    return logits[:100], labels[:100], logits[100:], labels[100:], keys[100:]


def test_a_perfect_model_is_labelled_aurc_zero(tmp_path):
    result = calibrate.calibrate(*_perfect())
    assert result["report"]["aurc"] == 0.0
    labels: list[str] = []
    plot = Axes.plot

    def spy(self, *args, **kwargs):
        labels.append(str(kwargs.get("label", "")))
        return plot(self, *args, **kwargs)

    with mock.patch.object(Axes, "plot", spy):
        calibrate.write_reports(result, str(tmp_path))
    risk = [label for label in labels if label.startswith("selective risk")]
    assert risk == ["selective risk (AURC 0.0000)"], labels
    assert (tmp_path / "risk_coverage.png").stat().st_size > 0

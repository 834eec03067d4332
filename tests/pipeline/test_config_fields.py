"""Every setting refuses a bad value, generated from the configuration's dataclasses.

The cases come from walking ``dataclasses.fields`` of ``KeyclassConfig`` and every
section in it, so a setting added later is tested the moment it exists: a number gets
NaN, infinities, a negative value, zero and an absurd size automatically (zero only
where :data:`ZERO_IS_VALID` does not say why zero means something); text, lists and
mappings need an entry in :data:`BAD_VALUES`; a setting that accepts any value of its
type must be listed in :data:`ACCEPTS_ANY` with the reason. Each bad value must make
``load_config`` raise ConfigError naming the setting, and the command line exit 2
before any work.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from unittest import mock

import pytest

from keyclass.pipeline import commands
from keyclass.pipeline.cli import main
from keyclass.pipeline.config import ConfigError, KeyclassConfig, load_config

NAN, INF = math.nan, math.inf

# Settings whose every value of their type is meaningful.
ACCEPTS_ANY = {
    "crawl.allow_loopback": "a switch: both values are meaningful",
    "crawl.snapshot": "a free label: any text names a crawl snapshot",
    "clean.balance": "a switch",
    "clean.curate": "a switch (off: the pHash rule alone, said loudly; tested in test_curation.py)",
    "train.augment": "a switch",
    "train.cache_features": "a switch (its clash with train.augment is tested in test_config.py)",
    "train.shuffle_labels": "a switch (a test hook)",
    "predict.overwrite": "a switch (what it may replace is results_dir's rule, tested in test_results_dir.py)",
    "predict.faithfulness": "a switch (off by default: it costs about 4 x steps forward passes per kept image)",
}

# Numbers for which zero has a meaning (the generic cases then skip zero).
ZERO_IS_VALID = {
    "crawl.retries": "no retry",
    "crawl.backoff_s": "retry at once",
    "crawl.per_host_delay_s": "no per-host delay",
    "clean.near_duplicate_distance": "only identical pHashes are near duplicates",
    "clean.balance_tolerance": "exact balance",
    "clean.near_duplicate_close_distance": "every candidate needs clean.near_duplicate_far_min_cosine",
    "clean.max_label_issue_fraction": "label issues are found and reported, none pruned",
    "clean.direct_threads_up_to": "never threads: the DirectRunner's configured running mode for every job",
    "train.early_stopping_patience": "stop at the first epoch without improvement",
    "train.fine_tune_epochs": "skip fine-tuning",
    "train.seed": "a seed like any other",
    "gate.max_loss_increase": "no worse than the latest blessed model",
    "predict.version": "the newest version",
    "predict.target_precision": "off: the threshold -t decides",
    "runner.direct_num_workers": "all cores",
}

# Bad values for text, lists and mappings (numbers get generic ones, plus these).
BAD_VALUES: dict[str, list] = {
    "pipeline_name": ["../../x", "a/b", "..", " "],
    "crawl.classes": [["cat"], ["cat", "cat"], ["a/b", "c"], ["cat", " "]],
    "crawl.sources": [[], ["altavista"], ["urls:"], ["bing:x"]],
    "crawl.search_url": [{"bing": "ftp://mirror"}, {"yahoo": "http://x"}],
    "train.backbone": ["vgg16", ""],
    "train.weights": ["/no/such/weights.h5", ""],
    "predict.results": ["", "  "],
    "predict.server": ["ftp://h:1", "localhost:8500", "grpc://"],
    "predict.model_name": ["../x", "a b", ".."],
    "predict.label": ["../stable", "a b"],
    "predict.ca_file": ["/no/such/ca.pem"],
    "runner.home": ["", " "],
    "runner.beam_runner": ["spark", ""],
    "runner.direct_running_mode": ["multi_processes", ""],
    "runner.extra_beam_args": [["oops"], ["-x"]],
    "runner.image": ["", "has space:1"],
    "runner.cloud_pipeline_root": ["relative/dir", "gs:/x"],
    "runner.cloud_serving_dir": ["relative/dir"],
    "runner.gcp_project": ["My Project!"],
    "runner.gcp_region": ["", "nowhere 1"],
    "runner.dataflow_temp_location": ["/tmp/x", "s3://b"],
    "runner.flink_master": ["no-port", ""],
    "runner.beam_job_endpoint": ["no-port", ""],
}

ABSURD_INT = 10**15


def leaf_fields(cls=KeyclassConfig, prefix: str = "") -> dict[str, object]:
    """Dotted name -> type of every setting, sections walked recursively."""
    out: dict[str, object] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.update(leaf_fields(tp, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = tp
    return out


def bad_values(key: str, tp) -> list:
    values = list(BAD_VALUES.get(key, []))
    zero = [] if key in ZERO_IS_VALID else [0]
    if tp is float:
        values += [NAN, INF, -INF, -1.0, 1e300] + [float(z) for z in zero]
    elif tp is int:
        values += [-1, ABSURD_INT] + zero
    return values


FIELDS = leaf_fields()
CASES = [(key, value) for key, tp in FIELDS.items() for value in bad_values(key, tp)]


def test_every_setting_has_bad_values_or_a_reason_to_accept_any():
    missing = [k for k, tp in FIELDS.items() if not bad_values(k, tp) and k not in ACCEPTS_ANY]
    assert not missing, f"give these settings bad values in BAD_VALUES or a reason in ACCEPTS_ANY: {missing}"
    stale = [k for k in (*ACCEPTS_ANY, *ZERO_IS_VALID, *BAD_VALUES) if k not in FIELDS]
    assert not stale, f"no such settings any more: {stale}"
    assert all(FIELDS[k] is bool for k in ACCEPTS_ANY if k != "crawl.snapshot")


def test_defaults_are_valid():
    load_config(overrides={"crawl.classes": "cat,dog"})


@pytest.mark.parametrize("key, value", CASES, ids=[f"{k}={v!r}" for k, v in CASES])
def test_a_bad_value_is_refused_naming_the_setting(key, value):
    with pytest.raises(ConfigError) as e:
        load_config(overrides={"crawl.classes": "cat,dog", key: value})
    assert key in str(e.value), str(e.value)


def _as_flag(value) -> str:
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _survives_text(value) -> bool:
    """Whether --set KEY=VALUE carries ``value`` unchanged (the CLI strips blanks and
    splits lists at commas)."""
    if isinstance(value, str):
        return value == value.strip()
    if isinstance(value, (list, dict)):
        return bool(value) and all(str(x) == str(x).strip() and str(x) and " " not in str(x) for x in value)
    return True


CLI_CASES = [(k, v) for k, v in CASES if _survives_text(v)]


@pytest.mark.parametrize("key, value", CLI_CASES, ids=[f"{k}={v!r}" for k, v in CLI_CASES])
def test_the_cli_exits_2_before_any_work(capsys, tmp_path, monkeypatch, key, value):
    monkeypatch.setenv("KEYCLASS_HOME", str(tmp_path / "home"))
    with mock.patch.object(commands, "train", side_effect=AssertionError("work started")):
        code = main(["train", "-c", "cat,dog", "--set", f"{key}={_as_flag(value)}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert key in err
    assert not (tmp_path / "home").exists()

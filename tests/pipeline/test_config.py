"""The one configuration: defaults, file, overrides, and refusals before any work."""

import pytest

from keyclass.pipeline.config import ConfigError, class_set_id, load_config, parse_classes


def test_defaults_match_the_seed_design():
    cfg = load_config(overrides={"crawl.classes": "cat,dog"})
    assert cfg.crawl.max_images_per_class == 1000
    assert cfg.image_size == 224 and cfg.clean.min_width == 224
    assert cfg.predict.threshold == 0.99
    assert cfg.train.fine_tune_learning_rate == 1e-5
    assert cfg.clean.balance is True and cfg.clean.eval_fraction == 0.2


def test_file_then_overrides(tmp_path):
    f = tmp_path / "k.yaml"
    f.write_text(
        "crawl:\n  classes: [Dog, cat]\n  max_images_per_class: 50\ntrain:\n  backbone: tiny\n  max_epochs: 3\n"
    )
    cfg = load_config(f, {"train.max_epochs": "7", "predict.threshold": 0.5})
    assert cfg.crawl.classes == ["cat", "dog"]
    assert cfg.crawl.max_images_per_class == 50
    assert cfg.train.backbone == "tiny" and cfg.train.max_epochs == 7
    assert cfg.predict.threshold == 0.5


def test_class_names_normalised_and_order_free():
    assert parse_classes(" Cat ,dog") == parse_classes(["DOG", "cat"]) == ["cat", "dog"]
    assert parse_classes("golden  retriever, pug") == ["golden retriever", "pug"]
    assert class_set_id(["dog", "Cat"]) == class_set_id(["cat", "dog"])
    assert class_set_id(["cat", "dog"]) != class_set_id(["cat", "dogs"])


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"crawl.classes": "cat"}, "at least two classes"),
        ({"crawl.classes": "cat,,dog"}, "empty class name"),
        ({"crawl.classes": "cat,Cat"}, "more than once"),
        ({"crawl.classes": "cat,a/b"}, "path separators"),
        ({"crawl.sources": ["altavista"]}, "unknown source"),
        ({"crawl.sources": ["folder"]}, "needs a path"),
        ({"crawl.search_url": {"yahoo": "http://x"}}, "unknown engine"),
        ({"crawl.search_url": {"bing": "ftp://x"}}, "must be http"),
        ({"predict.threshold": 0}, "threshold"),
        ({"predict.threshold": 1.5}, "threshold"),
        ({"train.backbone": "vgg"}, "unknown 'vgg'"),
        ({"train.weights": "/no/such/file.h5"}, "neither imagenet"),
        ({"train.max_epochs": "three"}, "expected int"),
        ({"train.cache_features": True}, "needs train.augment off"),
        ({"predict.version": 3, "predict.label": "stable"}, "not both"),
        ({"predict.server": "localhost:8500"}, "grpc://"),
        ({"nonsense": 1}, "unknown setting 'nonsense'"),
        ({"runner.beam_runner": "spark"}, "unknown 'spark'"),
        ({"clean.near_duplicate_candidate_distance": 40}, "clean.near_duplicate_candidate_distance"),
        ({"clean.near_duplicate_min_cosine": 1.5}, "clean.near_duplicate_min_cosine"),
        ({"clean.label_issue_folds": 1}, "clean.label_issue_folds: must be a whole number from 2"),
        ({"clean.off_topic_p_value": 0}, "clean.off_topic_p_value"),
        ({"clean.max_label_issue_fraction": 1.2}, "clean.max_label_issue_fraction"),
    ],
)
def test_bad_settings_are_refused_with_the_name(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides={"crawl.classes": "cat,dog", **overrides})


def test_bad_config_file_is_named(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(f)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_beam_args_follow_the_runner():
    cfg = load_config(overrides={"runner.direct_num_workers": 2})
    assert "--direct_running_mode=multi_processing" in cfg.beam_pipeline_args()
    assert "--direct_num_workers=2" in cfg.beam_pipeline_args()
    cfg = load_config(overrides={"runner.beam_runner": "dataflow", "runner.gcp_project": "p"})
    assert "--runner=DataflowRunner" in cfg.beam_pipeline_args() and "--project=p" in cfg.beam_pipeline_args()
    cfg = load_config(overrides={"runner.beam_runner": "flink"})
    assert "--runner=FlinkRunner" in cfg.beam_pipeline_args()


def test_home_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KEYCLASS_HOME", str(tmp_path))
    cfg = load_config(overrides={"crawl.classes": "a,b"})
    assert cfg.home == tmp_path
    assert cfg.models_dir == tmp_path / "models"
    assert cfg.metadata_path == tmp_path / "metadata.sqlite"

"""The keyclass TFX pipeline as a pure factory.

ImageCrawler → ImageCleaner → StatisticsGen → SchemaGen → CurateSchema →
ExampleValidator → ValidationGate → Trainer → (latest blessed model resolver) →
Evaluator → AtomicPusher.

``create_pipeline`` takes every path and setting as an argument and reads no globals;
the local runner and the Kubeflow runner both call it with the same configuration.
"""

from __future__ import annotations

import tensorflow_data_validation as tfdv
import tensorflow_model_analysis as tfma
from tfx import v1 as tfx

from keyclass.components import layout
from keyclass.components.cleaner.component import ImageCleaner
from keyclass.components.cleaner.settings import CleanerSettings
from keyclass.components.crawler.component import ImageCrawler
from keyclass.components.pusher.component import AtomicPusher
from keyclass.components.trainer.module import trainer_custom_config
from keyclass.components.validation.component import CurateSchema, ValidationGate
from keyclass.pipeline.config import KeyclassConfig
from keyclass.serving import model_layout

TRAINER_RUN_FN = "keyclass.components.trainer.module.run_fn"

# Component ids, in pipeline order (tests and the Kubeflow runner read them).
INGESTION_IDS = (
    "ImageCrawler",
    "ImageCleaner",
    "StatisticsGen",
    "SchemaGen",
    "CurateSchema",
    "ExampleValidator",
    "ValidationGate",
)
TRAINING_IDS = ("Trainer", "latest_blessed_model_resolver", "Evaluator", "Pusher")

# What the terminal calls the steps (a line per stage): stage -> component ids, in order.
STAGES = (
    ("crawl", ("ImageCrawler",)),
    ("clean", ("ImageCleaner",)),
    ("validate", ("StatisticsGen", "SchemaGen", "CurateSchema", "ExampleValidator", "ValidationGate")),
    ("train", ("Trainer",)),
    ("evaluate", ("latest_blessed_model_resolver", "Evaluator")),
    ("push", ("Pusher",)),
)


def stages(ingestion_only: bool = False) -> list[tuple[str, tuple[str, ...]]]:
    """The stages of the pipeline :func:`create_pipeline` builds with ``ingestion_only``."""
    ids = set(INGESTION_IDS) | (set() if ingestion_only else set(TRAINING_IDS))
    return [(name, nodes) for name, nodes in STAGES if set(nodes) <= ids]


def eval_config(max_val_loss: float, max_loss_increase: float) -> tfma.EvalConfig:
    """Validation loss gates the model: an absolute bound and no worse than the latest
    blessed model by more than ``max_loss_increase``. Accuracy is reported too."""
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name=model_layout.SERVING_TF_EXAMPLE,
                label_key="label",
                # The gate judges the model's own validation loss: the uncalibrated
                # softmax (the temperature was fitted on this very split).
                prediction_key="raw_probabilities",
                preprocessing_function_names=[],
            )
        ],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    tfma.MetricConfig(class_name="SparseCategoricalAccuracy"),
                    tfma.MetricConfig(
                        class_name="SparseCategoricalCrossentropy",
                        threshold=tfma.MetricThreshold(
                            value_threshold=tfma.GenericValueThreshold(upper_bound={"value": max_val_loss}),
                            change_threshold=tfma.GenericChangeThreshold(
                                direction=tfma.MetricDirection.LOWER_IS_BETTER,
                                absolute={"value": max_loss_increase},
                            ),
                        ),
                    ),
                ]
            )
        ],
    )


def create_pipeline(
    *,
    pipeline_name: str,
    pipeline_root: str,
    serving_model_dir: str,
    config: KeyclassConfig,
    beam_pipeline_args: list[str],
    metadata_connection_config=None,
    ingestion_only: bool = False,
    enable_cache: bool = True,
    crawl_snapshot: tfx.dsl.experimental.RuntimeParameter | None = None,
) -> tfx.dsl.Pipeline:
    """Build the pipeline. ``serving_model_dir`` is ``<models>/<model_name>`` (pushed
    versions go below it). ``ingestion_only`` stops after the validation gate.
    ``crawl_snapshot`` replaces ``crawl.snapshot`` with a runtime parameter (Kubeflow)."""
    classes = config.classes
    classes_json = classes.to_json()

    crawler = ImageCrawler.from_config(config.crawl, snapshot=crawl_snapshot)
    cleaner = ImageCleaner.from_settings(
        raw_images=crawler.outputs["raw_images"],
        settings=CleanerSettings.create(
            classes, config.image_size, config.clean, backbone=config.train.backbone, weights=config.train.weights
        ),
    )
    statistics_gen = tfx.components.StatisticsGen(
        examples=cleaner.outputs["examples"],
        stats_options=tfdv.StatsOptions(enable_semantic_domain_stats=True),
    )
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    curate = CurateSchema(
        schema=schema_gen.outputs["schema"], statistics=statistics_gen.outputs["statistics"], classes_json=classes_json
    )
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=curate.outputs["curated_schema"]
    )
    gate = ValidationGate(
        examples=cleaner.outputs["examples"],
        statistics=statistics_gen.outputs["statistics"],
        anomalies=example_validator.outputs["anomalies"],
        classes_json=classes_json,
        balance_tolerance=float(config.clean.balance_tolerance),
        min_images_per_class=int(config.crawl.min_images_per_class),
    )
    components = [crawler, cleaner, statistics_gen, schema_gen, curate, example_validator, gate]

    if not ingestion_only:
        trainer = tfx.components.Trainer(
            run_fn=TRAINER_RUN_FN,
            examples=cleaner.outputs["examples"],
            schema=curate.outputs["curated_schema"],
            custom_config=trainer_custom_config(classes, config.image_size, config.train),
            train_args=tfx.proto.TrainArgs(splits=[layout.TRAIN_SPLIT]),
            eval_args=tfx.proto.EvalArgs(splits=[layout.EVAL_SPLIT]),
        )
        trainer.add_upstream_node(gate)
        resolver = tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
            model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
            model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
        ).with_id("latest_blessed_model_resolver")
        evaluator = tfx.components.Evaluator(
            examples=cleaner.outputs["examples"],
            model=trainer.outputs["model"],
            baseline_model=resolver.outputs["model"],
            eval_config=eval_config(config.gate.max_val_loss, config.gate.max_loss_increase),
            example_splits=[layout.EVAL_SPLIT],
        )
        pusher = AtomicPusher(
            model=trainer.outputs["model"],
            model_blessing=evaluator.outputs["blessing"],
            push_destination=tfx.proto.PushDestination(
                filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_model_dir)
            ),
        ).with_id("Pusher")
        components += [trainer, resolver, evaluator, pusher]

    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args,
    )

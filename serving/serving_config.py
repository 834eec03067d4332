"""TF Serving's ``models.config`` for what the Pusher really wrote.

TF Serving only lets a version label (``stable``, ``canary``) name a version it has
loaded, and its version policy decides what it loads. A file that pins example version
numbers serves nothing a push creates. :func:`serving_config` reads the versions that
exist under a model base directory (whole ones only, as :mod:`model_layout` sees them)
and writes a ``specific`` policy holding exactly the labelled versions, so every label
points at a version that exists and is loaded. Without labels it writes a ``latest``
policy: TF Serving then serves the newest push as soon as it appears (what the shipped
``serving/models.config`` does for the demo model).

``keyclass serving-config -c "cat,dog" --stable 1717171717 --canary 1717200000`` writes it
(the command line); roll out by pointing ``canary`` at a new push, then ``stable``.
"""

from __future__ import annotations

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from keyclass.serving import model_layout

LABELS = ("stable", "canary")
HEADER = """\
# TF Serving ModelServerConfig for keyclass, written by `keyclass serving-config`
# from the versions pushed under {models_dir}.
# base_path is where the server sees the model (docker-compose and k8s mount the models
# dir at /models). TF Serving re-reads this file every --model_config_file_poll_wait_seconds.
"""


class ServingConfigError(ValueError):
    """A label names a version that does not exist, or there is nothing to serve."""


def serving_config(
    model_name: str,
    models_dir: str,
    base_path: str = "/models",
    labels: dict[str, int | None] | None = None,
) -> str:
    """The text of a ``models.config`` serving ``model_name`` from ``models_dir``.

    ``labels`` maps ``stable``/``canary`` to a version (None: ``stable`` defaults to the
    newest pushed version; an absent or None ``canary`` is left out). With no label at
    all (``labels={}``) the policy is ``latest``. Raises ServingConfigError naming the
    versions that do exist when a label names another."""
    base_dir = model_layout.join(models_dir, model_name)
    versions = sorted(model_layout.version_dirs(base_dir))
    if not versions:
        raise ServingConfigError(f"no pushed versions of {model_name} under {models_dir}; train one first")
    chosen: dict[str, int] = {}
    for label, version in (labels if labels is not None else {"stable": None}).items():
        if label not in LABELS:
            raise ServingConfigError(f"unknown label {label!r}; use {' or '.join(LABELS)}")
        if version is None:
            if label != "stable":
                continue
            version = versions[-1]
        if version not in versions:
            raise ServingConfigError(
                f"--{label} {version}: no such pushed version of {model_name} (pushed: {', '.join(map(str, versions))})"
            )
        chosen[label] = int(version)

    cfg = model_server_config_pb2.ModelServerConfig()
    model = cfg.model_config_list.config.add()
    model.name = model_name
    model.base_path = f"{base_path.rstrip('/')}/{model_name}"
    model.model_platform = "tensorflow"
    if chosen:
        model.model_version_policy.specific.versions.extend(sorted(set(chosen.values())))
        for label in LABELS:
            if label in chosen:
                model.version_labels[label] = chosen[label]
    else:
        model.model_version_policy.latest.num_versions = 1
    return HEADER.format(models_dir=models_dir) + text_format.MessageToString(cfg)


def parse(text: str) -> model_server_config_pb2.ModelServerConfig:
    """A ``models.config`` text as TF Serving reads it."""
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def served_versions(config: model_server_config_pb2.ModelConfig, available: list[int]) -> list[int]:
    """The versions TF Serving loads for ``config`` out of ``available`` (its policy)."""
    available = sorted(available)
    policy = config.model_version_policy
    kind = policy.WhichOneof("policy_choice") or "latest"
    if kind == "all":
        return available
    if kind == "specific":
        return [v for v in available if v in set(policy.specific.versions)]
    return available[-(policy.latest.num_versions or 1) :]

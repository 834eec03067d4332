"""Pick a predictor for a server address, and a small command line to try one.

``make_predictor("grpc://host:8500", ...)`` → :class:`GrpcPredictor` (``grpcs://`` with TLS),
``make_predictor("http://host:8501", ...)`` → :class:`RestPredictor`,
``make_predictor("", saved_model_dir=...)`` → :class:`LocalPredictor`.

Command line (used by ``serving/smoke_test.sh``)::

    python -m keyclass.serving.predictor --server grpc://localhost:8500 --model NAME \\
        --signatures serving_default,grad_cam cat.jpg
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from keyclass.serving.grpc_client import GrpcPredictor
from keyclass.serving.local import LocalPredictor
from keyclass.serving.model_layout import GRAD_CAM_CLASS
from keyclass.serving.rest_client import RestPredictor
from keyclass.serving.types import Predictor, PredictorError, PredictResult

__all__ = ["GrpcPredictor", "LocalPredictor", "Predictor", "PredictResult", "RestPredictor", "make_predictor"]


def make_predictor(
    server: str,
    model_name: str = "",
    version: int | None = None,
    label: str | None = None,
    timeout_s: float = 30.0,
    saved_model_dir: str | None = None,
    *,
    classes: list[str] | None = None,
    retries: int = 3,
    ca_file: str | None = None,
) -> Predictor:
    """The predictor for ``server``: ``grpc://HOST:PORT``, ``grpcs://HOST:PORT`` (TLS),
    ``http(s)://HOST:PORT`` or "" for in-process. For a server, ``classes`` or
    ``saved_model_dir`` supply the class list (see :mod:`serving.remote`); in-process,
    ``saved_model_dir`` is the model. ``ca_file``: PEM roots for a TLS server."""
    version = int(version) if version else None
    label = label or None
    if not server:
        if not saved_model_dir:
            raise ValueError("in-process prediction needs saved_model_dir (a pushed model or version directory)")
        if label:
            raise ValueError(f"label {label!r}: version labels are a TF Serving feature; give a version or --server")
        return LocalPredictor(saved_model_dir, version=version, model_name=model_name or None)
    m = re.match(r"^(grpcs?|https?)://([^/]+)/?$", server)
    if not m:
        raise ValueError(f"server: use grpc(s)://HOST:PORT or http(s)://HOST:PORT, got {server!r}")
    common = dict(
        model_name=model_name,
        version=version,
        label=label,
        timeout_s=timeout_s,
        retries=retries,
        classes=classes,
        saved_model_dir=saved_model_dir,
    )
    if m.group(1) in ("grpc", "grpcs"):
        return GrpcPredictor(m.group(2), tls=m.group(1) == "grpcs", ca_file=ca_file, **common)
    return RestPredictor(server.rstrip("/"), ca_file=ca_file, **common)


def summarize(result: PredictResult) -> list[dict]:
    """One JSON-friendly row per image."""
    rows = []
    for i, name in enumerate(result.class_name):
        row = {"class_name": name, "class_id": int(result.class_id[i]), "confidence": float(result.confidence[i])}
        if result.raw_confidence is not None:
            row["raw_confidence"] = float(result.raw_confidence[i])
        if result.heatmap is not None:
            row["heatmap_shape"] = list(result.heatmap[i].shape)
            row["heatmap_max"] = float(result.heatmap[i].max())
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m keyclass.serving.predictor", description=__doc__.split("\n\n")[0])
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--server", default="", help="grpc://HOST:PORT, http://HOST:PORT or empty for in-process")
    p.add_argument("--model", default="", help="served model name")
    p.add_argument("--version", type=int, default=None)
    p.add_argument("--label", default=None)
    p.add_argument("--saved-model-dir", default=None)
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--ca-file", default=None, help="PEM CA certificates for grpcs:// or https:// servers")
    p.add_argument("--signatures", default="grad_cam", help="comma-separated signatures to call")
    p.add_argument("--class-index", type=int, default=0, help="class id for grad_cam_class")
    a = p.parse_args(argv)
    try:
        predictor = make_predictor(
            a.server, a.model, a.version, a.label, a.timeout, a.saved_model_dir, ca_file=a.ca_file
        )
        images = [Path(f).read_bytes() for f in a.images]
        meta = predictor.metadata()
        report: dict = {
            "status": predictor.status(),
            "version": meta["version"],
            "signatures": sorted(meta["signatures"]),
            "predictions": {},
        }
        for sig in [s.strip() for s in a.signatures.split(",") if s.strip()]:
            idx = [a.class_index] * len(images) if sig == GRAD_CAM_CLASS else None
            report["predictions"][sig] = summarize(predictor.predict(images, signature=sig, class_index=idx))
    except (PredictorError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

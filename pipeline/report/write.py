"""``write_report``: gather, draw, render and write one HTML file, atomically.

It takes what a run left as arguments (the pipeline run read from ML Metadata, the
model, the TFMA metrics, the results folder); ``keyclass.pipeline.run_report`` finds
them. A command's report folder also gets ``run.json`` (:data:`gather.RUN_FILE`): the
configuration, the settings that differ from the defaults, the model and the inputs,
so that a later ``keyclass report`` of the same run shows them too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

from keyclass.components.errors import ConfigError
from keyclass.pipeline.report import gather, render, thumbs

# Every report's head carries this (templates/report.html.j2): the one kind of existing
# file a report may replace.
GENERATOR_MARK = '<meta name="generator" content="keyclass'


def check_report_path(path: str | os.PathLike) -> None:
    """Refuse (ConfigError) to write a report over anything keyclass did not write: a
    folder, or a file that is not a keyclass report. Nothing the user owns is replaced."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"--out {path}: is a folder; name the HTML file to write")
    if path.exists() or path.is_symlink():
        try:
            with open(path, "rb") as f:
                head = f.read(4096).decode("utf-8", "replace")
        except OSError as e:
            raise ConfigError(f"--out {path}: exists and cannot be read ({e.strerror}); choose another file") from None
        if path.is_symlink() or not path.is_file() or GENERATOR_MARK not in head:
            raise ConfigError(
                f"--out {path}: exists and is not a keyclass report; keyclass replaces only its own "
                "reports, so choose another file"
            )


@dataclasses.dataclass
class ReportResult:
    path: Path
    seconds: float
    bytes: int
    run_id: str


def heatmap_overlays(data: gather.ReportData, predictor, image_size: int | None) -> dict[str, str]:
    """Grad-CAM thumbnails for gallery items predict kept no heatmap of (the abstained),
    computed with the same model, through its ``grad_cam`` signature. ``predictor`` is
    a predictor, or a function that makes one (called only when there is work)."""
    if predictor is None or data.gallery is None or not image_size:
        return {}
    from keyclass.pipeline.predict import visualize
    from keyclass.pipeline.predict.run import default_loader

    items = [it for gc in data.gallery.classes for it in gc.abstained + gc.wrong + gc.correct]
    todo = {it.file: it.original for it in items if not it.overlay and it.original}
    if not todo:
        return {}
    load = default_loader(image_size)
    loaded = [(f, load(Path(p))) for f, p in todo.items()]
    loaded = [(f, item) for f, item in loaded if item.error is None]
    if not loaded:
        return {}
    if callable(predictor) and not hasattr(predictor, "predict"):
        predictor = predictor()
    result = predictor.predict([item.model_input for _, item in loaded], signature="grad_cam")
    out = {}
    for (f, item), heat in zip(loaded, result.heatmap, strict=True):
        img = item.image
        out[f] = thumbs.image_uri(visualize.overlay(img, visualize.upsample(heat, img.size)), render.GALLERY_SIDE)
    return out


def write_report(
    path: str | os.PathLike,
    *,
    classes: list[str],
    command: str,
    run=None,
    model: gather.ModelInfo | None = None,
    results_dir: str = "",
    invocation: dict | None = None,
    eval_metrics: dict | None = None,
    predictor=None,
    image_size: int | None = None,
    record: bool = False,
) -> ReportResult:
    """Write the report of ``run`` (a ``metadata.PipelineRun`` or None) and the results
    folder to ``path``; with ``record``, ``invocation`` is written beside it as run.json."""
    t0 = time.perf_counter()
    data = gather.gather(
        classes=classes,
        command=command,
        run=run,
        model=model,
        results_dir=results_dir,
        invocation=invocation,
        eval_metrics=eval_metrics,
    )
    size = (model.metadata.get("image_size") if model else None) or image_size
    overlays = heatmap_overlays(data, predictor, size)
    html = render.render_html(render.build_view(data, overlays))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
    if record:
        rec = {
            **(invocation or {}),
            "pipeline_name": run.pipeline_name if run else "",
            "run_id": run.run_id if run else "",
        }
        (path.parent / gather.RUN_FILE).write_text(json.dumps(rec, indent=2, sort_keys=True, default=str))
    return ReportResult(path, time.perf_counter() - t0, path.stat().st_size, run.run_id if run else "")

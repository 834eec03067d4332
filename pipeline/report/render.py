"""The report's render layer: gathered data + figures + thumbnails -> one HTML string.

The HTML comes only from the Jinja2 templates under ``templates/`` (package data), with
autoescaping on; Python builds no markup. :func:`build_view` draws the figures and
makes the thumbnails the templates need; :func:`render_html` fills the templates.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from keyclass.pipeline.report import figures, thumbs
from keyclass.pipeline.report.gather import SECTIONS, ReportData

TEMPLATES = Path(__file__).resolve().parent / "templates"
TEMPLATE = "report.html.j2"
FUNNEL_SIDE = 80  # funnel tiles
GALLERY_SIDE = 112  # Grad-CAM gallery cards


def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html", "j2"], default_for_string=True, default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _kpis(d: ReportData) -> list[dict]:
    """The numbers at the top of the page, each with a tone."""
    out = []
    if d.lineage.error:
        out.append({"value": "failed", "label": f"the {d.lineage.command} command", "tone": "bad"})
    if d.funnel:
        t = d.funnel.totals
        found = t.get("found") or sum((t.get("outcomes") or {}).values())
        kept = (t.get("outcomes") or {}).get("kept", 0)
        out.append({"value": f"{kept} / {found}", "label": "crawled images kept for training", "tone": ""})
    if d.data and d.data.gate is not None:
        ok = d.data.gate.get("ok")
        out.append(
            {"value": "passed" if ok else "rejected", "label": "validation gate", "tone": "good" if ok else "bad"}
        )
    if d.training:
        acc = next((p.best_val_accuracy for p in d.training.phases if p.name == d.training.kept), None)
        if acc is not None:
            out.append({"value": f"{acc:.1%}", "label": f"validation accuracy ({d.training.kept})", "tone": ""})
    if d.gate and d.gate.blessed is not None:
        out.append(
            {
                "value": "blessed" if d.gate.blessed else "not blessed",
                "label": "pushed" if d.gate.pushed else "not pushed",
                "tone": "good" if d.gate.blessed else "bad",
            }
        )
    if d.prediction:
        s = d.prediction.summary
        if s.get("truth_known"):
            out.append({"value": f"{s['table']['threshold_accuracy']:.1%}", "label": "threshold accuracy", "tone": ""})
        if s.get("predicted"):
            out.append(
                {
                    "value": f"{s['kept'] / s['predicted']:.0%}",
                    "label": f"kept at confidence ≥ {d.prediction.threshold:g}",
                    "tone": "",
                }
            )
    if d.gallery and d.gallery.faithfulness:
        f = d.gallery.faithfulness
        good = f["deletion_auc"] < f["random_deletion_auc"] and f["insertion_auc"] > f["random_insertion_auc"]
        out.append(
            {
                "value": f"{f['deletion_wins']:.0%} / {f['insertion_wins']:.0%}",
                "label": "heatmaps beating random (deletion / insertion)",
                "tone": "good" if good else "bad",
            }
        )
    return out


def funnel_images(d: ReportData) -> list[str]:
    if not d.funnel:
        return []
    paths = []
    for c in d.funnel.classes:
        for s in c.kept + [s for g in c.groups for s in g.samples]:
            paths += [p for p in (s.image, s.pair) if p]
    return paths


def build_view(d: ReportData, overlays: dict[str, str] | None = None) -> dict:
    """Everything the templates need: the data, figures and thumbnails as data URIs.

    ``overlays`` maps gallery files to Grad-CAM thumbnails already made (e.g. heatmaps
    computed for abstained predictions); the rest come from the overlays predict wrote,
    or, with no heatmap at all, from the predicted file itself (``originals``).
    """
    img = thumbs.thumbnail_uris(funnel_images(d), FUNNEL_SIDE)
    fig: dict = {"trainer_calibration": {}}
    if d.training:
        fig["training"] = figures.training_curves(d.training.history)
    if d.calibration:
        fig["trainer_calibration"] = {
            name: uri
            for name, path in d.calibration.trainer_figures.items()
            if (uri := thumbs.figure_file_uri(path)) is not None
        }
        if d.calibration.points:
            fig["reliability"] = figures.reliability_diagram(d.calibration.points)
            fig["risk_coverage"] = figures.risk_coverage_curve(d.calibration.points, d.calibration.threshold)
    heat = dict(overlays or {})
    plain: dict[str, str | None] = {}
    if d.gallery:
        items = [it for gc in d.gallery.classes for it in gc.correct + gc.wrong + gc.abstained]
        todo = {it.file: it for it in items if it.file not in heat}
        made = thumbs.thumbnail_uris([it.overlay or it.original for it in todo.values()], GALLERY_SIDE)
        for f, it in todo.items():
            if it.overlay:
                heat[f] = made.get(it.overlay)
            elif it.original:
                plain[f] = made.get(it.original)
        if d.prediction and d.gallery.faithfulness:
            scores = [r["faithfulness"] for r in d.prediction.records if r.get("faithfulness")]
            fig["faithfulness"] = figures.faithfulness_scatter(scores)
    return {
        "d": d,
        "sections": SECTIONS,
        "kpis": _kpis(d),
        "img": img,
        "fig": fig,
        "overlays": {k: v for k, v in heat.items() if v},
        "originals": {k: v for k, v in plain.items() if v},
        "max_side": thumbs.MAX_SIDE,
    }


def render_html(view: dict) -> str:
    return environment().get_template(TEMPLATE).render(**view)

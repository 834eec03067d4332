"""The gate and push section: the Evaluator's recorded ``eval_config`` thresholds, its
metrics against the baseline, the blessing, and the Pusher's ``pushed_model``.
"""

from __future__ import annotations

import json

from keyclass.pipeline.report.gather.model import GateResult, MetricRow


def _thresholds(eval_config_json: str) -> dict[str, dict]:
    """Metric name -> its value and change thresholds, from the Evaluator's recorded
    ``eval_config`` (the thresholds that run really used)."""
    try:
        cfg = json.loads(eval_config_json or "{}")
    except ValueError:
        return {}
    out = {}
    for spec in cfg.get("metrics_specs") or []:
        for m in spec.get("metrics") or []:
            t = m.get("threshold") or {}
            if t:
                out[_snake(m.get("class_name", ""))] = {
                    **(t.get("value_threshold") or {}),
                    **{f"change_{k}": v for k, v in (t.get("change_threshold") or {}).items()},
                }
    return out


def _snake(name: str) -> str:
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _threshold_text(t: dict) -> str:
    parts = []
    if "upper_bound" in t:
        parts.append(f"≤ {t['upper_bound']:g}")
    if "lower_bound" in t:
        parts.append(f"≥ {t['lower_bound']:g}")
    if "change_direction" in t:
        sign = "+" if t["change_direction"] == "LOWER_IS_BETTER" else "−"
        parts.append(f"baseline {sign} {t.get('change_absolute', 0):g}")
    return " and ".join(parts)


def _passes(t: dict, cand: float | None, base: float | None) -> bool | None:
    """Whether ``cand`` meets the thresholds (the change one only against a baseline)."""
    if cand is None or not t:
        return None
    ok = True
    if "upper_bound" in t:
        ok &= cand <= t["upper_bound"]
    if "lower_bound" in t:
        ok &= cand >= t["lower_bound"]
    if "change_direction" in t and base is not None:
        allowed = float(t.get("change_absolute", 0))
        ok &= (cand - base <= allowed) if t["change_direction"] == "LOWER_IS_BETTER" else (base - cand <= allowed)
    return bool(ok)


def gather_gate(run, metrics: dict | None = None) -> GateResult | None:
    """The Evaluator's metrics against the latest blessed model and the thresholds, the
    blessing, and the push. ``metrics`` is TFMA's overall-slice metrics (candidate values
    and ``*_diff`` against the baseline), as ``local_runner.read_eval_metrics`` reads."""
    if run is None or "Evaluator" not in run.nodes:
        return None
    ev = run.nodes["Evaluator"]
    metrics = metrics or {}
    thresholds = _thresholds(str(ev.parameters.get("eval_config") or ""))
    baseline_arts = ev.inputs.get("baseline_model") or []
    rows = []
    for name in sorted(k for k in metrics if not k.endswith("_diff")):
        cand = metrics[name]
        diff = metrics.get(f"{name}_diff")
        base = cand - diff if (baseline_arts and diff is not None) else None
        t = thresholds.get(name, {})
        rows.append(MetricRow(name, cand, base, _threshold_text(t), _passes(t, cand, base)))
    blessing = run.artifact("Evaluator", "blessing")
    pushed = run.artifact("Pusher", "pushed_model")
    props = pushed.properties if pushed else {}
    return GateResult(
        rows=rows,
        has_baseline=bool(baseline_arts),
        baseline_uri=baseline_arts[0].uri if baseline_arts else "",
        blessed=None if blessing is None else bool(blessing.properties.get("blessed")),
        pushed=None if pushed is None else bool(props.get("pushed")),
        pushed_destination=str(props.get("pushed_destination") or ""),
        pushed_version=str(props.get("pushed_version") or ""),
        evaluator_state=ev.state,
    )

"""The funnel section: the cleaner's ``report.json`` and ``ledger.jsonl`` (with
curation's ``label_issue`` / ``near_duplicate`` keys), the crawler's report, and the
raw images for sample tiles of every drop and duplicate reason.
"""

from __future__ import annotations

import os
from collections import defaultdict

from keyclass.components import layout
from keyclass.pipeline.report.gather.model import (
    LABEL_ISSUE,
    SAMPLES_PER_REASON,
    ClassFunnel,
    Funnel,
    ReasonGroup,
    Sample,
)
from keyclass.pipeline.report.gather.readers import read_json, read_jsonl


def _raw_file(raw_uri: str, sha: str) -> str | None:
    if not raw_uri or not sha:
        return None
    path = os.path.join(raw_uri, layout.IMAGES_DIR, sha)
    return path if os.path.isfile(path) else None


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).netloc or url[:60]
    except ValueError:
        return url[:60]


def _sample(line: dict, raw_uri: str, kept_by_url: dict[str, str]) -> Sample:
    reason, outcome = line.get("reason") or "", line.get("outcome") or ""
    image = _raw_file(raw_uri, line.get("sha256") or "")
    host = _host(line.get("source_url") or "")
    if outcome == "kept":
        return Sample(image, line.get("split") or "")
    if reason == LABEL_ISSUE:
        return _label_issue_sample(line, image)
    if outcome == "duplicate":
        kept_sha = line.get("kept_sha256") or kept_by_url.get(line.get("detail") or "", "")
        bits = []
        if isinstance(line.get("phash_distance"), int):
            bits.append(f"pHash distance {line['phash_distance']}")
        if isinstance(line.get("cosine"), (int, float)):
            bits.append(f"cosine {line['cosine']:.3f}")
        return Sample(image, "duplicate", ", ".join(bits), pair=_raw_file(raw_uri, kept_sha), pair_caption="kept")
    detail = line.get("detail") or ""
    note = (reason or outcome).replace("_", " ")
    if outcome == "failed" or image is None:
        return Sample(None, host, detail, note=note)
    if reason == "balance":  # a good picture the class had too many of: nothing to say
        return Sample(image, "", detail)
    return Sample(image, host, detail, note=f"{note}: no picture to show")


def _label_issue_sample(line: dict, image: str | None) -> Sample:
    """Curation's label issue: the class it was crawled for against the one the
    classifier suggests, or, when they agree, the rule that flagged it (e.g. off_topic:
    the picture is far from every class). Its ``detail`` starts with the rule."""
    given, suggested = line.get("keyword") or "?", line.get("suggested_class") or ""
    detail = str(line.get("detail") or "")
    rule, sep, rest = detail.partition(":")
    rule = rule if sep and " " not in rule else ""
    if suggested and suggested != given:
        caption = f"given {given} → suggested {suggested}"
    else:
        caption = f"{(rule or 'flagged').replace('_', ' ')}: given {given}"
    quality = line.get("label_quality")
    bits = [f"label quality {quality:.2f}"] if isinstance(quality, (int, float)) else []
    if ";" in rest:  # the rule's own measure, e.g. "class distance 41.8 (off-topic beyond 39.3)"
        bits.append(rest.split(";", 1)[1].strip())
    return Sample(image, caption, " · ".join(bits))


def _pick(lines: list[dict], reason: str, n: int) -> list[dict]:
    """The samples worth looking at first: the lowest label quality, the most distant
    near duplicates; otherwise a stable spread (by content hash)."""
    if reason == LABEL_ISSUE:
        key = lambda r: (r.get("label_quality", 1.0), r.get("sha256") or "")  # noqa: E731
    elif reason == "near_duplicate":
        key = lambda r: (-(r.get("phash_distance") or 0), r.get("sha256") or "")  # noqa: E731
    else:
        key = lambda r: (r.get("sha256") or "", r.get("line", 0))  # noqa: E731
    return sorted(lines, key=key)[:n]


def gather_funnel(report_uri: str, raw_images_uri: str = "", per_reason: int = SAMPLES_PER_REASON) -> Funnel | None:
    """The cleaner's funnel per class, with sample tiles for every drop or duplicate reason."""
    if not report_uri:
        return None
    report = read_json(os.path.join(report_uri, layout.REPORT))
    if report is None:
        return None
    ledger = read_jsonl(os.path.join(report_uri, layout.LEDGER))
    kept_by_url = {r.get("source_url") or "": r.get("sha256") or "" for r in ledger if r.get("outcome") == "kept"}
    by_reason: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for r in ledger:
        by_reason[(r.get("keyword") or "", r.get("outcome") or "", r.get("reason") or "")].append(r)
    crawl = read_json(os.path.join(raw_images_uri, layout.CRAWL_REPORT)) if raw_images_uri else None

    classes = []
    stages: list[str] = []
    accounted = all((r.get("outcome") in layout.OUTCOMES) for r in ledger)
    for name, entry in (report.get("classes") or {}).items():
        funnel = entry.get("funnel") or {}
        stages = stages or list(funnel)
        outcomes = entry.get("outcomes") or {}
        accounted = accounted and sum(outcomes.values()) == funnel.get("found", sum(outcomes.values()))
        groups = []
        for outcome, reasons in (entry.get("reasons") or {}).items():
            for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
                lines = by_reason.get((name, outcome, reason), [])
                kind = "label" if reason == LABEL_ISSUE else "pair" if outcome == "duplicate" else "single"
                samples = [_sample(r, raw_images_uri, kept_by_url) for r in _pick(lines, reason, per_reason)]
                groups.append(ReasonGroup(outcome, reason, int(count), kind, samples))
        kept = [
            _sample(r, raw_images_uri, kept_by_url)
            for r in _pick(by_reason.get((name, "kept", ""), []), "", per_reason)
        ]
        classes.append(ClassFunnel(name, [(s, int(funnel.get(s, 0))) for s in funnel], outcomes, groups, kept))
    return Funnel(
        stages=stages,
        classes=classes,
        totals=report.get("totals") or {},
        curation=report.get("curation") if isinstance(report.get("curation"), dict) else None,
        engine_errors=list((crawl or {}).get("engine_errors") or []),
        unknown_keywords=dict(report.get("unknown_keywords") or {}),
        ledger_lines=len(ledger),
        accounted=accounted,
        report_uri=report_uri,
    )

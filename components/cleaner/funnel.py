"""The cleaner's global decisions and its funnel report, as pure functions.

Input: every manifest record and, per stored file, the small metadata the decode step
produced (size, format, pixel hash, pHash; never pixels). Output: one
:class:`Decision` per record, in manifest order, and the per-class funnel.

The steps are separate functions (:func:`screen`, :func:`group`, :func:`finish`) so the
curation step can run between them; :func:`decide` chains them with the pHash rule.

The decisions, in order (a record leaves at the first one that applies):

1. ``failed``: the crawler stored nothing (its ``error`` is the reason) or the stored
   file is missing.
2. ``dropped`` with the decode reason: empty, HTML, SVG, truncated, corrupt,
   decompression bomb... (see ``decode.DECODE_REASONS``); ``unknown_class`` for a keyword
   outside the class list.
3. ``dropped``/``too_small``: either side below ``min_width``/``min_height``. There is no
   aspect-ratio rule: a 1200×250 panorama is kept (and squashed to the model size,
   exactly as serving squashes it); 1200×200 is too small.
4. Duplicates. Records whose files decode to the same pixels form an exact group
   (the same file from two URLs too). Exact groups, largest picture first, join the
   closest earlier kept picture they are *linked* to or start their own group
   (:func:`dedup.assign_groups`). Links come from the pHash rule (within
   ``near_duplicate_distance`` bits, :func:`phash_links`) or, when the cleaner curates
   with a pretrained backbone, from pHash candidates confirmed by embeddings
   (``curate.confirmed_links``). A group whose records carry more than one keyword is
   ``ambiguous`` (reason ``cross_class``) as a whole: the picture leaves every class.
   Otherwise the group's first record of its largest picture goes on and the others are
   ``duplicate`` (``exact_duplicate`` or ``near_duplicate``).
5. ``dropped``/``label_issue``: pictures the curation step found mislabelled or
   off-topic (``curate.find_label_issues``); none without curation.
6. ``dropped``/``balance`` (when ``balance``): every class is cut to the smallest
   non-empty class, keeping the pictures with the smallest ``sha256("balance:" + pixel hash)``
   (deterministic, independent of manifest order). An empty class does not empty the
   others; the validation gate refuses the dataset anyway.
7. ``kept``, in split ``eval`` when ``u = sha256("split:" + pixel hash)`` falls below
   ``eval_fraction`` of the hash range, ``calibration`` when it falls in the next
   ``calibration_fraction``, else ``train``. A picture's split depends on its pixels
   only, so reruns (and later crawls with more images) never move it, and the eval
   split is the one it was before the calibration split existed; near duplicates never
   straddle a split because only one of them is kept. A class with at least as many
   kept pictures as splits gets at least one in each (taken from the largest).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from keyclass.components import layout
from keyclass.components.classes import ClassList, normalize_class_name
from keyclass.components.cleaner import dedup

KEPT, DROPPED, DUPLICATE, AMBIGUOUS, FAILED = layout.OUTCOMES

# Reasons the decisions add (decode failures bring their own, see decode.DECODE_REASONS).
MISSING_FILE = "missing_file"
NO_FILE = "not_downloaded"  # failed without an error message from the crawler
UNKNOWN_CLASS = "unknown_class"
TOO_SMALL = "too_small"
EXACT_DUPLICATE = "exact_duplicate"
NEAR_DUPLICATE = "near_duplicate"
CROSS_CLASS = "cross_class"
BALANCE = "balance"
LABEL_ISSUE = "label_issue"

SPLIT_STAGES = (layout.TRAIN_SPLIT, layout.EVAL_SPLIT, layout.CALIBRATION_SPLIT)
FUNNEL_STAGES = ("found", "downloaded", "decoded", "large_enough", "unique", "label_ok", "balanced", *SPLIT_STAGES)


@dataclasses.dataclass(frozen=True)
class Record:
    """One manifest line, as the cleaner needs it."""

    index: int
    keyword: str
    url: str
    sha256: str
    path: str
    error: str = ""

    @classmethod
    def from_manifest(cls, index: int, rec: Mapping[str, Any]) -> Record:
        return cls(
            index=index,
            keyword=normalize_class_name(str(rec.get(layout.M_KEYWORD) or "")),
            url=str(rec.get(layout.M_URL) or rec.get(layout.M_FINAL_URL) or ""),
            sha256=str(rec.get(layout.M_SHA256) or ""),
            path=str(rec.get(layout.M_PATH) or ""),
            error=str(rec.get(layout.M_ERROR) or ""),
        )

    @property
    def has_file(self) -> bool:
        return bool(self.path and self.sha256)


@dataclasses.dataclass(frozen=True)
class ImageMeta:
    """What the decode step learned about one stored file (no pixels)."""

    sha256: str
    error: str = ""  # a decode reason, or MISSING_FILE; empty when decoded
    width: int = 0  # upright (after EXIF orientation)
    height: int = 0
    format: str = ""
    pixel_hash: str = ""
    phash: str = ""  # 16 hex digits

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclasses.dataclass(frozen=True)
class Decision:
    """The outcome for one manifest record."""

    index: int
    outcome: str
    reason: str = ""
    split: str = ""
    label: int = -1
    detail: str = ""  # duplicates: the kept record's URL; ambiguous: the classes involved
    kept_sha256: str = ""  # duplicates: the file that stays
    phash_distance: int | None = None  # near duplicates: pHash bits to the kept picture
    cosine: float | None = None  # near duplicates confirmed by embeddings: their cosine
    label_quality: float | None = None  # label issues: cleanlab's label quality score
    suggested_class: str = ""  # label issues: the class the classifier believes it shows


@dataclasses.dataclass(frozen=True)
class Link:
    """Why two pictures may merge: their pHash distance and, when embeddings confirmed
    the pair, the cosine of their embeddings."""

    distance: int
    cosine: float | None = None

    @property
    def closeness(self) -> float:
        """Smaller is closer: 1 - cosine when confirmed by embeddings, else the distance."""
        return 1.0 - self.cosine if self.cosine is not None else float(self.distance)


@dataclasses.dataclass(frozen=True)
class LabelIssue:
    """A picture the curation step prunes: its label quality (cleanlab's score, the
    out-of-fold probability of its own class), the class the classifier believes it
    shows, and the rule that caught it (``mislabelled`` or ``off_topic``)."""

    quality: float
    suggested_class: str
    rule: str
    note: str = ""  # more evidence, for the ledger's detail


def _unit_hash(tag: str, key: str) -> int:
    return int(hashlib.sha256(f"{tag}:{key}".encode()).hexdigest()[:16], 16)


@dataclasses.dataclass
class Screened:
    """After the per-record rules: the decided records and the candidates, as exact groups."""

    decisions: dict[int, Decision]
    exact: dict[str, list[Record]]  # pixel hash -> the candidate records with those pixels
    order: list[str]  # the pixel hashes, largest picture first (then by hash)

    def representative(self, key: str) -> Record:
        """The record whose file stands for picture ``key`` (its first in manifest order)."""
        return self.exact[key][0]

    def phashes(self, metas: Mapping[str, ImageMeta]) -> list[int]:
        """The 64-bit pHash of each picture, in :attr:`order`."""
        return [int(metas[self.representative(k).sha256].phash, 16) for k in self.order]


def screen(
    records: Sequence[Record],
    metas: Mapping[str, ImageMeta],
    *,
    classes: Sequence[str],
    min_width: int,
    min_height: int,
) -> Screened:
    """Rules 1-3 (failed, dropped, too small) and the exact groups of the rest."""
    labels = ClassList(classes).labels()
    out: dict[int, Decision] = {}
    exact: dict[str, list[Record]] = defaultdict(list)
    for r in sorted(records, key=lambda r: r.index):
        if not r.has_file:
            out[r.index] = Decision(r.index, FAILED, r.error or NO_FILE)
            continue
        meta = metas.get(r.sha256)
        if r.keyword not in labels:
            out[r.index] = Decision(r.index, DROPPED, UNKNOWN_CLASS, detail=r.keyword)
        elif meta is None or meta.error == MISSING_FILE:
            out[r.index] = Decision(r.index, FAILED, MISSING_FILE)
        elif meta.error:
            out[r.index] = Decision(r.index, DROPPED, meta.error)
        elif meta.width < min_width or meta.height < min_height:
            out[r.index] = Decision(r.index, DROPPED, TOO_SMALL, detail=f"{meta.width}x{meta.height}")
        else:
            exact[meta.pixel_hash].append(r)
    order = sorted(exact, key=lambda k: (-metas[exact[k][0].sha256].pixels, k))
    return Screened(out, dict(exact), order)


def phash_links(hashes: Sequence[int], max_distance: int) -> dict[tuple[int, int], Link]:
    """The pHash-only rule: every pair of pictures within ``max_distance`` bits."""
    hashes = list(hashes)
    return {(i, j): Link(dedup.hamming(hashes[i], hashes[j])) for i, j in dedup.near_pairs(hashes, max_distance)}


@dataclasses.dataclass
class Grouped:
    """After deduplication: every decision so far and each class's unique pictures."""

    decisions: dict[int, Decision]
    unique: dict[str, list[tuple[str, Record]]]  # class -> (pixel hash, kept record)


def group(screened: Screened, links: Mapping[tuple[int, int], Link]) -> Grouped:
    """Rule 4: exact and near duplicates, and pictures shared across classes.

    ``links`` are keyed by positions in ``screened.order`` (``i < j``)."""
    order, exact = screened.order, screened.exact
    rep_of = dedup.assign_groups(len(order), {pair: link.closeness for pair, link in links.items()})
    members: dict[int, list[int]] = defaultdict(list)  # representative position -> member positions
    for pos, rep in enumerate(rep_of):
        members[rep].append(pos)

    out = dict(screened.decisions)
    unique: dict[str, list[tuple[str, Record]]] = defaultdict(list)
    for rep, positions in members.items():
        group_records = [r for pos in positions for r in exact[order[pos]]]
        keywords = sorted({r.keyword for r in group_records})
        if len(keywords) > 1:
            for r in group_records:
                out[r.index] = Decision(r.index, AMBIGUOUS, CROSS_CLASS, detail=",".join(keywords))
            continue
        keeper = min(exact[order[rep]], key=lambda r: r.index)
        for pos in positions:
            link = links[(rep, pos)] if pos != rep else None
            for r in exact[order[pos]]:
                if r is keeper:
                    continue
                if link is None:
                    out[r.index] = Decision(
                        r.index, DUPLICATE, EXACT_DUPLICATE, detail=keeper.url, kept_sha256=keeper.sha256
                    )
                else:
                    out[r.index] = Decision(
                        r.index,
                        DUPLICATE,
                        NEAR_DUPLICATE,
                        detail=keeper.url,
                        kept_sha256=keeper.sha256,
                        phash_distance=link.distance,
                        cosine=link.cosine,
                    )
        unique[keeper.keyword].append((order[rep], keeper))
    return Grouped(out, dict(unique))


def finish(
    grouped: Grouped,
    *,
    classes: Sequence[str],
    balance: bool,
    eval_fraction: float,
    calibration_fraction: float,
    label_issues: Mapping[str, LabelIssue] | None = None,
) -> dict[int, Decision]:
    """Rules 5-7: label issues (keyed by pixel hash) are dropped, the classes balanced and
    the rest split. Returns every record's decision by record index."""
    labels = ClassList(classes).labels()
    label_issues = label_issues or {}
    out = dict(grouped.decisions)
    remaining: dict[str, list[tuple[str, Record]]] = {}
    for cls, items in grouped.unique.items():
        keep = []
        for key, r in items:
            issue = label_issues.get(key)
            if issue is None:
                keep.append((key, r))
                continue
            out[r.index] = Decision(
                r.index,
                DROPPED,
                LABEL_ISSUE,
                detail=f"{issue.rule}: label quality {issue.quality:.3f}, looks like {issue.suggested_class}"
                + (f"; {issue.note}" if issue.note else ""),
                label_quality=float(issue.quality),
                suggested_class=issue.suggested_class,
            )
        remaining[cls] = keep

    sizes = [len(v) for v in remaining.values() if v]
    target = min(sizes) if (balance and sizes) else None
    for cls, items in remaining.items():
        items = sorted(items, key=lambda kr: (_unit_hash("balance", kr[0]), kr[1].index))
        if target is not None:
            for _, r in items[target:]:
                out[r.index] = Decision(r.index, DROPPED, BALANCE)
            items = items[:target]
        out.update(_split(items, labels[cls], eval_fraction, calibration_fraction))
    return out


def decide(
    records: Sequence[Record],
    metas: Mapping[str, ImageMeta],
    *,
    classes: Sequence[str],
    min_width: int,
    min_height: int,
    near_duplicate_distance: int,
    balance: bool,
    eval_fraction: float,
    calibration_fraction: float,
) -> list[Decision]:
    """One decision per record, in record order, with the pHash-only duplicate rule and no
    label issues (see the module docstring for the rules)."""
    screened = screen(records, metas, classes=classes, min_width=min_width, min_height=min_height)
    grouped = group(screened, phash_links(screened.phashes(metas), near_duplicate_distance))
    out = finish(
        grouped,
        classes=classes,
        balance=balance,
        eval_fraction=eval_fraction,
        calibration_fraction=calibration_fraction,
    )
    return [out[r.index] for r in records]


def _split(
    items: list[tuple[str, Record]], label: int, eval_fraction: float, calibration_fraction: float = 0.0
) -> dict[int, Decision]:
    """Kept decisions for one class's pictures, split by the hash of their pixels:
    ``eval`` below ``eval_fraction`` of the hash range, ``calibration`` in the next
    ``calibration_fraction``, ``train`` above."""
    full = 2**64
    ranges = {
        layout.EVAL_SPLIT: (0, eval_fraction * full),
        layout.CALIBRATION_SPLIT: (eval_fraction * full, (eval_fraction + calibration_fraction) * full),
        layout.TRAIN_SPLIT: ((eval_fraction + calibration_fraction) * full, full),
    }
    if calibration_fraction <= 0:
        del ranges[layout.CALIBRATION_SPLIT]
    scored = sorted((_unit_hash("split", key), r.index) for key, r in items)
    hash_of = {i: u for u, i in scored}
    split_of = {i: next(name for name, (lo, hi) in ranges.items() if u < hi or hi == full) for u, i in scored}
    if len(scored) >= len(ranges):
        # A split left empty by chance takes, from the largest split, the picture whose
        # hash lies nearest its own range: still a function of the pixels alone.
        for name, (lo, hi) in ranges.items():
            members = Counter(split_of.values())
            if members[name]:
                continue
            donor = max(ranges, key=lambda s: (members[s], s))
            moved = min(
                (i for i in split_of if split_of[i] == donor),
                key=lambda i: (max(lo - hash_of[i], hash_of[i] - hi, 0), i),
            )
            split_of[moved] = name
    return {i: Decision(i, KEPT, split=split_of[i], label=label) for _, i in scored}


def _stage_left(d: Decision) -> int:
    """How many funnel stages (from ``downloaded`` on) the record passed."""
    if d.outcome == FAILED:
        return 0
    if d.outcome == DROPPED and d.reason not in (TOO_SMALL, LABEL_ISSUE, BALANCE):
        return 1  # reached "downloaded", failed to decode
    if d.reason == TOO_SMALL:
        return 2
    if d.outcome in (DUPLICATE, AMBIGUOUS):
        return 3
    if d.reason == LABEL_ISSUE:
        return 4
    if d.reason == BALANCE:
        return 5
    return 6


def build_report(
    records: Sequence[Record],
    decisions: Sequence[Decision],
    classes: Sequence[str],
    settings: Mapping[str, Any],
    curation: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The funnel per class, outcome and reason counts per class and in total, and the
    curation block (what curated the data, or why nothing did) when given.

    ``found`` is every manifest record of the class; each later stage keeps those that
    passed it; ``balanced == train + eval + calibration`` and ``found == sum(outcomes)``.
    """
    by_class: dict[str, list[Decision]] = {c: [] for c in classes}
    other: list[Decision] = []
    for r, d in zip(records, decisions, strict=True):
        by_class.get(r.keyword, other).append(d)

    def summarise(ds: Iterable[Decision]) -> dict[str, Any]:
        ds = list(ds)
        reasons: dict[str, Counter] = defaultdict(Counter)
        for d in ds:
            if d.outcome != KEPT:
                reasons[d.outcome][d.reason] += 1
        outcomes = Counter(d.outcome for d in ds)
        return {
            "outcomes": {o: outcomes.get(o, 0) for o in layout.OUTCOMES},
            "reasons": {o: dict(sorted(c.items())) for o, c in sorted(reasons.items())},
        }

    report_classes = {}
    for label, cls in enumerate(classes):
        ds = by_class[cls]
        stage = [_stage_left(d) for d in ds]
        funnel = {"found": len(ds)}
        for n, name in enumerate(("downloaded", "decoded", "large_enough", "unique", "label_ok", "balanced"), start=1):
            funnel[name] = sum(s >= n for s in stage)
        for split in SPLIT_STAGES:
            funnel[split] = sum(d.outcome == KEPT and d.split == split for d in ds)
        report_classes[cls] = {"label": label, "funnel": funnel, **summarise(ds)}

    totals = {"found": len(decisions), **summarise(decisions)}
    totals["funnel"] = {s: sum(c["funnel"][s] for c in report_classes.values()) for s in FUNNEL_STAGES}
    out = {
        "classes": report_classes,
        "unknown_keywords": dict(
            sorted(
                Counter(r.keyword for r, d in zip(records, decisions, strict=True) if d.reason == UNKNOWN_CLASS).items()
            )
        ),
        "other_records": len(other),
        "totals": totals,
        "settings": dict(settings),
    }
    if curation is not None:
        out["curation"] = dict(curation)
    return out


def ledger_lines(records: Sequence[Record], decisions: Sequence[Decision]) -> list[dict[str, Any]]:
    """One ledger entry per manifest record, in manifest order. Duplicates add the kept
    file's ``kept_sha256``; near duplicates their ``phash_distance`` and ``cosine`` (null
    unless embeddings confirmed them); label issues ``label_quality`` and ``suggested_class``."""
    out = []
    for r, d in zip(records, decisions, strict=True):
        line: dict[str, Any] = {
            "line": r.index,
            "source_url": r.url,
            "keyword": r.keyword,
            "sha256": r.sha256,
            "outcome": d.outcome,
            "reason": d.reason,
            "split": d.split,
            "detail": d.detail,
        }
        if d.outcome == DUPLICATE:
            line["kept_sha256"] = d.kept_sha256
        if d.reason == NEAR_DUPLICATE:
            line["phash_distance"] = d.phash_distance
            line["cosine"] = None if d.cosine is None else round(float(d.cosine), 6)
        if d.reason == LABEL_ISSUE:
            line["label_quality"] = round(float(d.label_quality), 6)
            line["suggested_class"] = d.suggested_class
        out.append(line)
    return out

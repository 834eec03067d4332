"""funnel.decide and build_report on hand-made metadata (no images, no Beam)."""

from __future__ import annotations

import random

from keyclass.components.cleaner import funnel

CLASSES = ["cat", "dog"]
RULES = dict(
    classes=CLASSES,
    min_width=100,
    min_height=100,
    near_duplicate_distance=4,
    eval_fraction=0.2,
    calibration_fraction=0.2,
)


def _world(n_cat: int, n_dog: int, seed: int = 0):
    """Distinct large images: records and metas keyed by sha."""
    rng = random.Random(seed)
    records, metas = [], {}
    for i in range(n_cat + n_dog):
        sha = f"{i:064x}"
        kw = "cat" if i < n_cat else "dog"
        records.append(funnel.Record(i, kw, f"http://x/{i}", sha, f"images/{sha}"))
        metas[sha] = funnel.ImageMeta(
            sha, width=400, height=300, format="JPEG", pixel_hash=f"p{i}", phash=f"{rng.getrandbits(64):016x}"
        )
    return records, metas


def _decide(records, metas, **kw):
    return funnel.decide(records, metas, **{**RULES, "balance": True, **kw})


def test_balance_cuts_to_the_smallest_class_deterministically():
    records, metas = _world(30, 10)
    out = _decide(records, metas)
    kept = [d for d in out if d.outcome == "kept"]
    assert sum(d.label == 0 for d in kept) == sum(d.label == 1 for d in kept) == 10
    assert sum(d.reason == "balance" for d in out) == 20
    # The same choice whatever the manifest order.
    shuffled = list(reversed(records))
    again = {d.index: d for d in _decide(shuffled, metas)}
    assert {d.index: d for d in out} == again


def test_balance_off_keeps_everything():
    records, metas = _world(30, 10)
    assert all(d.outcome == "kept" for d in _decide(records, metas, balance=False))


def test_split_is_by_content_and_near_the_fraction():
    records, metas = _world(500, 500)
    out = _decide(records, metas)
    for split, (low, high) in {"eval": (0.15, 0.25), "calibration": (0.15, 0.25), "train": (0.54, 0.66)}.items():
        assert low < sum(d.split == split for d in out) / len(out) < high, split
    # A picture's split depends only on its pixels: adding images moves nothing.
    more_records, more_metas = _world(600, 600)
    more = {d.index: d.split for d in _decide(more_records, more_metas, balance=False)}
    assert all(more[d.index] == d.split for d in out)


def test_tiny_classes_still_get_every_split():
    records, metas = _world(2, 2)
    splits = {(d.label, d.split) for d in _decide(records, metas, calibration_fraction=0.0)}
    assert splits == {(0, "train"), (0, "eval"), (1, "train"), (1, "eval")}
    for n in (3, 4, 5):
        records, metas = _world(n, n)
        splits = {(d.label, d.split) for d in _decide(records, metas)}
        assert splits == {(c, s) for c in (0, 1) for s in ("train", "eval", "calibration")}, n


def test_the_calibration_split_leaves_the_eval_split_as_it_was():
    """The held-out split is carved from train: no eval picture moves, so a model's
    early stopping sees the same images it saw before the split existed."""
    records, metas = _world(300, 300)
    two = _decide(records, metas, calibration_fraction=0.0)
    three = _decide(records, metas)
    assert [d.index for d in two if d.split == "eval"] == [d.index for d in three if d.split == "eval"]
    assert all(a.split == "train" for a, b in zip(two, three, strict=True) if b.split == "calibration")
    assert sum(d.split == "calibration" for d in three) > 0


def test_an_empty_class_does_not_empty_the_others():
    records, metas = _world(5, 0)
    assert sum(d.outcome == "kept" for d in _decide(records, metas)) == 5


def test_duplicates_keep_the_largest_and_cross_class_is_ambiguous():
    records, metas = _world(3, 1)
    big = metas[records[1].sha256]
    # record 0: near duplicate (2 bits) of record 1, which is larger.
    metas[records[0].sha256] = funnel.ImageMeta(
        records[0].sha256, width=200, height=150, pixel_hash="small", phash=f"{int(big.phash, 16) ^ 0b11:016x}"
    )
    metas[records[1].sha256] = funnel.ImageMeta(big.sha256, width=800, height=600, pixel_hash="big", phash=big.phash)
    # record 3 (dog) is the same file as record 2 (cat).
    records[3] = funnel.Record(3, "dog", "http://x/3", records[2].sha256, records[2].path)
    out = _decide(records, metas, balance=False)
    assert (out[0].outcome, out[0].reason, out[0].detail) == ("duplicate", "near_duplicate", "http://x/1")
    assert out[1].outcome == "kept"
    assert (out[2].outcome, out[2].reason, out[2].detail) == ("ambiguous", "cross_class", "cat,dog")
    assert out[3].outcome == "ambiguous"


def test_failures_and_reports_add_up():
    records, metas = _world(4, 4)
    records.append(funnel.Record(8, "cat", "http://x/8", "", "", error="HTTP 404"))
    records.append(funnel.Record(9, "cat", "http://x/9", "", ""))
    records.append(funnel.Record(10, "bird", "http://x/10", "f" * 64, "images/f"))
    records.append(funnel.Record(11, "dog", "http://x/11", "e" * 64, "images/e"))  # file vanished
    metas["d" * 64] = funnel.ImageMeta("d" * 64, error="truncated")
    records.append(funnel.Record(12, "dog", "http://x/12", "d" * 64, "images/d"))
    metas["c" * 64] = funnel.ImageMeta("c" * 64, width=50, height=300, pixel_hash="c", phash="0" * 16)
    records.append(funnel.Record(13, "dog", "http://x/13", "c" * 64, "images/c"))
    out = _decide(records, metas)
    assert [(d.outcome, d.reason) for d in out[8:]] == [
        ("failed", "HTTP 404"),
        ("failed", "not_downloaded"),
        ("dropped", "unknown_class"),
        ("failed", "missing_file"),
        ("dropped", "truncated"),
        ("dropped", "too_small"),
    ]
    rep = funnel.build_report(records, out, CLASSES, {"x": 1})
    assert rep["totals"]["found"] == len(records) == sum(rep["totals"]["outcomes"].values())
    assert rep["classes"]["cat"]["funnel"] == {
        "found": 6,
        "downloaded": 4,
        "decoded": 4,
        "large_enough": 4,
        "unique": 4,
        "label_ok": 4,
        "balanced": 4,
        "train": rep["classes"]["cat"]["funnel"]["train"],
        "eval": rep["classes"]["cat"]["funnel"]["eval"],
        "calibration": rep["classes"]["cat"]["funnel"]["calibration"],
    }
    dog = rep["classes"]["dog"]["funnel"]
    assert (dog["found"], dog["downloaded"], dog["decoded"], dog["large_enough"]) == (7, 6, 5, 4)
    assert rep["classes"]["cat"]["reasons"]["failed"] == {"HTTP 404": 1, "not_downloaded": 1}
    assert rep["unknown_keywords"] == {"bird": 1} and rep["other_records"] == 1
    lines = funnel.ledger_lines(records, out)
    assert [line["line"] for line in lines] == [r.index for r in records]


def test_near_duplicates_record_the_kept_file_and_the_evidence():
    records, metas = _world(2, 0)
    big = metas[records[1].sha256]
    metas[records[0].sha256] = funnel.ImageMeta(
        records[0].sha256, width=200, height=150, pixel_hash="small", phash=f"{int(big.phash, 16) ^ 0b111:016x}"
    )
    lines = funnel.ledger_lines(records, _decide(records, metas, balance=False))
    assert lines[0]["reason"] == "near_duplicate"
    assert lines[0]["kept_sha256"] == records[1].sha256
    assert lines[0]["phash_distance"] == 3 and lines[0]["cosine"] is None  # the pHash rule: no embedding
    assert "kept_sha256" not in lines[1] and "cosine" not in lines[1]

    # The same pair confirmed by embeddings carries its cosine.
    screened = funnel.screen(records, metas, classes=CLASSES, min_width=100, min_height=100)
    grouped = funnel.group(screened, {(0, 1): funnel.Link(3, 0.93)})
    out = funnel.finish(grouped, classes=CLASSES, balance=False, eval_fraction=0.2, calibration_fraction=0.2)
    line = funnel.ledger_lines(records, [out[r.index] for r in records])[0]
    assert (line["phash_distance"], line["cosine"], line["kept_sha256"]) == (3, 0.93, records[1].sha256)
    # Unlinked, the two pictures stay apart whatever their hashes.
    apart = funnel.finish(
        funnel.group(screened, {}), classes=CLASSES, balance=False, eval_fraction=0.2, calibration_fraction=0.2
    )
    assert all(d.outcome == "kept" for d in apart.values())


def test_label_issues_are_dropped_before_balancing_and_counted_in_label_ok():
    records, metas = _world(6, 4)
    screened = funnel.screen(records, metas, classes=CLASSES, min_width=100, min_height=100)
    grouped = funnel.group(screened, {})
    cat_keys = [key for key, _ in grouped.unique["cat"]]
    issues = {
        cat_keys[0]: funnel.LabelIssue(0.12, "dog", "mislabelled"),
        cat_keys[1]: funnel.LabelIssue(0.41, "dog", "off_topic"),
    }
    out = funnel.finish(
        grouped, classes=CLASSES, balance=True, eval_fraction=0.2, calibration_fraction=0.2, label_issues=issues
    )
    decisions = [out[r.index] for r in records]
    dropped = [d for d in decisions if d.reason == "label_issue"]
    assert len(dropped) == 2 and all(d.outcome == "dropped" for d in dropped)
    # Balanced after pruning: 6 - 2 = 4 cats, as many as dogs, so nothing else goes.
    assert not [d for d in decisions if d.reason == "balance"]
    lines = {line["line"]: line for line in funnel.ledger_lines(records, decisions)}
    flagged = {line["label_quality"]: line for line in lines.values() if line["reason"] == "label_issue"}
    assert flagged[0.12]["suggested_class"] == "dog" and flagged[0.12]["detail"].startswith("mislabelled")
    assert flagged[0.41]["detail"].startswith("off_topic")
    assert all("label_quality" not in line for line in lines.values() if line["reason"] != "label_issue")

    rep = funnel.build_report(records, decisions, CLASSES, {}, curation={"mode": "embedding"})
    cat = rep["classes"]["cat"]
    assert (cat["funnel"]["unique"], cat["funnel"]["label_ok"], cat["funnel"]["balanced"]) == (6, 4, 4)
    assert cat["reasons"]["dropped"] == {"label_issue": 2}
    assert cat["funnel"]["found"] == sum(cat["outcomes"].values())
    assert cat["funnel"]["balanced"] == cat["funnel"]["train"] + cat["funnel"]["eval"] + cat["funnel"]["calibration"]
    assert list(cat["funnel"]) == list(funnel.FUNNEL_STAGES)
    assert rep["curation"] == {"mode": "embedding"}

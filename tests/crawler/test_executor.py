"""The real executor's Do() on temp dirs against the loopback engine: what it writes and when it fails."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time

import pytest

from keyclass.components import layout
from keyclass.components.crawler.crawl import CrawlError
from keyclass.pipeline import demo_images
from tests.crawler.conftest import make_cfg, read_output, run_do

MANIFEST_KEYS = {
    layout.M_KEYWORD,
    layout.M_SOURCE,
    layout.M_QUERY,
    layout.M_URL,
    layout.M_FINAL_URL,
    layout.M_STATUS,
    layout.M_BYTES,
    layout.M_SHA256,
    layout.M_CONTENT_TYPE,
    layout.M_ERROR,
    layout.M_PATH,
}


def _files_under(root: str) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files}


def test_crawl_respects_quota_names_files_by_content_and_writes_a_complete_manifest(engine, tmp_path):
    out = run_do(make_cfg(engine, max_images_per_class=4), tmp_path)

    assert all(set(r) == MANIFEST_KEYS for r in out.manifest)
    for keyword in ("circle", "square"):
        ok = out.lines(keyword=keyword, error="")
        assert len(ok) == 4, "quota: exactly max_images_per_class images per class"
        assert [r[layout.M_URL] for r in ok] == [engine.image_url(keyword, i) for i in range(4)]
        for i, r in enumerate(ok):
            assert r[layout.M_SOURCE] == "bing" and r[layout.M_QUERY] == keyword
            want, ctype = engine.image_bytes(keyword, i)  # .jpg, .jpeg, .png, .webp?w=...: all kept
            assert r[layout.M_STATUS] == 200 and r[layout.M_CONTENT_TYPE] == ctype
            assert r[layout.M_FINAL_URL] == r[layout.M_URL]
            data = open(os.path.join(out.uri, r[layout.M_PATH]), "rb").read()
            assert r[layout.M_PATH] == f"images/{r[layout.M_SHA256]}"
            assert hashlib.sha256(data).hexdigest() == r[layout.M_SHA256] and len(data) == r[layout.M_BYTES]
            assert data == want
    assert engine.hits(engine.image_url("circle", 4)) == 0, "nothing downloaded beyond the quota"
    assert _files_under(out.uri) == {layout.MANIFEST, layout.CRAWL_REPORT} | {r["path"] for r in out.manifest}
    rep = out.report["classes"]["circle"]
    assert rep["downloaded"] == 4 and rep["ok"] and rep["sources"]["bing"]["results"] == 4
    assert out.report["total_images"] == 8 and out.report["snapshot"] == "test"
    assert out.artifact.get_int_custom_property("num_images") == 8


def test_http_errors_redirects_and_stalls_are_recorded_and_the_quota_still_met(engine, tmp_path):
    u404 = engine.add_status("circle", 404)
    u500 = engine.add_flaky("circle", failures=99, status=500)
    stall = engine.add_stall("circle", seconds=30)
    meta = engine.add_redirect("circle", "http://169.254.169.254/latest/meta-data/x.jpg")
    start = time.monotonic()
    out = run_do(make_cfg(engine, classes=["circle", "square"], max_images_per_class=3), tmp_path)
    assert time.monotonic() - start < 15

    by_url = {r[layout.M_URL]: r for r in out.manifest}
    assert by_url[u404][layout.M_STATUS] == 404 and by_url[u404][layout.M_ERROR] == "HTTP 404"
    assert by_url[u500][layout.M_STATUS] == 500 and "HTTP 500 after 3 attempts" == by_url[u500][layout.M_ERROR]
    assert "timed out" in by_url[stall][layout.M_ERROR]
    assert "169.254.169.254" in by_url[meta][layout.M_ERROR] and "refused" in by_url[meta][layout.M_ERROR]
    assert by_url[meta][layout.M_FINAL_URL].startswith("http://169.254.169.254/")
    for url in (u404, u500, stall, meta):
        assert by_url[url][layout.M_PATH] == "" and by_url[url][layout.M_SHA256] == ""
    assert len(out.lines(keyword="circle", error="")) == 3
    assert out.report["classes"]["circle"]["sources"]["bing"]["failed"] == 4


def test_loopback_engine_refused_without_allow_loopback_then_next_source(engine, tmp_path, caplog):
    folder = demo_images.write_folder(tmp_path / "photos", ["circle", "square"], per_class=2)
    cfg = make_cfg(engine, sources=["bing", f"folder:{folder}"], allow_loopback=False, max_images_per_class=2)
    with caplog.at_level(logging.ERROR):
        out = run_do(cfg, tmp_path)
    errors = out.lines(source="bing", keyword="circle")
    assert len(errors) == 1 and "loopback" in errors[0][layout.M_ERROR] and "refused" in errors[0][layout.M_ERROR]
    assert engine.hits(engine.search_url) == 0
    assert len(out.lines(keyword="circle", source=f"folder:{folder}", error="")) == 2
    assert "bing" in caplog.text and "'circle'" in caplog.text


@pytest.mark.parametrize(
    "page, expected",
    [
        ("", "bing search failed: empty body"),
        ('<html><div class="tiles"><a href="http://x/y.jpg">y</a></div></html>', "page format changed"),
    ],
    ids=["empty-page", "changed-format"],
)
def test_engine_that_fails_is_loud_and_the_next_source_is_used(engine, tmp_path, caplog, page, expected):
    engine.set_page("circle", page)
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(f"circle\t{engine.image_url('circle', i)}\n" for i in range(20, 23)))
    cfg = make_cfg(engine, sources=["bing", f"urls:{urls}"], max_images_per_class=3)
    with caplog.at_level(logging.ERROR):
        out = run_do(cfg, tmp_path)

    (line,) = out.lines(keyword="circle", source="bing")
    assert expected in line[layout.M_ERROR]
    assert line[layout.M_QUERY] == "circle" and line[layout.M_URL].startswith(engine.search_url + "?q=circle&first=0")
    assert [r[layout.M_URL] for r in out.lines(keyword="circle", error="")] == [
        engine.image_url("circle", i) for i in range(20, 23)
    ]
    (err,) = out.report["engine_errors"]
    assert err["keyword"] == "circle" and err["source"] == "bing" and expected in err["error"]
    assert out.report["classes"]["circle"]["sources_tried"] == ["bing", f"urls:{urls}"]
    assert out.report["classes"]["square"]["sources_tried"] == ["bing"], "square's quota came from bing"
    assert re.search(r"bing.*'circle'.*" + re.escape(expected), caplog.text)


def test_url_lists_per_keyword_and_oversize_refused_while_streaming(engine, tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    big = engine.add_bytes("unused", b"\xff\xd8\xff" + b"0" * 300_000, send_length=False)
    (lists / "circle.txt").write_text(f"{big}\n{engine.image_url('circle', 0)}\n")
    (lists / "square.txt").write_text(f"{engine.image_url('square', 0)}\nfile:///etc/passwd\n")
    cfg = make_cfg(engine, sources=[f"urls:{lists}/{{keyword}}.txt"], max_images_per_class=5, max_bytes=200_000)
    out = run_do(cfg, tmp_path)
    (oversize,) = [r for r in out.manifest if r[layout.M_URL] == big]
    assert "while streaming" in oversize[layout.M_ERROR] and oversize[layout.M_BYTES] == 0
    (passwd,) = out.lines(url="file:///etc/passwd")
    assert "scheme 'file' refused" in passwd[layout.M_ERROR]
    assert len(out.lines(error="")) == 2
    assert out.lines(keyword="square", error="")[0][layout.M_QUERY] == str(lists / "square.txt")


def test_folder_source_copies_files_with_file_urls(tmp_path):
    folder = demo_images.write_folder(tmp_path / "photos", ["circle", "square"], per_class=3)
    os.rename(os.path.join(folder, "square"), os.path.join(folder, "Square"))
    out = run_do(make_cfg(sources=[f"folder:{folder}"], max_images_per_class=2), tmp_path)
    ok = out.lines(error="")
    assert len(ok) == 4
    for r in ok:
        assert r[layout.M_URL].startswith("file://") and r[layout.M_STATUS] is None
        assert r[layout.M_CONTENT_TYPE] == "image/jpeg"
        src = r[layout.M_URL][len("file://") :]
        assert open(src, "rb").read() == open(os.path.join(out.uri, r[layout.M_PATH]), "rb").read()


def test_same_content_twice_counts_once(engine, tmp_path):
    same = demo_images.render("circle", 0, size=64)
    engine.add_bytes("circle", same)  # identical to image 0 of the generated results
    out = run_do(make_cfg(engine, max_images_per_class=2), tmp_path)
    circle = out.lines(keyword="circle", error="")
    assert len(circle) == 3 and len({r[layout.M_SHA256] for r in circle}) == 2
    assert out.report["classes"]["circle"]["sources"]["bing"]["duplicates"] == 1


def test_too_few_images_raises_after_writing_manifest_and_report(engine, tmp_path):
    engine.set_page("triangle", "", status=503)
    cfg = make_cfg(engine, classes=["circle", "triangle"], max_images_per_class=3, min_images_per_class=2)
    with pytest.raises(CrawlError) as e:
        run_do(cfg, tmp_path)
    msg = str(e.value)
    assert "class 'triangle': 0 images" in msg and "min_images_per_class=2" in msg
    assert "sources tried: bing" in msg and "HTTP 503" in msg and "'circle'" not in msg
    out = read_output(os.path.join(tmp_path, "raw_images"), None)
    assert out.report["classes"]["triangle"]["ok"] is False and out.report["classes"]["circle"]["ok"] is True
    assert len(out.lines(keyword="circle", error="")) == 3


def test_stored_paths_cannot_escape_the_artifact_directory(engine, tmp_path):
    data = demo_images.render("square", 99, size=64)
    for name in ("../../evil.jpg", "..%2F..%2Fevil.jpg", "%2e%2e/%2e%2e/evil.jpg"):
        engine.add_result_url("circle", f"{engine.base_url}/{name}")
    engine.add_result_url("circle", engine.add_bytes("unused", data) + "?name=../../../evil.jpg")
    out = run_do(make_cfg(engine, max_images_per_class=3), tmp_path)
    outside = _files_under(str(tmp_path)) - {os.path.join("raw_images", f) for f in _files_under(out.uri)}
    assert outside == set()
    assert all(re.fullmatch(r"images/[0-9a-f]{64}", r[layout.M_PATH]) for r in out.lines(error=""))
    assert hashlib.sha256(data).hexdigest() in {r[layout.M_SHA256] for r in out.manifest}

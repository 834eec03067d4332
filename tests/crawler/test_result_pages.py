"""Every result URL on a result page is kept, whatever its extension or query string;
content decides what is an image; a result the parser cannot read gets a manifest line."""

from __future__ import annotations

import html
import json

from keyclass.components import layout
from keyclass.components.crawler import fetch, sources
from keyclass.components.crawler.sources import Candidate, Skipped
from tests.crawler.conftest import FAST, make_cfg, run_do


def _fetch(url):
    return fetch.fetch(url, FAST)


def test_the_engine_serves_mixed_extensions_and_query_strings(engine):
    urls = engine.results("circle")
    assert {u.split("?")[0].rsplit(".", 1)[1] for u in urls} == {"jpg", "jpeg", "png", "webp"}
    assert any("?" in u for u in urls)
    ctypes = {fetch.fetch(u, FAST).content_type for u in urls[:4]}
    assert ctypes == {"image/jpeg", "image/png", "image/webp"}


def test_bing_and_google_pages_yield_every_result_url(engine):
    for name, endpoint in (("bing", engine.search_url), ("google", engine.google_search_url)):
        items = list(sources.engine_candidates(name, endpoint, "square", _fetch))
        assert [i.url for i in items if isinstance(i, Candidate)] == engine.results("square"), name


def _bing_result(m: str | None) -> str:
    attr = "" if m is None else f' m="{html.escape(m)}"'
    return f'<li><div class="imgpt"><a class="iusc"{attr} href="#">x</a></div></li>'


def test_unreadable_results_are_skipped_and_recorded(engine, tmp_path):
    good = engine.image_url("circle", 3)  # .webp
    page = "".join(
        [
            _bing_result(json.dumps({"murl": good, "t": "ok"}, separators=(",", ":"))),
            _bing_result('{"murl":"http://x/broken'),  # truncated JSON
            _bing_result(json.dumps({"turl": "http://x/thumb.jpg"})),  # no murl
            _bing_result(json.dumps({"murl": "data:image/png;base64,AAAA"})),
            _bing_result(None),  # no m attribute at all
        ]
    )
    engine.set_page("circle", f'<html><body><ul class="dgControl_list">{page}</ul></body></html>')
    items = list(sources.engine_candidates("bing", engine.search_url, "circle", _fetch))
    assert [i.url for i in items if isinstance(i, Candidate)] == [good]
    skipped = [i for i in items if isinstance(i, Skipped)]
    assert len(skipped) == 4 and all("bing parser skipped a result" in s.error for s in skipped)
    assert {s.url for s in skipped if not s.url.startswith(engine.search_url)} == {"data:image/png;base64,AAAA"}

    out = run_do(make_cfg(engine, max_images_per_class=3), tmp_path)
    lines = out.lines(keyword="circle")
    recorded = [r for r in lines if "parser skipped" in r[layout.M_ERROR]]
    assert len(recorded) == 4  # nothing lost silently: each skipped result has its line
    assert out.report["classes"]["circle"]["sources"]["bing"]["skipped_by_parser"] == 4
    assert [r[layout.M_URL] for r in lines if not r[layout.M_ERROR]] == [good]


def test_a_crawl_meets_its_quota_from_mixed_results(engine, tmp_path):
    out = run_do(make_cfg(engine, max_images_per_class=12), tmp_path)
    for keyword in ("circle", "square"):
        ok = out.lines(keyword=keyword, error="")
        assert [r[layout.M_URL] for r in ok] == engine.results(keyword)
        assert out.report["classes"][keyword]["downloaded"] == 12

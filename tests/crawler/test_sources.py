"""Sources alone: result-page URLs, the engines' result pages from the demo engine, URL lists, folders."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

from keyclass.components.crawler import fetch, sources
from keyclass.components.crawler.sources import Candidate, Problem
from keyclass.pipeline import demo_images
from tests.crawler.conftest import FAST


def _page_fetcher(url):
    return fetch.fetch(url, FAST)


def test_default_endpoints_are_the_public_engines():
    url = sources.result_page_url("bing", sources.PUBLIC_SEARCH_URL["bing"], "golden retriever", 35)
    assert url == "https://www.bing.com/images/async?q=golden+retriever&first=35"
    g = urlsplit(sources.result_page_url("google", sources.PUBLIC_SEARCH_URL["google"], "cat", 200))
    assert g.netloc == "www.google.com" and parse_qs(g.query) == {
        "q": ["cat"],
        "ijn": ["2"],
        "start": ["200"],
        "tbm": ["isch"],
    }


def test_bing_pages_parsed_and_paged(engine):
    items = list(sources.engine_candidates("bing", engine.search_url, "circle", _page_fetcher))
    assert all(isinstance(i, Candidate) for i in items)
    assert [i.url for i in items] == [engine.image_url("circle", k) for k in range(12)]  # 3 pages of 5
    assert engine.hits(engine.search_url) == 3 + 1  # the last, empty page ends the listing
    assert {(i.source, i.query) for i in items} == {("bing", "circle")}


def test_google_pages_parsed(engine):
    items = list(sources.engine_candidates("google", engine.google_search_url, "square", _page_fetcher))
    assert [i.url for i in items] == [engine.image_url("square", k) for k in range(12)]


def test_engine_error_page_is_a_problem_naming_engine_keyword_and_page(engine):
    engine.set_page("circle", "overloaded", status=500)
    (item,) = list(sources.engine_candidates("bing", engine.search_url, "circle", _page_fetcher))
    assert isinstance(item, Problem)
    assert item.source == "bing" and item.keyword == "circle" and item.http_status == 500
    assert "bing search failed: HTTP 500" in item.error and item.url.startswith(engine.search_url + "?q=circle")


def test_changed_page_format_is_a_problem(engine):
    engine.set_page("circle", '<html><div class="newlayout"><img src="http://x/a.jpg"></div></html>')
    (item,) = list(sources.engine_candidates("bing", engine.search_url, "circle", _page_fetcher))
    assert isinstance(item, Problem) and "format changed" in item.error and "bing" in item.error


def test_url_list_with_keyword_tab_url_lines(tmp_path):
    f = tmp_path / "urls.txt"
    f.write_text("# comment\nCircle\thttp://a/1.jpg\nsquare\thttp://a/2.jpg\n\n circle \thttp://a/3.jpg\nno tab here\n")
    items = list(sources.url_list_candidates(f"urls:{f}", str(f), "circle"))
    cands = [i for i in items if isinstance(i, Candidate)]
    assert [c.url for c in cands] == ["http://a/1.jpg", "http://a/3.jpg"]
    assert cands[0].query == str(f) and cands[0].source == f"urls:{f}"
    (bad,) = [i for i in items if isinstance(i, Problem)]
    assert "lines 6" in bad.error and "keyword<TAB>url" in bad.error


def test_url_list_per_keyword_files(tmp_path):
    (tmp_path / "circle.txt").write_text("http://a/1.jpg\nhttp://a/2.jpg\n")
    template = str(tmp_path / "{keyword}.txt")
    urls = [i.url for i in sources.url_list_candidates("urls:x", template, "circle")]
    assert urls == ["http://a/1.jpg", "http://a/2.jpg"]
    (missing,) = list(sources.url_list_candidates("urls:x", template, "square"))
    assert isinstance(missing, Problem) and "square.txt does not exist" in missing.error


def test_folder_matched_by_normalized_class_name(tmp_path):
    folder = tmp_path / "photos" / "Golden  Retriever"
    folder.mkdir(parents=True)
    (folder / "b.jpg").write_bytes(demo_images.render("circle", 0, size=32))
    (folder / "a.png").write_bytes(b"not really a png")
    items = list(sources.folder_candidates("folder:p", str(tmp_path / "photos"), "golden retriever"))
    assert [os.path.basename(i.local_path) for i in items] == ["a.png", "b.jpg"]
    assert all(i.url.startswith("file://") and i.url.endswith(os.path.basename(i.local_path)) for i in items)
    (none,) = list(sources.folder_candidates("folder:p", str(tmp_path / "photos"), "cat"))
    assert isinstance(none, Problem) and "no subfolder for 'cat'" in none.error


def test_folder_symlink_leading_out_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not copy")
    folder = tmp_path / "photos" / "circle"
    folder.mkdir(parents=True)
    os.symlink(secret, folder / "link.jpg")
    (item,) = list(sources.folder_candidates("folder:p", str(tmp_path / "photos"), "circle"))
    assert isinstance(item, Problem) and "outside" in item.error

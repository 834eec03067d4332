"""The report in a real browser (headless Chromium, networking disabled): it renders,
nothing leaves the file, and every section header is on the page."""

from __future__ import annotations

import pytest

from keyclass.pipeline.report import gather
from keyclass.pipeline.report.write import write_report
from tests.report import fixtures
from tests.report.browser import chromium, open_page
from tests.report.page import Page

pytestmark = pytest.mark.skipif(
    chromium() is None, reason="chromium is not installed: run .ci/setup as root, or apt-get install -y chromium"
)


def test_the_report_renders_offline_with_every_section(tmp_path):
    kwargs = fixtures.full_run(tmp_path)
    html = tmp_path / "report.html"
    write_report(html, **kwargs)
    opened = open_page(html, tmp_path / "chromium")
    assert opened.pixel_std() > 20, "the page rendered blank"
    assert opened.page_requests == []
    assert Page(opened.dom).h2 == list(gather.SECTIONS.values())


def test_the_browser_check_sees_a_page_that_fetches(tmp_path):
    """The request check can fail: a page with an external image and stylesheet."""
    html = tmp_path / "bad.html"
    html.write_text(
        '<html><body><h2>x</h2><img src="http://images.example/x.png">'
        '<link rel="stylesheet" href="https://cdn.example/s.css"></body></html>'
    )
    opened = open_page(html, tmp_path / "chromium", height=400)
    assert "http://images.example/x.png" in opened.page_requests
    assert "https://cdn.example/s.css" in opened.page_requests

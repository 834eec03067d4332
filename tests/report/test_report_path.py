"""A report is written only where nothing of the user's would be replaced: a new file, or
an earlier keyclass report (a folder, a user's file or a link is refused with exit 2)."""

from __future__ import annotations

import os

import pytest

from keyclass.components.errors import ConfigError
from keyclass.pipeline.report.write import GENERATOR_MARK, check_report_path, write_report
from tests.report import fixtures


def test_a_new_file_or_an_earlier_report_may_be_written(tmp_path):
    check_report_path(tmp_path / "new.html")
    check_report_path(tmp_path / "deeper" / "new.html")
    earlier = tmp_path / "report.html"
    write_report(earlier, **fixtures.full_run(tmp_path / "run", curation=False, calibration=False, faithfulness=False))
    assert GENERATOR_MARK in earlier.read_text()[:4096]  # the template carries the mark the check reads
    check_report_path(earlier)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p.write_text("my notes"),
        lambda p: p.write_text("<!DOCTYPE html><html><head><title>mine</title></head></html>"),
        lambda p: p.mkdir(),
        lambda p: os.symlink("/etc/hostname", p),
        lambda p: os.symlink(p.parent / "nowhere", p),
    ],
    ids=["text", "someone-elses-html", "folder", "link", "dangling-link"],
)
def test_anything_else_is_refused_and_left_alone(tmp_path, make):
    path = tmp_path / "out.html"
    make(path)
    before = path.read_bytes() if path.is_file() and not path.is_symlink() else None
    with pytest.raises(ConfigError, match="--out"):
        check_report_path(path)
    if before is not None:
        assert path.read_bytes() == before

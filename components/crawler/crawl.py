"""The crawl itself: keywords -> sources -> safe downloads -> ``images/<sha256>`` + manifest + report.

Plain functions on a ``CrawlConfig`` and an output directory (local or any filesystem
``tfx.dsl.io.fileio`` knows); the executor only unpacks and calls :func:`crawl` and
:func:`check_minimums`.

For each class (``parse_classes`` order) the sources are tried in the configured order
until ``max_images_per_class`` distinct images are stored. Downloads of a batch run in a
thread pool; results are recorded in submission order so the manifest is deterministic.
The quota counts distinct contents per class: a second URL serving the same bytes gets a
manifest line (same ``path``) and is counted as a duplicate, not as a new image.

A crawl killed at any point (SIGKILL) leaves only whole images (each is written to a
``.part`` file and renamed); a rerun into the same directory removes the ``.part`` files,
rewrites the manifest from the start and completes
(``tests/crawler/test_interrupted.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from absl import logging
from tfx.dsl.io import fileio

from keyclass.components import layout, progress
from keyclass.components.classes import parse_classes
from keyclass.components.crawler import fetch as fetch_lib
from keyclass.components.crawler import sources as sources_lib
from keyclass.components.crawler.settings import KNOWN_ENGINES, CrawlConfig

# Magic numbers for the content type of local files (HTTP responses say their own).
_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


PART_SUFFIX = ".part"  # images/<sha256>.part: a file being written, renamed when whole


class CrawlError(RuntimeError):
    """Some class ended below ``min_images_per_class``; the message names each one."""


def sniff_content_type(data: bytes) -> str:
    """Content type from the first bytes (``application/octet-stream`` when unknown)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, ctype in _MAGIC:
        if data.startswith(magic):
            return ctype
    return "application/octet-stream"


def fetch_settings(cfg: CrawlConfig) -> fetch_lib.FetchSettings:
    return fetch_lib.FetchSettings(
        allow_loopback=bool(cfg.allow_loopback),
        max_bytes=int(cfg.max_bytes),
        connect_timeout_s=float(cfg.connect_timeout_s),
        read_timeout_s=float(cfg.read_timeout_s),
        total_timeout_s=float(cfg.total_timeout_s),
        retries=int(cfg.retries),
        backoff_s=float(cfg.backoff_s),
        per_host_delay_s=float(cfg.per_host_delay_s),
    )


def read_local(candidate: sources_lib.Candidate, max_bytes: int) -> fetch_lib.FetchResult:
    """Copy-source for ``folder:`` candidates, with the same size cap as downloads."""
    result = fetch_lib.FetchResult(url=candidate.url, final_url=candidate.url, attempts=1)
    try:
        with fileio.open(candidate.local_path, "rb") as f:
            data = f.read(max_bytes + 1)
    except (OSError, fileio.NotFoundError) as e:
        result.error = f"cannot read {candidate.local_path}: {e}"
        return result
    if len(data) > max_bytes:
        result.error = f"TooLargeError: file exceeds max_bytes={max_bytes}"
    elif not data:
        result.error = "empty file"
    else:
        result.content = data
        result.content_type = sniff_content_type(data)
    return result


def get_candidate(
    candidate: sources_lib.Candidate, settings: fetch_lib.FetchSettings, throttle: fetch_lib.HostThrottle
) -> fetch_lib.FetchResult:
    """Download (or read) one candidate; never raises for network or file trouble."""
    if candidate.local_path:
        return read_local(candidate, settings.max_bytes)
    return fetch_lib.fetch(candidate.url, settings, throttle)


def manifest_record(
    keyword: str,
    source: str,
    query: str,
    url: str,
    *,
    final_url: str = "",
    http_status: int | None = None,
    nbytes: int = 0,
    sha256: str = "",
    content_type: str = "",
    error: str = "",
    path: str = "",
) -> dict[str, Any]:
    """One manifest line, every key from components.layout always present."""
    return {
        layout.M_KEYWORD: keyword,
        layout.M_SOURCE: source,
        layout.M_QUERY: query,
        layout.M_URL: url,
        layout.M_FINAL_URL: final_url,
        layout.M_STATUS: http_status,
        layout.M_BYTES: nbytes,
        layout.M_SHA256: sha256,
        layout.M_CONTENT_TYPE: content_type,
        layout.M_ERROR: error,
        layout.M_PATH: path,
    }


def store_image(output_uri: str, content: bytes) -> tuple[str, str]:
    """Write ``content`` to ``images/<sha256>`` (once); returns (sha256, relative path).
    The name comes from the bytes only, so nothing from a URL can pick a path."""
    digest = hashlib.sha256(content).hexdigest()
    rel = f"{layout.IMAGES_DIR}/{digest}"
    full = os.path.join(output_uri, layout.IMAGES_DIR, digest)
    if not fileio.exists(full):
        tmp = f"{full}{PART_SUFFIX}"
        with fileio.open(tmp, "wb") as f:
            f.write(content)
        fileio.rename(tmp, full, overwrite=True)
    return digest, rel


def _new_source_report() -> dict[str, Any]:
    return {
        "results": 0,
        "downloaded": 0,
        "failed": 0,
        "duplicates": 0,
        "repeated_urls": 0,
        "skipped_by_parser": 0,
        "errors": [],
    }


class _Crawl:
    """State of one crawl: settings, pool, open manifest, report."""

    def __init__(self, cfg: CrawlConfig, output_uri: str, manifest, pool: ThreadPoolExecutor, progress: bool):
        self.cfg = cfg
        self.output_uri = output_uri
        self.manifest = manifest
        self.pool = pool
        self.show_progress = progress
        self.settings = fetch_settings(cfg)
        self.throttle = fetch_lib.HostThrottle(cfg.per_host_delay_s)
        self.report: dict[str, Any] = {
            "snapshot": cfg.snapshot,
            "sources": list(cfg.sources),
            "search_url": dict(cfg.search_url),
            "max_images_per_class": cfg.max_images_per_class,
            "min_images_per_class": cfg.min_images_per_class,
            "classes": {},
            "engine_errors": [],
            "total_images": 0,
        }

    def write(self, record: dict[str, Any]) -> None:
        self.manifest.write(json.dumps(record) + "\n")

    def fetch_page(self, url: str) -> fetch_lib.FetchResult:
        return fetch_lib.fetch(url, self.settings, self.throttle)

    def problem(self, p: sources_lib.Problem, src: dict[str, Any]) -> None:
        logging.error("ImageCrawler: source %s failed for keyword %r: %s (%s)", p.source, p.keyword, p.error, p.url)
        src["errors"].append(p.error)
        self.report["engine_errors"].append(
            {"keyword": p.keyword, "source": p.source, "url": p.url, "http_status": p.http_status, "error": p.error}
        )
        self.write(manifest_record(p.keyword, p.source, p.query, p.url, http_status=p.http_status, error=p.error))

    def keyword(self, keyword: str) -> None:
        quota = self.cfg.max_images_per_class
        stored: set[str] = set()
        seen_urls: set[str] = set()
        rep: dict[str, Any] = {"downloaded": 0, "sources_tried": [], "sources": {}}
        self.report["classes"][keyword] = rep
        bar = progress.Bar(quota, keyword) if self.show_progress else None
        for source in self.cfg.sources:
            if len(stored) >= quota:
                break
            src = rep["sources"].setdefault(source, _new_source_report())
            rep["sources_tried"].append(source)
            if bar:
                bar.note(source)
            items = sources_lib.candidates_for(source, keyword, self.cfg.search_url, self.fetch_page)
            exhausted = False
            while len(stored) < quota and not exhausted:
                batch: list[sources_lib.Candidate] = []
                while len(batch) < quota - len(stored):
                    item = next(items, None)
                    if item is None:
                        exhausted = True
                        break
                    if isinstance(item, sources_lib.Problem):
                        self.problem(item, src)
                    elif isinstance(item, sources_lib.Skipped):
                        src["skipped_by_parser"] += 1
                        self.write(manifest_record(item.keyword, item.source, item.query, item.url, error=item.error))
                    elif item.url in seen_urls:
                        src["repeated_urls"] += 1
                    else:
                        seen_urls.add(item.url)
                        batch.append(item)
                src["results"] += len(batch)
                futures = [self.pool.submit(get_candidate, c, self.settings, self.throttle) for c in batch]
                for cand, future in zip(batch, futures, strict=True):
                    if self.record(cand, future.result(), stored, src) and bar:
                        bar.update(1)
        rep["downloaded"] = len(stored)
        self.report["total_images"] += len(stored)
        if bar:
            bar.close(keyword_summary(keyword, rep, quota))

    def record(self, cand: sources_lib.Candidate, res: fetch_lib.FetchResult, stored: set[str], src: dict) -> bool:
        """Store a result and write its manifest line; True if it is a new image for the class."""
        common = dict(final_url=res.final_url, http_status=res.status, content_type=res.content_type)
        if not res.ok:
            src["failed"] += 1
            logging.info("ImageCrawler: %s [%s] %s: %s", cand.keyword, cand.source, cand.url, res.error)
            self.write(manifest_record(cand.keyword, cand.source, cand.query, cand.url, error=res.error, **common))
            return False
        content = res.content or b""
        digest, rel = store_image(self.output_uri, content)
        self.write(
            manifest_record(
                cand.keyword, cand.source, cand.query, cand.url, nbytes=len(content), sha256=digest, path=rel, **common
            )
        )
        if digest in stored:
            src["duplicates"] += 1
            return False
        stored.add(digest)
        src["downloaded"] += 1
        return True


def keyword_summary(keyword: str, rep: dict[str, Any], quota: int) -> str:
    """The one line a keyword's crawl ends with: the real total and why it stopped,
    e.g. ``golden retriever: 165 found, engine exhausted``."""
    found = rep["downloaded"]
    if found >= quota:
        return f"{keyword}: {found} found"
    failed, exhausted = [], []
    for source in rep["sources_tried"]:
        s = rep["sources"][source]
        if s["errors"] and not s["results"]:
            failed.append(f"{source} failed ({s['errors'][0]})")
        else:
            exhausted.append(source)
    reasons = []
    if exhausted:
        engine_only = len(exhausted) == 1 and exhausted[0] in KNOWN_ENGINES
        reasons.append(f"{'engine' if engine_only else ' and '.join(exhausted)} exhausted")
    return f"{keyword}: {found} found, " + ", ".join(reasons + failed)


def crawl(cfg: CrawlConfig, output_uri: str, *, progress: bool = True) -> dict[str, Any]:
    """Crawl every class of ``cfg`` into ``output_uri``; returns the report (also written
    to ``crawl_report.json``). Never raises for a short class: see :func:`check_minimums`."""
    images_dir = os.path.join(output_uri, layout.IMAGES_DIR)
    fileio.makedirs(images_dir)
    for name in fileio.listdir(images_dir):  # half-written files of a crawl killed mid-write
        name = name.decode() if isinstance(name, bytes) else name
        if name.endswith(PART_SUFFIX):
            fileio.remove(os.path.join(images_dir, name))
    with (
        fileio.open(os.path.join(output_uri, layout.MANIFEST), "w") as manifest,
        ThreadPoolExecutor(max_workers=cfg.download_threads, thread_name_prefix="crawl") as pool,
    ):
        state = _Crawl(cfg, output_uri, manifest, pool, progress)
        for keyword in parse_classes(cfg.classes):
            state.keyword(keyword)
            logging.info("ImageCrawler: %r: %d images", keyword, state.report["classes"][keyword]["downloaded"])
    report = state.report
    for rep in report["classes"].values():
        rep["ok"] = rep["downloaded"] >= cfg.min_images_per_class
    with fileio.open(os.path.join(output_uri, layout.CRAWL_REPORT), "w") as f:
        f.write(json.dumps(report, indent=2, sort_keys=True))
    return report


def shortfalls(report: dict[str, Any], min_images: int) -> list[str]:
    """One line per class below ``min_images``: count, sources tried and their errors."""
    lines = []
    for keyword, rep in report["classes"].items():
        if rep["downloaded"] >= min_images:
            continue
        tried = []
        for source in rep["sources_tried"]:
            s = rep["sources"][source]
            detail = f"{s['downloaded']} new of {s['results']} results, {s['failed']} failed"
            if s["errors"]:
                detail += f"; error: {s['errors'][0]}"
            tried.append(f"{source} ({detail})")
        lines.append(
            f"class {keyword!r}: {rep['downloaded']} images, fewer than min_images_per_class={min_images}; "
            f"sources tried: {', '.join(tried) or 'none'}"
        )
    return lines


def check_minimums(report: dict[str, Any], min_images: int, output_uri: str = "") -> None:
    """Raise CrawlError naming every class below ``min_images`` (manifest and report are
    already written, so the user can see why)."""
    lines = shortfalls(report, min_images)
    if lines:
        where = f"\nSee {os.path.join(output_uri, layout.MANIFEST)} and {layout.CRAWL_REPORT}." if output_uri else ""
        raise CrawlError("the crawl collected too few images:\n  - " + "\n  - ".join(lines) + where)

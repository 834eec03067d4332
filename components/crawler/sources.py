"""Where candidate images come from: search engines, URL lists and local folders.

Each source turns one keyword into a lazy stream of :class:`Candidate` (something to
download or copy) and :class:`Problem` (a loud, recorded failure of the source itself).
The executor pulls from the stream only as many candidates as the quota still needs.

Sources, as written in ``CrawlConfig.sources``:

- ``bing`` / ``google``: result pages from the engine's endpoint (``search_url`` or the
  public address), read where icrawler's parsers read them (Bing: the ``m`` JSON of each
  ``div.imgpt`` result; Google: the ``["URL", height, width]`` entries of the page's
  scripts), but every result URL is kept whatever its extension or query string:
  icrawler's own regexes keep only URLs ending in ``.jpg`` (Bing) or jpg/png/bmp
  (Google), so ``.jpeg``, ``.png``, ``.webp`` and ``?w=...`` results were silently lost.
  Whether a result is an image is decided by its content (the cleaner's decoder). A
  result the parser cannot read (no or broken ``m`` JSON, no ``murl``, not http(s)) is
  yielded as :class:`Skipped` and gets its own manifest line. An engine that answers
  with an error, an empty page or a page with no results at all (its format changed)
  yields a Problem naming engine, keyword and page. icrawler's feeders hard-code the
  public hosts and its downloader is not safe enough, so neither is used.
- ``urls:FILE``: a text file of ``keyword<TAB>url`` lines (keyword matched by the one
  folder-name rule of :mod:`keyclass.components.classes`; blank lines and ``#``
  comments ignored). When FILE contains ``{keyword}`` (``urls:lists/{keyword}.txt``) it
  names one file per keyword holding plain URLs, one a line; the file name's keyword
  part follows the same rule (``lists/Golden_Retriever.txt`` serves ``golden retriever``).
- ``folder:DIR``: one subfolder per class, matched by normalised name
  (``DIR/Golden Retriever/`` serves ``golden retriever``); every regular file below
  it, in sorted order. Files outside the subfolder (symlinks pointing out) are refused.

The manifest's ``query`` is the search text for engines, the file read for ``urls``
and the class folder for ``folder``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

from bs4 import BeautifulSoup
from tfx.dsl.io import fileio

from keyclass.components.classes import folder_class_name, keyword_file
from keyclass.components.crawler.fetch import FetchResult

PUBLIC_SEARCH_URL = {
    "bing": "https://www.bing.com/images/async",
    "google": "https://www.google.com/search",
}
# Both engines stop serving new results after about 1000.
MAX_ENGINE_OFFSET = 1000


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One image to get: a URL to download, or a local file (``url`` is ``file://``)."""

    keyword: str
    source: str
    query: str
    url: str
    local_path: str = ""


@dataclasses.dataclass(frozen=True)
class Problem:
    """A source failed for a keyword (engine error, changed page format, missing file)."""

    keyword: str
    source: str
    query: str
    url: str
    error: str
    http_status: int | None = None


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A result on an engine's page that the parser could not turn into a URL."""

    keyword: str
    source: str
    query: str
    url: str  # what the result named, or the page URL with ``#result=N``
    error: str


Item = Candidate | Problem | Skipped
PageFetcher = Callable[[str], FetchResult]


def source_kind(source: str) -> tuple[str, str]:
    """``"urls:/a/b.txt"`` -> ``("urls", "/a/b.txt")``; ``"bing"`` -> ``("bing", "")``."""
    kind, _, arg = source.partition(":")
    return kind, arg


# Engines --------------------------------------------------------------------------
def result_page_url(engine: str, endpoint: str, keyword: str, offset: int) -> str:
    """The URL of the result page starting at ``offset`` (what icrawler's feeders build)."""
    if engine == "bing":
        params = {"q": keyword, "first": offset}
    elif engine == "google":
        params = {"q": keyword, "ijn": offset // 100, "start": offset, "tbm": "isch"}
    else:
        raise ValueError(f"unknown engine {engine!r}")
    sep = "&" if "?" in endpoint else "?"
    return f"{endpoint}{sep}{urlencode(params)}"


def parse_bing_page(content: bytes) -> tuple[list[str], list[tuple[int, str, str]]]:
    """Result URLs of a Bing result page, in page order, and the results skipped as
    (position, what they named, why)."""
    soup = BeautifulSoup(content.decode("utf-8", "replace"), "html.parser")
    urls: list[str] = []
    skipped: list[tuple[int, str, str]] = []
    for pos, div in enumerate(soup.find_all("div", class_="imgpt")):
        link = div.find("a", attrs={"m": True})
        if link is None:
            skipped.append((pos, "", "no m attribute"))
            continue
        raw = link["m"]  # BeautifulSoup has already undone the HTML escaping
        try:
            meta = json.loads(raw)
        except ValueError as e:
            skipped.append((pos, "", f"m is not JSON ({e}): {raw[:80]!r}"))
            continue
        url = meta.get("murl") if isinstance(meta, dict) else None
        if not isinstance(url, str) or not url.strip():
            skipped.append((pos, "", f"no murl in m: {raw[:80]!r}"))
        elif not re.match(r"^https?://", url.strip(), re.I):
            skipped.append((pos, url.strip(), "murl is not http(s)"))
        else:
            urls.append(url.strip())
    return urls, skipped


# An image entry in Google's result scripts: ["https://...", height, width].
_GOOGLE_ENTRY = re.compile(r'\[\s*"(https?://(?:[^"\\]|\\.)+)"\s*,\s*\d+\s*,\s*\d+\s*\]')
_GOOGLE_THUMBNAIL = re.compile(r"^https?://encrypted-tbn\d*\.gstatic\.com/", re.I)


def parse_google_page(content: bytes) -> tuple[list[str], list[tuple[int, str, str]]]:
    """Image URLs in a Google result page's scripts (its own thumbnails left out), and
    the entries skipped as (position, what they named, why)."""
    soup = BeautifulSoup(content.decode("utf-8", "replace"), "html.parser")
    urls: list[str] = []
    skipped: list[tuple[int, str, str]] = []
    pos = 0
    for script in soup.find_all("script"):
        for m in _GOOGLE_ENTRY.finditer(script.get_text()):
            try:
                url = json.loads(f'"{m.group(1)}"')  # JSON string escapes (\u003d, \/)
            except ValueError as e:
                skipped.append((pos, m.group(1)[:200], f"undecodable URL ({e})"))
            else:
                if not _GOOGLE_THUMBNAIL.match(url):
                    urls.append(url)
            pos += 1
    return urls, skipped


_PARSERS = {"bing": parse_bing_page, "google": parse_google_page}


def engine_candidates(
    engine: str, endpoint: str, keyword: str, fetch_page: PageFetcher, source: str | None = None
) -> Iterator[Item]:
    """Page through ``engine`` for ``keyword``. The first page must give results; any
    failure is yielded as a Problem (and ends this engine for this keyword)."""
    source = source or engine
    seen: set[str] = set()
    offset = 0
    first_page = True
    while offset < MAX_ENGINE_OFFSET:
        page_url = result_page_url(engine, endpoint, keyword, offset)
        page = fetch_page(page_url)
        if not page.ok:
            if first_page or page.error != "empty body":
                yield Problem(keyword, source, keyword, page_url, f"{engine} search failed: {page.error}", page.status)
            return
        found, skipped = _PARSERS[engine](page.content or b"")
        urls = list(dict.fromkeys(found))
        new = [u for u in urls if u not in seen]
        if not first_page and not new:
            return  # past the last page (or the same page again): nothing here is new
        for pos, named, why in skipped:
            where = named or f"{page_url}#result={offset + pos}"
            yield Skipped(keyword, source, keyword, where, f"{engine} parser skipped a result: {why}")
        if not urls:
            if first_page:
                yield Problem(
                    keyword,
                    source,
                    keyword,
                    page_url,
                    f"{engine} page format changed? parser found no results in a {len(page.content or b'')}-byte page",
                    page.status,
                )
            return
        for url in new:
            seen.add(url)
            yield Candidate(keyword, source, keyword, url)
        first_page = False
        offset += len(found) + len(skipped)


# URL lists ------------------------------------------------------------------------
def url_list_candidates(source: str, path_template: str, keyword: str) -> Iterator[Item]:
    """Candidates from a ``urls:FILE`` source (format in the module docstring)."""
    per_keyword = "{keyword}" in path_template
    path = (keyword_file(path_template, keyword) if per_keyword else None) or path_template.replace(
        "{keyword}", keyword
    )
    if not fileio.exists(path):
        yield Problem(keyword, source, path, "", f"urls file {path} does not exist")
        return
    with fileio.open(path, "r") as f:
        text = f.read()
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    found = 0
    bad: list[int] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if per_keyword:
            url = line
        else:
            if "\t" not in line:
                bad.append(lineno)
                continue
            kw, _, url = line.partition("\t")
            if folder_class_name(kw) != folder_class_name(keyword):
                continue
        found += 1
        yield Candidate(keyword, source, path, url.strip())
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else "")
        yield Problem(keyword, source, path, "", f"urls file {path}: lines {shown} are not 'keyword<TAB>url'")
    if not found:
        yield Problem(keyword, source, path, "", f"urls file {path} lists no URLs for {keyword!r}")


# Folders --------------------------------------------------------------------------
def _is_local(path: str) -> bool:
    return "://" not in path


def _file_url(path: str) -> str:
    return Path(path).absolute().as_uri() if _is_local(path) else path


def find_class_folder(root: str, keyword: str) -> str | None:
    """The subfolder of ``root`` that names ``keyword`` by the one folder rule
    (:func:`keyclass.components.classes.folder_class_name`), if any."""
    if not fileio.isdir(root):
        return None
    wanted = folder_class_name(keyword)
    for name in sorted(fileio.listdir(root)):
        name = name.rstrip("/")
        if folder_class_name(name) == wanted and fileio.isdir(os.path.join(root, name)):
            return os.path.join(root, name)
    return None


def folder_candidates(source: str, root: str, keyword: str) -> Iterator[Item]:
    """Every regular file below ``root/<class>``, sorted; symlinks leading out are refused."""
    folder = find_class_folder(root, keyword)
    if folder is None:
        why = "does not exist" if not fileio.isdir(root) else f"has no subfolder for {keyword!r}"
        yield Problem(keyword, source, root, _file_url(root), f"folder {root} {why}")
        return
    real_root = os.path.realpath(folder) if _is_local(folder) else None
    found = 0
    for dirpath, _dirnames, filenames in sorted(fileio.walk(folder)):
        dirpath = dirpath.decode() if isinstance(dirpath, bytes) else dirpath
        for name in sorted(filenames):
            name = name.decode() if isinstance(name, bytes) else name
            path = os.path.join(dirpath, name)
            found += 1
            if real_root is not None:
                real = os.path.realpath(path)
                if os.path.commonpath([real, real_root]) != real_root:
                    yield Problem(
                        keyword, source, folder, _file_url(path), f"{path} resolves outside {folder}; refused"
                    )
                    continue
                if not os.path.isfile(real):
                    yield Problem(keyword, source, folder, _file_url(path), f"{path} is not a regular file")
                    continue
            yield Candidate(keyword, source, folder, _file_url(path), local_path=path)
    if not found:
        yield Problem(keyword, source, folder, _file_url(folder), f"folder {folder} holds no files")


# Cache key ------------------------------------------------------------------------
def local_sources_digest(sources: list[str], classes: list[str]) -> str:
    """A sha256 over what the ``urls:`` and ``folder:`` sources would give ``classes``
    now: each URL list's bytes, and the relative path and bytes of every file in each
    class folder. It is an execution property of the ImageCrawler, so TFX's cache key
    changes when a local source's content does (engines change with ``crawl.snapshot``).
    "" when no source is local."""
    h = hashlib.sha256()
    local = False
    for source in sources:
        kind, arg = source_kind(source)
        if kind not in ("urls", "folder"):
            continue
        local = True
        if _is_local(arg):
            arg = os.path.expanduser(arg)
        h.update(f"\0source\0{source}".encode())
        for keyword in classes:
            if kind == "urls":
                path = (
                    keyword_file(arg, keyword, exists=fileio.exists, isdir=fileio.isdir, listdir=fileio.listdir)
                    if "{keyword}" in arg
                    else arg
                )
                files = [(os.path.basename(path), path)] if path and fileio.exists(path) else []
            else:
                folder = find_class_folder(arg, keyword)
                files = _files_below(folder) if folder else []
            h.update(f"\0class\0{keyword}\0{len(files)}".encode())
            for rel, path in files:
                h.update(f"\0file\0{rel}\0".encode())
                _hash_file(h, path)
            if kind == "urls" and "{keyword}" not in arg:
                break  # one file serves every class
    return h.hexdigest() if local else ""


def _files_below(folder: str) -> list[tuple[str, str]]:
    out = []
    for dirpath, _dirnames, filenames in fileio.walk(folder):
        dirpath = dirpath.decode() if isinstance(dirpath, bytes) else dirpath
        for name in filenames:
            name = name.decode() if isinstance(name, bytes) else name
            path = os.path.join(dirpath, name)
            out.append((os.path.relpath(path, folder), path))
    return sorted(out)


def _hash_file(h, path: str) -> None:
    try:
        with fileio.open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except (OSError, fileio.NotFoundError) as e:  # unreadable now: the crawl will say so
        h.update(f"\0unreadable\0{type(e).__name__}".encode())


def candidates_for(source: str, keyword: str, search_url: dict[str, str], fetch_page: PageFetcher) -> Iterator[Item]:
    """The candidate stream of one configured source for one keyword."""
    kind, arg = source_kind(source)
    if kind in PUBLIC_SEARCH_URL:
        endpoint = search_url.get(kind) or PUBLIC_SEARCH_URL[kind]
        return engine_candidates(kind, endpoint, keyword, fetch_page, source)
    if kind in ("urls", "folder") and _is_local(arg):
        arg = os.path.expanduser(arg)  # as the command line checked it
    if kind == "urls":
        return url_list_candidates(source, arg, keyword)
    if kind == "folder":
        return folder_candidates(source, arg, keyword)
    raise ValueError(f"unknown source {source!r}")

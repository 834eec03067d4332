"""A loopback image search engine that speaks Bing's (and Google's) result-page format.

It lets the whole pipeline, from search to training, run without a network: the
offline demo points ``crawl.search_url.bing`` at it, and the crawler tests use it to
stage every kind of misbehaving server.

    with DemoSearchEngine(classes=["circle", "square"], images_per_class=40) as engine:
        cfg.crawl.search_url = {"bing": engine.search_url}
        cfg.crawl.allow_loopback = True
        ...

Routes:

- ``/images/async?q=KW&first=N``: a Bing-style page (``<div class="imgpt"><a m='{"murl":...}'>``)
  with the keyword's results ``[N, N + page_size)``;
- ``/search?q=KW&start=N``: the same results in a Google-style ``<script>`` block;
- ``/img/<keyword>/<index>.jpg``: ``provider(keyword, index)`` (default: demo_images.render);
- ``/r/<n>.jpg``: registered test responses (faults and arbitrary bytes).

A keyword's results are its registered extra results, in registration order, then
``images_per_class`` generated images when it is one of ``classes``. Tests register
faults with ``add_status``, ``add_stall``, ``add_redirect``, ``add_bytes``, ``add_flaky``
and ``add_result_url``, and replace a keyword's result pages with ``set_page``.

CLI: ``python -m pipeline.demo_engine --port 8765 --classes circle,square`` serves until
interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

from pipeline import demo_images
from pipeline.config import normalize_class_name

Provider = Callable[[str, int], bytes]


@dataclasses.dataclass
class Response:
    """A canned response for ``/r/<n>.jpg``.

    ``stall_s``: send the status line and headers (Content-Length promising more than
    the body), then nothing for that long. ``fail_first``: answer ``fail_status`` to the
    first N requests, then this response. ``send_length=False``: no Content-Length, the
    body ends when the connection closes (so only a streaming size cap can stop it).
    """

    status: int = 200
    body: bytes = b""
    content_type: str = "image/jpeg"
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    stall_s: float = 0.0
    fail_first: int = 0
    fail_status: int = 503
    send_length: bool = True
    served: int = 0


@dataclasses.dataclass
class _Page:
    status: int
    body: bytes
    content_type: str


class DemoSearchEngine:
    """Threaded loopback HTTP server; a context manager (``start()``/``close()`` too)."""

    def __init__(
        self,
        classes: Iterable[str] = demo_images.DEMO_CLASSES,
        images_per_class: int = 50,
        provider: Provider = demo_images.render,
        host: str = "127.0.0.1",
        port: int = 0,
        page_size: int = 35,
    ):
        self.classes = [normalize_class_name(c) for c in classes]
        self.images_per_class = images_per_class
        self.provider = provider
        self.page_size = page_size
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._extra: dict[str, list[str]] = {}
        self._responses: dict[str, Response] = {}
        self._pages: dict[str, _Page] = {}
        self._hits: Counter[str] = Counter()
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle -----------------------------------------------------------------------
    def start(self) -> DemoSearchEngine:
        handler = type("Handler", (_Handler,), {"engine": self})
        self._server = ThreadingHTTPServer((self._host, self._port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="demo-engine", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()  # wakes stalled responses
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> DemoSearchEngine:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # Addresses -----------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("DemoSearchEngine is not running; use it as a context manager or call start()")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def search_url(self) -> str:
        """The Bing-style endpoint, for ``crawl.search_url["bing"]``."""
        return f"{self.base_url}/images/async"

    @property
    def google_search_url(self) -> str:
        """The Google-style endpoint, for ``crawl.search_url["google"]``."""
        return f"{self.base_url}/search"

    def image_url(self, keyword: str, index: int) -> str:
        return f"{self.base_url}/img/{quote(normalize_class_name(keyword))}/{index}.jpg"

    # Test registration ---------------------------------------------------------------
    def add_result_url(self, keyword: str, url: str) -> str:
        """Put ``url`` (anywhere) into ``keyword``'s results, before the generated ones."""
        with self._lock:
            self._extra.setdefault(normalize_class_name(keyword), []).append(url)
        return url

    def add_response(self, keyword: str, response: Response) -> str:
        """Serve ``response`` at a fresh ``/r/<n>.jpg`` listed in ``keyword``'s results."""
        with self._lock:
            name = f"/r/{len(self._responses)}.jpg"
            self._responses[name] = response
        return self.add_result_url(keyword, self.base_url + name)

    def add_status(self, keyword: str, status: int, body: bytes = b"") -> str:
        return self.add_response(keyword, Response(status=status, body=body, content_type="text/plain"))

    def add_bytes(self, keyword: str, data: bytes, content_type: str = "image/jpeg", send_length: bool = True) -> str:
        return self.add_response(keyword, Response(body=data, content_type=content_type, send_length=send_length))

    def add_stall(self, keyword: str, seconds: float = 30.0) -> str:
        return self.add_response(keyword, Response(body=b"\xff\xd8\xff", stall_s=seconds))

    def add_redirect(self, keyword: str, location: str, status: int = 302) -> str:
        return self.add_response(keyword, Response(status=status, headers={"Location": location}))

    def add_flaky(self, keyword: str, failures: int, data: bytes | None = None, status: int = 503) -> str:
        """Fails ``failures`` times with ``status``, then serves ``data`` (a demo image by default)."""
        body = data if data is not None else demo_images.render("circle", 10_000 + len(self._responses))
        return self.add_response(keyword, Response(body=body, fail_first=failures, fail_status=status))

    def set_page(self, keyword: str, body: bytes | str, status: int = 200, content_type: str = "text/html") -> None:
        """Answer every result-page request for ``keyword`` with this (empty page, changed format, 500...)."""
        data = body.encode() if isinstance(body, str) else body
        with self._lock:
            self._pages[normalize_class_name(keyword)] = _Page(status, data, content_type)

    def hits(self, url_or_path: str) -> int:
        """How many requests reached ``url_or_path`` (query string ignored)."""
        path = urlsplit(url_or_path).path or url_or_path
        with self._lock:
            return self._hits[path]

    # What the handler serves -----------------------------------------------------------
    def results(self, keyword: str) -> list[str]:
        keyword = normalize_class_name(keyword)
        with self._lock:
            extra = list(self._extra.get(keyword, []))
        generated = (
            [self.image_url(keyword, i) for i in range(self.images_per_class)] if keyword in self.classes else []
        )
        return extra + generated

    def bing_page(self, keyword: str, first: int) -> bytes:
        items = []
        for i, url in enumerate(self.results(keyword)[first : first + self.page_size], start=first):
            meta = json.dumps({"murl": url, "turl": url, "t": f"{keyword} {i}"}, separators=(",", ":"))
            items.append(f'<li><div class="imgpt"><a class="iusc" m="{html.escape(meta)}" href="#">{i}</a></div></li>')
        return (f'<html><body><ul class="dgControl_list">{"".join(items)}</ul></body></html>').encode()

    def google_page(self, keyword: str, start: int) -> bytes:
        urls = self.results(keyword)[start : start + self.page_size]
        data = json.dumps([[1, [None, None, None, [u, 256, 256]]] for u in urls])
        return (
            f"<html><body><script>AF_initDataCallback({{key: 'ds:1', data: {data}}});</script></body></html>".encode()
        )


class _Handler(BaseHTTPRequestHandler):
    engine: DemoSearchEngine
    server_version = "DemoSearchEngine/1.0"

    def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None, length=True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        engine = self.engine
        parts = urlsplit(self.path)
        with engine._lock:
            engine._hits[parts.path] += 1
        query = parse_qs(parts.query)
        keyword = normalize_class_name(query.get("q", [""])[0])
        if parts.path in ("/images/async", "/search"):
            page = engine._pages.get(keyword)
            if page is not None:
                return self._send(page.status, page.body, page.content_type)
            if parts.path == "/images/async":
                body = engine.bing_page(keyword, _int(query.get("first", ["0"])[0]))
            else:
                body = engine.google_page(keyword, _int(query.get("start", ["0"])[0]))
            return self._send(200, body, "text/html; charset=utf-8")
        if parts.path.startswith("/img/"):
            return self._image(parts.path)
        if parts.path in engine._responses:
            return self._canned(engine._responses[parts.path])
        self._send(404, b"not found", "text/plain")

    def _image(self, path: str) -> None:
        try:
            _, _, kw, name = path.split("/", 3)
            index = int(name.removesuffix(".jpg"))
            body = self.engine.provider(unquote(kw), index)
        except (ValueError, KeyError):
            return self._send(404, b"no such image", "text/plain")
        self._send(200, body, "image/jpeg")

    def _canned(self, r: Response) -> None:
        with self.engine._lock:
            r.served += 1
            failing = r.served <= r.fail_first
        if failing:
            return self._send(r.fail_status, b"try again", "text/plain", {"Retry-After": "0"})
        if r.stall_s:
            self.send_response(r.status)
            self.send_header("Content-Type", r.content_type)
            self.send_header("Content-Length", str(len(r.body) + 1000))
            self.end_headers()
            self.wfile.write(r.body)
            self.wfile.flush()
            self.engine._closing.wait(r.stall_s)
            return
        self._send(r.status, r.body, r.content_type, r.headers, length=r.send_length)


def _int(value: str) -> int:
    try:
        return max(0, int(value))
    except ValueError:
        return 0


def main(argv: list[str] | None = None) -> None:
    """Serve demo images until interrupted."""
    ap = argparse.ArgumentParser(prog="python -m pipeline.demo_engine", description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--classes", default=",".join(demo_images.DEMO_CLASSES))
    ap.add_argument("--images-per-class", type=int, default=60)
    args = ap.parse_args(argv)
    classes = [c for c in (normalize_class_name(c) for c in args.classes.split(",")) if c]
    unknown = [c for c in classes if c not in demo_images.DEMO_CLASSES]
    if unknown:
        ap.error(f"no demo images for {', '.join(unknown)}; choose from {', '.join(demo_images.DEMO_CLASSES)}")
    engine = DemoSearchEngine(classes, args.images_per_class, host=args.host, port=args.port).start()
    print(f"Demo search engine for {', '.join(classes)} at {engine.search_url}", flush=True)
    print(f"  crawl with: --source bing --search-url bing={engine.search_url} --allow-loopback", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        engine.close()


if __name__ == "__main__":
    main()

"""A loopback image search engine that speaks Bing's (and Google's) result-page format.

It lets the whole pipeline, from search to training, run without a network: the
offline demo points ``crawl.search_url.bing`` at it.

    with DemoSearchEngine(classes=["circle", "square"], images_per_class=40) as engine:
        cfg.crawl.search_url = {"bing": engine.search_url}
        cfg.crawl.allow_loopback = True
        ...

Routes:

- ``/images/async?q=KW&first=N``: a Bing-style page (``<div class="imgpt"><a m='{"murl":...}'>``)
  with the keyword's results ``[N, N + page_size)``;
- ``/search?q=KW&start=N``: the same results in a Google-style ``<script>`` block;
- ``/img/<keyword>/<index>.<ext>``: ``provider(keyword, index)`` (default:
  demo_images.render) in the format its extension names. Like real results, the URLs mix
  ``.jpg``, ``.jpeg``, ``.png`` and ``.webp``, and some carry a query string
  (:meth:`DemoSearchEngine.image_url`), so a crawler that keeps only ``.jpg`` results
  falls short.

Subclasses add results and routes through :meth:`DemoSearchEngine.extra_results`,
:meth:`DemoSearchEngine.page_override` and :meth:`DemoSearchEngine.serve_extra` (the
tests' misbehaving servers live in ``tests/fixtures/engine.py``, not here).

CLI: ``python -m keyclass.pipeline.demo_engine --port 8765 --classes circle,square``
serves until interrupted.
"""

from __future__ import annotations

import argparse
import html
import io
import json
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

from PIL import Image

from keyclass.components.classes import normalize_class_name
from keyclass.pipeline import demo_images

Provider = Callable[[str, int], bytes]

# Result URL extensions, in turn by index: (extension, Pillow format, content type).
IMAGE_FORMATS = (
    ("jpg", "JPEG", "image/jpeg"),
    ("jpeg", "JPEG", "image/jpeg"),
    ("png", "PNG", "image/png"),
    ("webp", "WEBP", "image/webp"),
)


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
        self._closing.set()  # wakes responses that wait on it
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
        """``index``'s result URL: the extension cycles through IMAGE_FORMATS and every
        third URL carries a query string, as image hosts' URLs do."""
        ext = IMAGE_FORMATS[index % len(IMAGE_FORMATS)][0]
        query = "?w=640&fmt=auto" if index % 3 == 2 else ""
        return f"{self.base_url}/img/{quote(normalize_class_name(keyword))}/{index}.{ext}{query}"

    def image_bytes(self, keyword: str, index: int, ext: str | None = None) -> tuple[bytes, str]:
        """What ``image_url(keyword, index)`` serves: the provider's image in the format
        of the URL's extension, and its content type."""
        ext = ext or IMAGE_FORMATS[index % len(IMAGE_FORMATS)][0]
        fmt, ctype = next((f, c) for e, f, c in IMAGE_FORMATS if e == ext)
        data = self.provider(normalize_class_name(keyword), index)
        if fmt == "JPEG":
            return data, ctype
        buf = io.BytesIO()
        Image.open(io.BytesIO(data)).convert("RGB").save(buf, fmt, **({"quality": 90} if fmt == "WEBP" else {}))
        return buf.getvalue(), ctype

    # Extension points ------------------------------------------------------------------
    def extra_results(self, keyword: str) -> list[str]:
        """Result URLs listed before the generated ones (none here)."""
        return []

    def page_override(self, keyword: str) -> tuple[int, bytes, str] | None:
        """(status, body, content type) answering every result page of ``keyword``, or None."""
        return None

    def serve_extra(self, handler: _Handler, path: str) -> bool:
        """Answer a path the engine does not know; True when answered."""
        return False

    def note_request(self, path: str) -> None:
        """Called for every request before it is answered."""

    # What the handler serves -----------------------------------------------------------
    def results(self, keyword: str) -> list[str]:
        keyword = normalize_class_name(keyword)
        extra = list(self.extra_results(keyword))
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

    def send(self, status: int, body: bytes, content_type: str, headers: dict | None = None, length=True) -> None:
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
        engine.note_request(parts.path)
        query = parse_qs(parts.query)
        keyword = normalize_class_name(query.get("q", [""])[0])
        if parts.path in ("/images/async", "/search"):
            page = engine.page_override(keyword)
            if page is not None:
                return self.send(*page)
            if parts.path == "/images/async":
                body = engine.bing_page(keyword, _int(query.get("first", ["0"])[0]))
            else:
                body = engine.google_page(keyword, _int(query.get("start", ["0"])[0]))
            return self.send(200, body, "text/html; charset=utf-8")
        if parts.path.startswith("/img/"):
            return self._image(parts.path)
        if engine.serve_extra(self, parts.path):
            return
        self.send(404, b"not found", "text/plain")

    def _image(self, path: str) -> None:
        try:
            _, _, kw, name = path.split("/", 3)
            stem, _, ext = name.partition(".")
            if ext not in {e for e, _, _ in IMAGE_FORMATS}:
                raise ValueError(ext)
            body, ctype = self.engine.image_bytes(unquote(kw), int(stem), ext)
        except (ValueError, KeyError, StopIteration):
            return self.send(404, b"no such image", "text/plain")
        self.send(200, body, ctype)


def _int(value: str) -> int:
    try:
        return max(0, int(value))
    except ValueError:
        return 0


def main(argv: list[str] | None = None) -> None:
    """Serve demo images until interrupted."""
    ap = argparse.ArgumentParser(prog="python -m keyclass.pipeline.demo_engine", description=__doc__.split("\n\n")[0])
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

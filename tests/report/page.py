"""Reading a report the way a browser would: parsed with ``html.parser``, not grepped."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser

from PIL import Image

# Attributes through which a page can make the browser fetch something.
URL_ATTRIBUTES = {
    "src",
    "href",
    "srcset",
    "action",
    "formaction",
    "poster",
    "data",
    "background",
    "xlink:href",
    "ping",
    "manifest",
    "cite",
    "longdesc",
    "usemap",
    "codebase",
    "archive",
    "lowsrc",
    "dynsrc",
    "imagesrcset",
}
# Elements that load or run something by their nature.
FORBIDDEN_TAGS = {
    "script",
    "link",
    "iframe",
    "frame",
    "object",
    "embed",
    "base",
    "form",
    "applet",
    "audio",
    "video",
    "source",
    "track",
    "portal",
}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Page(HTMLParser):
    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.images: list[dict] = []  # src, alt, ancestors' classes
        self.h2: list[str] = []
        self.missing: list[str] = []
        self.styles: list[str] = []
        self._stack: list[tuple[str, set[str]]] = []
        self._capture: list[list] = []  # (kind, text parts, depth)
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        self.tags.append((tag, a))
        classes = set(a.get("class", "").split())
        if a.get("style"):
            self.styles.append(a["style"])
        if tag == "img":
            self.images.append(
                {
                    "src": a.get("src", ""),
                    "alt": a.get("alt", ""),
                    "ancestors": [c for _, cs in self._stack for c in cs],
                }
            )
        if tag not in VOID:
            self._stack.append((tag, classes))
            if tag == "h2":
                self._capture.append(["h2", [], len(self._stack)])
            elif tag == "div" and "missing" in classes:
                self._capture.append(["missing", [], len(self._stack)])
            elif tag == "style":
                self._capture.append(["style", [], len(self._stack)])

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        while self._stack:
            open_tag, _ = self._stack.pop()
            depth = len(self._stack) + 1
            while self._capture and self._capture[-1][2] == depth:
                kind, parts, _ = self._capture.pop()
                text = " ".join("".join(parts).split())
                {"h2": self.h2, "missing": self.missing, "style": self.styles}[kind].append(text)
            if open_tag == tag:
                break

    def handle_data(self, data):
        for cap in self._capture:
            cap[1].append(data)


def external_references(html: str) -> list[str]:
    """Everything in the page that would make a browser load something from elsewhere."""
    page = Page(html)
    bad = []
    for tag, attrs in page.tags:
        if tag in FORBIDDEN_TAGS:
            bad.append(f"<{tag}>")
        if tag == "meta" and attrs.get("http-equiv", "").lower() == "refresh":
            bad.append("<meta http-equiv=refresh>")
        for name, value in attrs.items():
            if name.startswith("on"):
                bad.append(f"<{tag} {name}>")  # an inline script
            if name in URL_ATTRIBUTES:
                v = value.strip()
                if name == "href" and v.startswith("#"):
                    continue
                if name == "src" and v.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")):
                    continue
                bad.append(f"<{tag} {name}={v[:80]!r}>")
    for css in page.styles:
        for m in re.finditer(r"url\(\s*['\"]?([^'\")]*)", css, re.I):
            if not m.group(1).startswith("data:"):
                bad.append(f"css url({m.group(1)[:80]})")
        if re.search(r"@import", css, re.I):
            bad.append("css @import")
    return bad


def decode_image(src: str) -> Image.Image:
    header, _, payload = src.partition(",")
    assert header in ("data:image/png;base64", "data:image/jpeg;base64"), header
    img = Image.open(io.BytesIO(base64.b64decode(payload)))
    img.load()
    return img

"""Open a report in headless Chromium with networking disabled, as a user would.

Chromium's flags are the ones known to work on these machines (no sandbox as root, no
GPU, no background networking, a fresh profile); a proxy on a closed port and a host
resolver that resolves nothing make any network request fail, and Chromium's own net
log (``--log-net-log``) records every request that was attempted anyway. Requests the
page made carry its origin as initiator (``null`` for a file); Chromium's own
background requests carry ``not an origin`` and are not the page's doing.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

BROWSER_ONLY = "not an origin"


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclasses.dataclass
class Opened:
    screenshot: Path
    dom: str  # the DOM after loading, as Chromium serialises it
    page_requests: list[str]  # URLs the page itself asked for (file: and data: excluded)
    browser_requests: list[str]  # Chromium's own background requests (ignored)

    def pixel_std(self) -> float:
        with Image.open(self.screenshot) as img:
            return float(np.asarray(img.convert("L"), dtype=np.float32).std())


def open_page(html: Path, work: Path, width: int = 1280, height: int = 2400, timeout_s: int = 120) -> Opened:
    exe = chromium()
    if exe is None:
        raise FileNotFoundError("chromium is not installed: run .ci/setup as root, or apt-get install -y chromium")
    work.mkdir(parents=True, exist_ok=True)
    shot, netlog = work / "screenshot.png", work / "netlog.json"
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={work / 'profile'}",
        "--proxy-server=http://127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--log-net-log={netlog}",
        "--net-log-capture-mode=Everything",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
        f"--screenshot={shot}",
        "--dump-dom",
        html.resolve().as_uri(),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    if out.returncode != 0 or not shot.is_file():
        raise RuntimeError(f"chromium failed ({out.returncode}): {out.stderr[-2000:]}")
    log = json.loads(netlog.read_text())
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    page, browser = [], []
    for e in log["events"]:
        params = e.get("params") or {}
        if names.get(e["type"]) != "URL_REQUEST_START_JOB" or "url" not in params:
            continue
        url = params["url"]
        if params.get("initiator") == BROWSER_ONLY:
            browser.append(url)
        elif not url.startswith(("file:", "data:")):
            page.append(url)
    return Opened(shot, out.stdout, page, browser)

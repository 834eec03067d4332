"""A careful HTTP(S) GET for crawled URLs: the crawler's only way onto the network.

Why not ``requests`` or icrawler's downloader: both follow redirects wherever they
point and connect to whatever a name resolves to. Here every hop of a redirect chain
(at most ``MAX_REDIRECTS``) is checked before any byte is sent:

- scheme http or https only;
- the host is resolved and *every* address must be public; the socket then connects
  to one of those checked addresses (not to a second lookup) and its peer address is
  checked again, so DNS rebinding cannot slip a private address in;
- private, loopback, link-local (169.254.169.254, the cloud metadata service),
  multicast, reserved and unspecified addresses are refused; ``allow_loopback`` opens
  127.0.0.0/8 and ::1 only, for the loopback demo engine and tests;
- the body is capped at ``max_bytes`` (Content-Length is checked first, the stream is
  counted as it arrives; no compression is asked for);
- connect and read timeouts per socket operation plus one deadline for the whole
  fetch (retries, backoff and redirects included). The deadline holds in every phase:
  a watchdog shuts the socket down when it passes, whatever the socket waits for
  (connect, TLS handshake, the status line, header bytes a server drips one at a time,
  a chunk-size line, the body), so a slow or stalled server costs at most
  ``total_timeout_s``; name resolution, which cannot be interrupted, is waited for at
  most the connect timeout (within the deadline) and abandoned after;
- 429, 5xx and transport errors are retried with exponential backoff; ``Retry-After``
  (seconds or an HTTP date) on 429 and 503 is honoured, for every request to that host,
  up to :data:`MAX_RETRY_AFTER_S` and within the deadline; a longer wait gives up;
- a thread-safe per-host minimum delay between requests.

Environment proxies are not used: the checks above are only meaningful for a direct
connection.
"""

from __future__ import annotations

import dataclasses
import email.utils
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

from keyclass.components.crawler.settings import CrawlConfig

MAX_REDIRECTS = 5
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
CHUNK = 64 * 1024
# The longest Retry-After the crawler waits for; a server asking for more is given up on.
MAX_RETRY_AFTER_S = 60.0
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 keyclass/0.1"
)


class FetchError(Exception):
    """A fetch failed; ``retryable`` says whether trying again may help."""

    retryable = False

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class UnsafeURLError(FetchError):
    """The URL (or a redirect hop) points somewhere the crawler must not go."""


class TooLargeError(FetchError):
    """The body is larger than ``max_bytes``."""


class RetryableError(FetchError):
    """429, 5xx or a transport error."""

    retryable = True

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message, status)
        self.retry_after = retry_after


@dataclasses.dataclass(frozen=True)
class FetchSettings:
    """The network settings of one crawl (the CrawlConfig fields of the same names)."""

    # Defaults are the configuration's own (pipeline/config.py), never restated here.
    allow_loopback: bool = CrawlConfig.allow_loopback
    max_bytes: int = CrawlConfig.max_bytes
    connect_timeout_s: float = CrawlConfig.connect_timeout_s
    read_timeout_s: float = CrawlConfig.read_timeout_s
    total_timeout_s: float = CrawlConfig.total_timeout_s
    retries: int = CrawlConfig.retries
    backoff_s: float = CrawlConfig.backoff_s
    per_host_delay_s: float = CrawlConfig.per_host_delay_s


@dataclasses.dataclass
class FetchResult:
    """What one fetch produced. ``error`` is empty exactly when ``content`` is set."""

    url: str
    final_url: str = ""
    status: int | None = None
    content: bytes | None = None
    content_type: str = ""
    error: str = ""
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return not self.error and self.content is not None


class HostThrottle:
    """At least ``min_delay_s`` between the starts of two requests to the same host,
    across threads, and no request to a host before a ``Retry-After`` it sent has passed
    (:meth:`defer`). Each caller reserves the next free slot, then sleeps outside the lock."""

    def __init__(self, min_delay_s: float):
        self._delay = float(min_delay_s)
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, host: str, deadline: float | None = None) -> None:
        """Block until a request to ``host`` may start; raise if that is past ``deadline``."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next.get(host, now))
            if deadline is not None and slot > deadline:
                raise RetryableError(f"waiting for {host} (per-host delay or Retry-After) would pass the deadline")
            if self._delay > 0 or slot > now:
                self._next[host] = slot + self._delay
        if slot > now:
            time.sleep(slot - now)

    def defer(self, host: str, seconds: float) -> None:
        """No request to ``host`` starts within ``seconds`` from now (a Retry-After)."""
        with self._lock:
            until = time.monotonic() + seconds
            self._next[host] = max(self._next.get(host, 0.0), until)


def address_refusal(ip: str, allow_loopback: bool) -> str:
    """Why the crawler may not connect to ``ip``, or ``""`` when it may."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return f"not an IP address: {ip!r}"
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_loopback:
        return "" if allow_loopback else f"loopback address {addr} refused (allow_loopback is off)"
    for flag in ("is_link_local", "is_multicast", "is_unspecified", "is_reserved", "is_private"):
        if getattr(addr, flag):
            return f"{flag[3:].replace('_', '-')} address {addr} refused"
    if not addr.is_global:
        return f"non-public address {addr} refused"
    return ""


def check_url(url: str) -> tuple[str, str, int, str]:
    """Split ``url`` into (scheme, host, port, path?query); raise UnsafeURLError if not http(s)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeURLError(f"scheme {scheme or 'none'!r} refused (http and https only)")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as e:
        raise UnsafeURLError(f"bad URL {url!r}: {e}") from None
    if not host:
        raise UnsafeURLError(f"no host in URL {url!r}")
    if parts.username or parts.password:
        raise UnsafeURLError("credentials in URLs are refused")
    port = port or (443 if scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, host, port, target


def _getaddrinfo(host: str, port: int, timeout: float) -> list[tuple]:
    """``socket.getaddrinfo`` for TCP, given at most ``timeout`` seconds. The call itself
    cannot be interrupted, so a name runs in a daemon thread and a resolver that takes
    longer is abandoned there (it ends with the system resolver's own timeout); an
    address literal needs no lookup and resolves in place."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    outcome: dict[str, object] = {}

    def lookup() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = e

    worker = threading.Thread(target=lookup, name=f"resolve {host}", daemon=True)
    worker.start()
    worker.join(max(0.0, timeout))
    if worker.is_alive():
        raise RetryableError(f"resolving {host} took longer than {timeout:.1f} s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["infos"]  # type: ignore[return-value]


def _resolve(host: str, port: int, allow_loopback: bool, timeout: float) -> list[tuple]:
    try:
        infos = _getaddrinfo(host, port, timeout)
    except socket.gaierror as e:
        raise FetchError(f"cannot resolve {host}: {e.strerror}") from None
    for info in infos:
        why = address_refusal(info[4][0], allow_loopback)
        if why:
            raise UnsafeURLError(f"{host}: {why}")
    if not infos:
        raise FetchError(f"cannot resolve {host}: no addresses")
    return infos


def safe_connect(
    host: str,
    port: int,
    *,
    allow_loopback: bool,
    connect_timeout: float,
    tls: bool,
    watch: Callable[[socket.socket], None] | None = None,
) -> socket.socket:
    """A socket connected to a checked address of ``host`` (TLS-wrapped when ``tls``).
    ``watch`` is handed each socket as soon as it exists (the deadline watchdog)."""
    last: OSError | None = None
    for family, type_, proto, _, sockaddr in _resolve(host, port, allow_loopback, connect_timeout):
        sock = socket.socket(family, type_, proto)
        if watch is not None:
            watch(sock)
        try:
            sock.settimeout(connect_timeout)
            sock.connect(sockaddr)
        except OSError as e:
            sock.close()
            last = e
            continue
        why = address_refusal(sock.getpeername()[0], allow_loopback)
        if why:
            sock.close()
            raise UnsafeURLError(f"{host}: connected peer {why}")
        if not tls:
            return sock
        try:
            tls_sock = ssl.create_default_context().wrap_socket(
                sock, server_hostname=host, do_handshake_on_connect=False
            )
            if watch is not None:
                watch(tls_sock)  # the plain socket object is detached now
            tls_sock.do_handshake()
            return tls_sock
        except ssl.SSLCertVerificationError as e:
            sock.close()
            raise FetchError(f"TLS certificate refused for {host}: {e.verify_message}") from None
        except OSError as e:  # handshake reset or timed out: worth a retry
            sock.close()
            raise RetryableError(f"TLS handshake with {host}:{port} failed: {e}") from None
    raise RetryableError(f"cannot connect to {host}:{port}: {last}")


class _Connection(http.client.HTTPConnection):
    """HTTPConnection whose connect() goes through :func:`safe_connect`."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: bool,
        allow_loopback: bool,
        connect_timeout: float,
        watch: Callable[[socket.socket], None] | None = None,
    ):
        super().__init__(host, port, timeout=connect_timeout)
        self._tls = tls
        self._allow_loopback = allow_loopback
        self._connect_timeout = connect_timeout
        self._watch = watch

    def connect(self) -> None:
        self.sock = safe_connect(
            self.host,
            self.port,
            allow_loopback=self._allow_loopback,
            connect_timeout=self._connect_timeout,
            tls=self._tls,
            watch=self._watch,
        )


class _Watchdog:
    """Shuts the watched socket down when the fetch's deadline passes, so no blocking
    call on it (connect, handshake, status line, headers, chunk sizes, body) outlives
    the deadline; :attr:`fired` then tells the reader why the bytes stopped."""

    def __init__(self, deadline: float):
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._done = False
        self.fired = False
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            fired = self.fired
        if fired:
            _shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            sock = self._sock
        if sock is not None:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    """Wake every blocked reader of ``sock`` (the plain socket call, also for TLS)."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed or never connected: nothing is blocked on it


def _remaining(deadline: float, status: int | None = None) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise RetryableError("total timeout reached", status)
    return left


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A ``Retry-After`` header as seconds from now: delta-seconds or an HTTP date
    (RFC 9110 10.2.3); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _request_once(url: str, s: FetchSettings, deadline: float) -> tuple[int, dict, bytes | None]:
    """One GET. Returns (status, headers, body); the body only for 200 responses."""
    scheme, host, port, target = check_url(url)
    status: int | None = None
    with _Watchdog(deadline) as watchdog:
        conn = _Connection(
            host,
            port,
            tls=scheme == "https",
            allow_loopback=s.allow_loopback,
            connect_timeout=min(s.connect_timeout_s, _remaining(deadline)),
            watch=watchdog.watch,
        )
        try:
            conn.connect()
            # Keep our own handle: http.client drops conn.sock once a "close" response owns it.
            sock = conn.sock
            sock.settimeout(min(s.read_timeout_s, _remaining(deadline)))
            conn.request(
                "GET",
                target,
                headers={
                    "User-Agent": USER_AGENT,
                    "Accept": "image/*,text/html;q=0.9,*/*;q=0.8",
                    "Accept-Encoding": "identity",
                    "Connection": "close",
                },
            )
            resp = conn.getresponse()
            status = resp.status
            headers = {k.lower(): v for k, v in resp.getheaders()}
            if status == 429 or 500 <= status <= 599:
                wait = retry_after_seconds(headers.get("retry-after")) if status in (429, 503) else None
                raise RetryableError(f"HTTP {status}", status, wait)
            if status != 200:
                return status, headers, None
            length = headers.get("content-length")
            if length and length.isdigit() and int(length) > s.max_bytes:
                raise TooLargeError(f"Content-Length {length} exceeds max_bytes={s.max_bytes}", status)
            body = bytearray()
            while True:
                sock.settimeout(min(s.read_timeout_s, _remaining(deadline, status)))
                chunk = resp.read1(CHUNK)
                if not chunk:
                    break
                body += chunk
                if len(body) > s.max_bytes:
                    raise TooLargeError(f"body exceeds max_bytes={s.max_bytes} while streaming", status)
            if watchdog.fired:  # the bytes stopped because the deadline shut the socket
                raise RetryableError("timed out: total timeout reached while reading the body", status)
            return status, headers, bytes(body)
        except FetchError as e:
            if watchdog.fired and e.retryable and status is None:  # e.g. a TLS handshake cut short
                raise RetryableError(f"timed out: total timeout reached while connecting ({e})") from None
            raise
        except ssl.SSLCertVerificationError as e:
            raise FetchError(f"TLS certificate refused: {e.verify_message}") from None
        except (OSError, http.client.HTTPException) as e:
            if watchdog.fired:
                phase = "connecting" if status is None else "reading the body"
                if status is None and conn.sock is not None:
                    phase = "waiting for the status line and headers"
                raise RetryableError(f"timed out: total timeout reached while {phase}", status) from None
            if isinstance(e, TimeoutError):
                raise RetryableError("timed out" if status is None else "timed out reading the body", status) from None
            raise RetryableError(f"{type(e).__name__}: {e}", status) from None
        finally:
            conn.close()


def fetch(url: str, settings: FetchSettings, throttle: HostThrottle | None = None) -> FetchResult:
    """GET ``url`` under every rule in the module docstring. Never raises for network
    trouble: the outcome, including the error text and last HTTP status, is returned."""
    s = settings
    deadline = time.monotonic() + s.total_timeout_s
    result = FetchResult(url=url, final_url=url)
    current = url
    try:
        for hop in range(MAX_REDIRECTS + 1):
            result.final_url = current
            status, headers = _get_with_retries(current, s, throttle, deadline, result)
            result.status = status
            if status in REDIRECT_STATUSES:
                location = headers.get("location")
                if not location:
                    raise FetchError(f"HTTP {status} redirect without Location", status)
                if hop == MAX_REDIRECTS:
                    raise FetchError(f"more than {MAX_REDIRECTS} redirects", status)
                current = urljoin(current, location.strip())
                continue
            if status != 200:
                raise FetchError(f"HTTP {status}", status)
            if not result.content:
                raise FetchError("empty body", status)
            result.content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            return result
    except FetchError as e:
        result.content = None
        result.error = f"{type(e).__name__}: {e}" if isinstance(e, UnsafeURLError | TooLargeError) else str(e)
        if e.status is not None:
            result.status = e.status
    return result


def _get_with_retries(
    url: str, s: FetchSettings, throttle: HostThrottle | None, deadline: float, result: FetchResult
) -> tuple[int, dict]:
    host = urlsplit(url).hostname or ""
    attempt = 0
    while True:
        attempt += 1
        result.attempts += 1
        try:
            if throttle is not None:
                throttle.wait(host, deadline)
            status, headers, body = _request_once(url, s, deadline)
            result.content = body
            return status, headers
        except RetryableError as e:
            if attempt > s.retries:
                suffix = f" after {attempt} attempts" if attempt > 1 else ""
                raise RetryableError(f"{e}{suffix}", e.status) from None
            pause = s.backoff_s * (2 ** (attempt - 1))
            if e.retry_after is not None:
                if e.retry_after > MAX_RETRY_AFTER_S:
                    raise RetryableError(
                        f"{e}; Retry-After {e.retry_after:.0f} s exceeds the {MAX_RETRY_AFTER_S:.0f} s cap", e.status
                    ) from None
                if throttle is not None:
                    throttle.defer(host, e.retry_after)  # the whole host asked for the pause
                pause = max(pause, e.retry_after)
            if time.monotonic() + pause >= deadline:
                raise RetryableError(f"{e}; no time left to retry", e.status) from None
            time.sleep(pause)

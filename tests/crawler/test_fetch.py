"""The safe downloader against the loopback engine: addresses, redirects, sizes, timeouts, retries."""

from __future__ import annotations

import dataclasses
import email.utils
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest

from keyclass.components.crawler import fetch
from keyclass.components.crawler.fetch import FetchSettings, HostThrottle, address_refusal
from tests.crawler.conftest import FAST
from tests.fixtures.tls import self_signed_cert


def settings(**kw) -> FetchSettings:
    return dataclasses.replace(FAST, **kw)


@pytest.mark.parametrize(
    "ip",
    [
        "169.254.169.254",  # cloud metadata (link-local)
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",  # carrier-grade NAT
        "224.0.0.1",  # multicast
        "0.0.0.0",
        "240.0.0.1",  # reserved
        "fe80::1",
        "fc00::1",
        "::",
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
    ],
)
def test_non_public_addresses_are_refused_even_with_loopback_allowed(ip):
    assert address_refusal(ip, allow_loopback=True)
    assert address_refusal(ip, allow_loopback=False)


@pytest.mark.parametrize("ip", ["127.0.0.1", "127.3.4.5", "::1", "::ffff:127.0.0.1"])
def test_loopback_only_with_allow_loopback(ip):
    assert "loopback" in address_refusal(ip, allow_loopback=False)
    assert address_refusal(ip, allow_loopback=True) == ""


def test_public_address_is_allowed():
    assert address_refusal("93.184.216.34", allow_loopback=False) == ""
    assert address_refusal("2606:2800:220:1:248:1893:25c8:1946", allow_loopback=False) == ""


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/a.jpg", "gopher://x/", "//x/a.jpg", "http://"]
)
def test_only_http_and_https_with_a_host(url):
    res = fetch.fetch(url, FAST)
    assert not res.ok and "UnsafeURLError" in res.error


def test_credentials_in_url_refused():
    res = fetch.fetch("http://user:pw@127.0.0.1:1/a.jpg", FAST)
    assert "credentials" in res.error


def test_download_ok(engine):
    res = fetch.fetch(engine.image_url("circle", 0), FAST)
    assert res.ok and res.status == 200 and res.content_type == "image/jpeg"
    assert res.content[:3] == b"\xff\xd8\xff" and res.attempts == 1


def test_loopback_refused_without_allow_loopback(engine):
    url = engine.image_url("circle", 0)
    res = fetch.fetch(url, settings(allow_loopback=False))
    assert not res.ok and "loopback" in res.error and "refused" in res.error
    assert engine.hits(url) == 0  # refused before connecting


def test_hostname_resolving_to_private_address_refused():
    fake = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 80))]
    with mock.patch.object(fetch.socket, "getaddrinfo", return_value=fake):
        res = fetch.fetch("http://images.example.test/a.jpg", FAST)
    assert "private" in res.error and "images.example.test" in res.error


def test_connected_peer_is_checked_again(engine):
    """DNS rebinding: the lookup looked fine, the socket ended up on loopback -> refused."""
    port = engine.port

    def resolve_as_public(host, port_, allow_loopback, timeout):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    with mock.patch.object(fetch, "_resolve", side_effect=resolve_as_public):
        res = fetch.fetch(f"http://rebind.example.test:{port}/img/circle/0.jpg", settings(allow_loopback=False))
    assert "connected peer" in res.error and "loopback" in res.error


def test_redirect_to_metadata_service_refused_even_with_loopback(engine):
    url = engine.add_redirect("x", "http://169.254.169.254/latest/meta-data/iam.jpg")
    res = fetch.fetch(url, FAST)
    assert not res.ok
    assert "169.254.169.254" in res.error and "refused" in res.error
    assert res.final_url.startswith("http://169.254.169.254/") and res.status == 302


def test_relative_redirect_followed_and_checked(engine):
    target = engine.image_url("square", 1)
    url = engine.add_redirect("x", target.replace(engine.base_url, ""), status=301)
    res = fetch.fetch(url, FAST)
    assert res.ok and res.final_url == target and res.status == 200


def test_redirect_loop_capped(engine):
    # Each canned response redirects to the previous one's address: a chain of 7 hops.
    url = engine.image_url("circle", 0)
    for _ in range(7):
        url = engine.add_redirect("x", url)
    res = fetch.fetch(url, FAST)
    assert "more than 5 redirects" in res.error


def test_oversize_refused_by_content_length(engine):
    url = engine.add_bytes("x", b"\xff\xd8\xff" + b"0" * 150_000)
    res = fetch.fetch(url, FAST)
    assert "TooLargeError" in res.error and "Content-Length" in res.error and res.content is None


def test_oversize_refused_while_streaming(engine):
    url = engine.add_bytes("x", b"\xff\xd8\xff" + b"0" * 150_000, send_length=False)
    res = fetch.fetch(url, FAST)
    assert "TooLargeError" in res.error and "while streaming" in res.error and res.content is None


def test_stalled_response_bounded_by_timeouts(engine):
    url = engine.add_stall("x", seconds=30)
    start = time.monotonic()
    res = fetch.fetch(url, FAST)
    elapsed = time.monotonic() - start
    assert "timed out" in res.error and res.status == 200
    assert elapsed < FAST.total_timeout_s + 0.5, elapsed


def test_stall_without_retries_costs_one_read_timeout(engine):
    url = engine.add_stall("x", seconds=30)
    start = time.monotonic()
    res = fetch.fetch(url, settings(retries=0, total_timeout_s=5.0))
    assert "timed out" in res.error
    assert time.monotonic() - start < 0.3 + 0.5


def test_retries_503_then_success(engine):
    url = engine.add_flaky("x", failures=2)
    res = fetch.fetch(url, FAST)
    assert res.ok and res.status == 200 and res.attempts == 3
    assert engine.hits(url) == 3


def test_gives_up_after_retries(engine):
    url = engine.add_flaky("x", failures=10, status=500)
    res = fetch.fetch(url, settings(retries=1))
    assert res.error == "HTTP 500 after 2 attempts" and res.status == 500
    assert engine.hits(url) == 2


def test_404_not_retried(engine):
    url = engine.add_status("x", 404)
    res = fetch.fetch(url, FAST)
    assert res.error == "HTTP 404" and res.status == 404 and engine.hits(url) == 1


def test_connection_refused_is_retried_then_reported():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    res = fetch.fetch(f"http://127.0.0.1:{port}/a.jpg", FAST)
    assert "cannot connect" in res.error and res.attempts == 3


def test_per_host_delay_spaces_requests_across_threads():
    throttle = HostThrottle(0.05)
    starts: list[float] = []
    lock = threading.Lock()
    first_call = time.monotonic()

    def hit():
        throttle.wait("example.com")
        with lock:
            starts.append(time.monotonic())

    threads = [threading.Thread(target=hit) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t0 = time.monotonic()
    throttle.wait("other.example")  # another host is not delayed by the first
    assert time.monotonic() - t0 < 0.04
    # Request k starts no sooner than k delays after the first could: a thread woken late
    # on a busy machine delays only itself, so slots, not pairwise gaps, are what hold.
    starts.sort()
    early = [k for k, t in enumerate(starts) if t < first_call + k * 0.05 - 0.002]
    assert not early, [round(t - first_call, 3) for t in starts]


def test_per_host_delay_respects_deadline():
    throttle = HostThrottle(10.0)
    throttle.wait("h")
    with pytest.raises(fetch.RetryableError):
        throttle.wait("h", deadline=time.monotonic() + 0.1)


@pytest.fixture
def tls_server(tmp_path):
    """An HTTPS server on 127.0.0.1 with a throwaway self-signed certificate."""
    cert, key = self_signed_cert(tmp_path)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = b"\xff\xd8\xff tls body"
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}/a.jpg", str(cert)
    server.shutdown()
    server.server_close()


def test_https_untrusted_certificate_refused_without_retry(tls_server):
    url, _ = tls_server
    res = fetch.fetch(url, FAST)
    assert "TLS certificate refused" in res.error and res.attempts == 1


def test_https_with_trusted_certificate(tls_server):
    url, cafile = tls_server
    trusted = ssl.create_default_context(cafile=cafile)
    with mock.patch.object(fetch.ssl, "create_default_context", return_value=trusted):
        res = fetch.fetch(url, FAST)
    assert res.ok and res.content == b"\xff\xd8\xff tls body" and res.content_type == "image/jpeg"


@pytest.mark.parametrize("part", ["status", "headers", "chunk"])
def test_total_deadline_holds_while_a_server_drips_bytes(engine, part):
    """One byte every 0.15 s never trips the 0.3 s read timeout; the 1 s deadline must
    still end the fetch, in the status line, the headers and a chunk-size line alike."""
    url = engine.add_drip("x", part, every_s=0.15)
    start = time.monotonic()
    res = fetch.fetch(url, settings(total_timeout_s=1.0, read_timeout_s=0.3, retries=2))
    elapsed = time.monotonic() - start
    assert not res.ok and "total timeout" in res.error, res.error
    assert elapsed < 1.0 + 0.4, elapsed


def test_deadline_covers_a_tls_handshake_that_never_finishes():
    """A server that accepts and then says nothing: the handshake waits on the deadline."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        url = f"https://127.0.0.1:{srv.getsockname()[1]}/a.jpg"
        start = time.monotonic()
        res = fetch.fetch(url, settings(total_timeout_s=0.8, connect_timeout_s=5.0, read_timeout_s=5.0, retries=0))
        assert not res.ok and "timed out" in res.error, res.error
        assert time.monotonic() - start < 0.8 + 0.4


def test_a_name_that_never_resolves_costs_the_connect_timeout_not_the_resolver(engine):
    """getaddrinfo cannot be interrupted: a resolver that hangs is abandoned after the
    connect timeout, each try, and the fetch ends within its deadline."""
    import threading

    release = threading.Event()
    real = socket.getaddrinfo

    def hanging(host, *args, **kwargs):
        if host == "slow.example.test":
            release.wait(10)
        return real(host, *args, **kwargs)

    try:
        with mock.patch.object(fetch.socket, "getaddrinfo", side_effect=hanging):
            start = time.monotonic()
            res = fetch.fetch(
                "http://slow.example.test/a.jpg",
                settings(total_timeout_s=1.0, connect_timeout_s=0.3, retries=5, backoff_s=0.01),
            )
            elapsed = time.monotonic() - start
            assert not res.ok and "resolving slow.example.test took longer than" in res.error, res.error
            assert elapsed < 1.0 + 0.4, elapsed
            # An address literal is not looked up in a thread, and still fetches.
            assert fetch.fetch(engine.image_url("circle", 0), FAST).ok
    finally:
        release.set()


def test_429_retry_after_in_seconds_is_honoured(engine):
    url = engine.add_flaky("x", failures=1, status=429, retry_after="0.6")
    res = fetch.fetch(url, settings(total_timeout_s=5.0, backoff_s=0.01))
    assert res.ok and res.attempts == 2
    first, second = engine.hit_times(url)
    assert second - first >= 0.6


def test_429_retry_after_as_an_http_date_is_honoured(engine):
    when = lambda: email.utils.formatdate(time.time() + 2, usegmt=True)  # noqa: E731 - whole seconds
    url = engine.add_flaky("x", failures=1, status=429, retry_after=when)
    res = fetch.fetch(url, settings(total_timeout_s=5.0, backoff_s=0.01))
    assert res.ok and res.attempts == 2
    first, second = engine.hit_times(url)
    assert second - first >= 0.95  # the date has whole seconds: at least 1 s of the 2 s asked


def test_retry_after_beyond_the_cap_gives_up_at_once(engine):
    url = engine.add_flaky("x", failures=5, status=503, retry_after="3600")
    start = time.monotonic()
    res = fetch.fetch(url, settings(total_timeout_s=5.0))
    assert not res.ok and "exceeds the" in res.error and "cap" in res.error
    assert engine.hits(url) == 1 and time.monotonic() - start < 1.0


def test_retry_after_holds_back_other_requests_to_the_host():
    throttle = HostThrottle(0.0)
    throttle.wait("h")  # no delay configured: immediate
    throttle.defer("h", 0.3)
    start = time.monotonic()
    throttle.wait("h")
    assert time.monotonic() - start >= 0.29
    with pytest.raises(fetch.RetryableError):
        throttle.defer("h", 5.0) or throttle.wait("h", deadline=time.monotonic() + 0.1)


@pytest.mark.parametrize(
    "value, seconds",
    [("2", 2.0), ("0", 0.0), ("-3", 0.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 10.0), ("soon", None), ("", None)],
)
def test_retry_after_values(value, seconds):
    now = email.utils.parsedate_to_datetime("Wed, 21 Oct 2015 07:27:50 GMT").timestamp()
    assert fetch.retry_after_seconds(value, now=now) == seconds

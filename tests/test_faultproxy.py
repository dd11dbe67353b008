"""The fault proxy's own tests: every toxic on a real upstream, and no hang.

The fault matrix trusts the proxy to do exactly the fault it names; these tests are
what that trust rests on. Upstreams are real: a TCP echo server and the conftest HTTP
server. Bounds on time here are lower bounds (the toxic did delay) or generous
no-hang guards, never speed claims.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time

import psutil
import pytest

from faultproxy import Bandwidth, Blackhole, Down, FaultProxy, Latency, LimitData, Reset, Slicer


class _Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture(scope="module")
def echo():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(echo):
    with FaultProxy(echo) as p:
        yield p


def connect(port: int, timeout: float = 2.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def round_trip(sock: socket.socket, data: bytes = b"ping") -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def read_all(sock: socket.socket) -> tuple[bytes, BaseException | None]:
    """Everything until EOF or an error; the error (e.g. a reset) is returned, not raised."""
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except OSError as exc:
        return got, exc
    return got, None


def http_get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()


def proxy_side_sockets(port: int) -> int:
    """Sockets this process holds with `port` as their local port (listener or accepted)."""
    return sum(1 for c in psutil.Process().net_connections("tcp") if c.laddr and c.laddr.port == port)


def test_without_toxics_bytes_pass_unchanged(proxy):
    with connect(proxy.port) as sock:
        assert round_trip(sock, b"hello" * 1000) == b"hello" * 1000
    assert proxy.accepted == 1


def test_latency_delays_every_answer_by_at_least_its_milliseconds(proxy):
    proxy.add(Latency(ms=300, jitter=50))
    with connect(proxy.port) as sock:
        started = time.monotonic()
        assert round_trip(sock) == b"ping"
        assert time.monotonic() - started >= 0.25


def test_down_refuses_connections_cuts_open_ones_and_listens_again_when_removed(proxy):
    port = proxy.port
    with connect(port) as open_sock:
        assert round_trip(open_sock) == b"ping"
        name = proxy.add(Down())
        assert read_all(open_sock)[0] == b"", "the open connection is cut"
    with pytest.raises(ConnectionRefusedError):
        connect(port)
    proxy.remove(name)
    assert proxy.port == port
    with connect(port) as sock:
        assert round_trip(sock) == b"ping"


def test_blackhole_accepts_and_never_answers_nor_closes(proxy):
    proxy.add(Blackhole())
    with connect(proxy.port, timeout=0.5) as sock:
        sock.sendall(b"anyone?")
        with pytest.raises(socket.timeout):
            sock.recv(100)          # neither data nor EOF: the client must give up by itself
        assert proxy.open_connections() == 1


def test_blackhole_added_and_removed_while_a_connection_is_open(proxy):
    with connect(proxy.port, timeout=0.5) as sock:
        assert round_trip(sock) == b"ping"
        name = proxy.add(Blackhole())
        sock.sendall(b"lost")
        with pytest.raises(socket.timeout):
            sock.recv(100)
        proxy.remove(name)
        assert round_trip(sock, b"back") == b"back", "the same connection carries data again"


def test_latency_added_while_a_connection_is_open_applies_from_the_next_chunk(proxy):
    with connect(proxy.port) as sock:
        assert round_trip(sock) == b"ping"
        name = proxy.add(Latency(ms=300))
        started = time.monotonic()
        assert round_trip(sock) == b"ping"
        assert time.monotonic() - started >= 0.29
        proxy.remove(name)
        assert round_trip(sock) == b"ping"


def test_reset_passes_n_bytes_then_resets_the_connection(http, proxy_http):
    http.set("/big", b"x" * 20000)
    proxy_http.add(Reset(after_bytes=100))
    with connect(proxy_http.port) as sock:
        sock.sendall(http_get("/big"))
        got, error = read_all(sock)
    assert len(got) == 100
    assert isinstance(error, ConnectionResetError), error


def test_limit_data_closes_in_order_after_n_bytes(http, proxy_http):
    http.set("/big", b"x" * 20000)
    proxy_http.add(LimitData(limit=500))
    with connect(proxy_http.port) as sock:
        sock.sendall(http_get("/big"))
        got, error = read_all(sock)
    assert (len(got), error) == (500, None), "a FIN after exactly 500 bytes: a truncated body"


def test_slicer_delivers_everything_in_small_delayed_segments(proxy):
    proxy.add(Slicer(size=2, delay_ms=20))
    with connect(proxy.port) as sock:
        started = time.monotonic()
        sock.sendall(b"0123456789abcdefghij")
        pieces = []
        while sum(map(len, pieces)) < 20:
            pieces.append(sock.recv(100))
        elapsed = time.monotonic() - started
    assert b"".join(pieces) == b"0123456789abcdefghij"
    assert len(pieces) >= 3, pieces
    assert elapsed >= 9 * 0.02


def test_bandwidth_caps_the_rate(http, proxy_http):
    http.set("/body", b"y" * 40000)
    proxy_http.add(Bandwidth(kb_per_s=100))
    with connect(proxy_http.port, timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(http_get("/body"))
        got, error = read_all(sock)
        elapsed = time.monotonic() - started
    assert error is None and got.endswith(b"y" * 40000)
    assert elapsed >= 40000 / (100 * 1024) * 0.9


def test_toxicity_zero_never_acts_and_one_half_acts_on_some_chunks_only(proxy):
    proxy.add(Reset(toxicity=0.0))
    with connect(proxy.port) as sock:
        assert all(round_trip(sock) == b"ping" for _ in range(20))
    proxy.clear()
    proxy.add(Reset(toxicity=0.5))
    outcomes = []
    for _ in range(30):
        with connect(proxy.port) as sock:
            try:
                outcomes.append(round_trip(sock) == b"ping")
            except ConnectionResetError:
                outcomes.append(False)
    assert 0 < sum(outcomes) < 30, outcomes


def test_stop_with_clients_connected_returns_and_leaves_no_socket_or_thread(echo):
    proxy = FaultProxy(echo).start()
    port = proxy.port
    clients = [connect(port, timeout=5) for _ in range(3)]
    assert round_trip(clients[0]) == b"ping"
    proxy.add(Latency(ms=60_000))
    clients[1].sendall(b"waits a minute")
    proxy.add(Blackhole())
    clients.append(connect(port, timeout=5))
    clients[3].sendall(b"into the hole")
    stopper = threading.Thread(target=proxy.stop)
    stopper.start()
    stopper.join(10)                 # a no-hang guard, not a speed claim
    try:
        assert not stopper.is_alive(), "stop() hung with clients connected"
        assert not proxy._thread.is_alive()
        assert proxy_side_sockets(port) == 0
        for sock in clients:
            assert read_all(sock)[0] == b"", "every client sees its connection end"
    finally:
        for sock in clients:
            sock.close()


@pytest.fixture
def proxy_http(http):
    with FaultProxy(http.port) as p:
        yield p

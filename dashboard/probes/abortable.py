"""requests calls that another thread can end: a deadline for the whole answer.

requests' (urllib3's) timeout bounds each socket operation, not the call. An answer that
trickles in keeps every read short and the call going: a Prometheus answering at 200 B/s
took a second for its headers alone, kept its worker thread and socket busy long past
the deadline, and the next polls said "previous Prometheus query still running
(skipped)" (RELIABILITY.md case 11). A thread cannot be cancelled, but its socket can be
shut down: the blocked read returns at once, the call fails, and urllib3 drops the
connection. So the connections of an `AbortableAdapter` hand their socket to the `Call`
running on their thread, and `Call.abort()` (from the event loop, when the engine cuts
the probe at its deadline) shuts it down, whether the call is connecting, waiting for
the headers or reading the body.
"""

from __future__ import annotations

import socket
import threading

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_running = threading.local()      # .call: the Call whose requests run on this thread


class Call:
    """One round of requests on one thread, which any thread may `abort()`.

    `with call:` on the thread that makes the requests; every connection they use, new or
    kept alive, is handed over as it is used. Once aborted, the socket in use and any
    one handed over later are shut down at once; `aborted` tells the caller why its
    request failed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.aborted = False

    def __enter__(self) -> "Call":
        _running.call = self
        return self

    def __exit__(self, *exc) -> None:
        _running.call = None
        with self._lock:
            self._sock = None

    def use(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sock, aborted = sock, self.aborted
        if aborted:
            _shut(sock)

    def abort(self) -> None:
        """End the request in flight now (a no-op once the round is over). Never raises."""
        with self._lock:
            self.aborted, sock = True, self._sock
        if sock is not None:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        # The plain socket's shutdown, also for a TLS socket: ssl.SSLSocket.shutdown would
        # drop its TLS state under the thread still reading through it.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:            # already closed: nothing left to end
        pass


def _hand_over(sock: socket.socket | None) -> None:
    call = getattr(_running, "call", None)
    if call is not None:
        call.use(sock)


class _Handing:
    """Hands the connection's socket to the running Call when it connects, and again at
    each request (a kept-alive connection does not connect again)."""

    def connect(self) -> None:
        super().connect()
        _hand_over(self.sock)

    def request(self, *args, **kwargs):
        _hand_over(self.sock)
        return super().request(*args, **kwargs)


class _HandingHTTPConnection(_Handing, HTTPConnection):
    pass


class _HandingHTTPSConnection(_Handing, HTTPSConnection):
    pass


class _Pool(HTTPConnectionPool):
    ConnectionCls = _HandingHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HandingHTTPSConnection


class AbortableAdapter(HTTPAdapter):
    """An HTTPAdapter whose requests, made inside `with call:`, `call.abort()` ends."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _HTTPSPool}

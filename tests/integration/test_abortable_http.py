"""dashboard/probes/abortable.py on real sockets: a requests call that trickles in is
ended by `Call.abort()` from another thread, whether it waits for headers or reads the
body, and its socket closed; a call nobody aborts is left alone, keep-alive included.
The Prometheus probe's use of it is RELIABILITY case 11 in test_fault_matrix.py."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from dashboard.probes.abortable import AbortableAdapter, Call
from faultproxy import Bandwidth, FaultProxy

BODY = b"x" * 2000            # 10 s at 200 B/s, its headers alone about 1 s
RATE_KB = 0.2
ABORT_AFTER = 0.3
SLACK = 1.0                   # a shared machine: how long after the abort the call may still run


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", AbortableAdapter(max_retries=0))
    return session


def _run_in_thread(session: requests.Session, url: str, call: Call) -> dict:
    """Start one GET inside `with call:` on a thread; the dict gets its outcome and end time."""
    out: dict = {}

    def get():
        try:
            with call:
                out["body"] = session.get(url, timeout=5).content
        except Exception as exc:  # the abort's doing, checked by the test
            out["error"] = exc
        out["ended"] = time.monotonic()

    out["thread"] = threading.Thread(target=get)
    out["thread"].start()
    return out


async def _trickle():
    """A body that starts at once, then comes 20 bytes a tenth of a second, never ending."""
    import asyncio

    yield b"x" * 100
    while True:
        await asyncio.sleep(0.1)
        yield b"x" * 20


@pytest.mark.parametrize("phase", ["headers", "body"])
def test_an_aborted_call_ends_at_once_and_closes_its_socket(http, phase):
    """Trickling from the first byte (the proxy at 200 B/s: the headers) or from the body
    on (the server itself, endless): the call ends within moments of the abort, not when
    the answer would be whole, and the proxy sees its connection closed."""
    http.set("/slow", BODY)
    http.routes["/trickle"] = lambda request: (200, {}, _trickle())
    with FaultProxy(http.port) as proxy:
        session = _session()
        assert session.get(f"http://{proxy.url_host}/slow", timeout=5).content == BODY   # kept alive
        if phase == "headers":
            proxy.add(Bandwidth(kb_per_s=RATE_KB))
        out = _run_in_thread(session, f"http://{proxy.url_host}/{'slow' if phase == 'headers' else 'trickle'}",
                             call := Call())
        time.sleep(ABORT_AFTER)
        aborted_at = time.monotonic()
        call.abort()
        out["thread"].join(10)
        took = out["ended"] - aborted_at
        print(f"\n{phase}: the call ended {took:.3f}s after the abort; error {out.get('error')!r:.80}; "
              f"proxy connections open {proxy.open_connections()}")
        assert "body" not in out, "the call finished as if nothing happened"
        assert took < SLACK, f"the call ran {took:.2f}s past its abort"
        deadline = time.monotonic() + SLACK
        while proxy.open_connections() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proxy.open_connections() == 0, "the aborted call's socket stayed open"
        session.close()


def test_a_call_not_aborted_completes_keeps_alive_and_a_late_abort_changes_nothing(http):
    """The other side: rounds nobody aborts answer in full on one kept-alive connection,
    and aborting a round that already ended does not break the next."""
    http.set("/fast", BODY)
    with FaultProxy(http.port) as proxy:
        session = _session()
        url = f"http://{proxy.url_host}/fast"
        for _ in range(3):
            call = Call()
            with call:
                assert session.get(url, timeout=5).content == BODY
            call.abort()                          # too late: the round is over
        assert proxy.accepted == 1, f"{proxy.accepted} connections for 3 rounds: keep-alive was lost"
        session.close()

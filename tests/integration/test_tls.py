"""Case 36: a refused certificate is ERROR "TLS verification failed: <why>" on every probe type.

Each probe type talks to a real server (conftest's PostgreSQL, Redis, HTTP server as
/metrics, Prometheus API, edge function and CDN) through a TLS front holding a
self-signed certificate for 127.0.0.1. Before, Prometheus said "cannot connect" and
Redis DOWN, which sends an on-call user to restart a healthy server; and nobody said
why. The other side of each judgement: the same front passes once trusted
(`insecure = true`, or PostgreSQL's sslrootcert naming the certificate), which also
proves the front carries the protocol. An insecure target carries a badge in `check`
(table and --json) as long as the config says so.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import threading

import pytest

from conftest import run_cli
from dashboard.config import validate
from dashboard.engine import Engine
from dashboard.model import State
from fakes import snapshot_after
from metric_texts import scaledash_metrics
from test_config_keys import PG_PASSWORD, REDIS_PASSWORD, TlsFront, _prometheus_answer

SELF_SIGNED = "TLS verification failed: self-signed certificate"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[ssl.SSLContext, str]:
    """A self-signed certificate for 127.0.0.1 (the openssl CLI; ~0.1 s): the server's
    context and the certificate's path (a CA file for the clients that are told to trust it)."""
    folder = tmp_path_factory.mktemp("tls36")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, str(cert)


# PostgreSQL asks for TLS inside its own protocol: an SSLRequest (length 8, code
# 80877103), answered "S", then the handshake on the same socket.
SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")


class PostgresTlsFront:
    """TLS the way a PostgreSQL server with ssl = on speaks it, in front of a real one
    that has TLS off: answers the SSLRequest, does the handshake, then pipes the
    decrypted protocol through."""

    def __init__(self, context: ssl.SSLContext, backend_port: int):
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(lambda loop, ctx: None)   # refused handshakes are the point
        ready = threading.Event()

        async def pipe(reader, writer):
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (OSError, ssl.SSLError):
                pass
            finally:
                writer.close()

        async def handle(reader, writer):
            try:
                head = await reader.readexactly(8)
                if head != SSL_REQUEST:
                    raise ConnectionError("client did not ask for TLS")
                writer.write(b"S")
                await writer.drain()
                await writer.start_tls(context)
                upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", backend_port)
            except (OSError, ssl.SSLError, asyncio.IncompleteReadError, ConnectionError):
                writer.close()
                return
            await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

        async def main():
            self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        self.thread = threading.Thread(target=lambda: (self.loop.run_until_complete(main()), self.loop.run_forever()),
                                       daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def fronts(certificate):
    started: list = []

    def start(backend_port: int, kind=TlsFront):
        started.append(kind(certificate[0], backend_port))
        return started[-1]

    yield start
    for front in started:
        front.close()


def _one_round(doc: dict):
    cfg = validate({"interval": "2s", "timeout": "1500ms", **doc}, "tls.toml")
    snap = snapshot_after(Engine(cfg), rounds=1)
    return next(s for s in snap.sources if s.target == "tls")


def _target(section: str, port: int) -> tuple[str, dict]:
    base = f"https://127.0.0.1:{port}"
    return {
        "edge": ("edge", {"url": f"{base}/ok"}),
        "cdn": ("cdn", {"url": f"{base}/ok"}),
        "scrape": ("source", {"scrape": f"{base}/metrics"}),
        "prometheus": ("source", {"prometheus": base}),
        "cache": ("cache", {"url": f"rediss://127.0.0.1:{port}/0", "password": REDIS_PASSWORD}),
    }[section]


def _serve(http) -> None:
    http.set("/ok", "ok", headers={"X-Cache": "HIT"})
    http.routes["/metrics"] = scaledash_metrics()
    http.routes["/api/v1/query"] = _prometheus_answer


@pytest.mark.parametrize("section", ["edge", "cdn", "scrape", "prometheus", "cache"])
def test_case_36_refused_certificate_is_an_error_saying_why(section, http, redis_server, fronts):
    _serve(http)
    front = fronts(redis_server.port if section == "cache" else http.port)
    key, fields = _target(section, front.port)
    refused = _one_round({key: [{"name": "tls", **fields}]})
    assert (refused.state, refused.reason) == (State.ERROR, SELF_SIGNED), refused
    trusted = _one_round({key: [{"name": "tls", **fields, "insecure": True}]})
    assert trusted.state is State.OK and trusted.insecure, trusted


def test_case_36_postgres_verify_full_refused_certificate_is_an_error_saying_why(pg, fronts, certificate):
    import certifi

    front = fronts(pg.primary.port, PostgresTlsFront)
    dsn = f"postgresql://monitor@127.0.0.1:{front.port}/postgres?sslmode=verify-full"
    public_cas = _one_round({"replica": [{"name": "tls", "dsn": f"{dsn}&sslrootcert={certifi.where()}",
                                          "password": PG_PASSWORD}]})
    assert (public_cas.state, public_cas.reason) == (State.ERROR, SELF_SIGNED), public_cas
    own_ca = _one_round({"replica": [{"name": "tls", "dsn": f"{dsn}&sslrootcert={certificate[1]}",
                                      "password": PG_PASSWORD}]})
    assert own_ca.state is State.OK, own_ca
    other_name = _one_round({"replica": [{"name": "tls", "password": PG_PASSWORD,
                                          "dsn": f"{dsn.replace('127.0.0.1', 'localhost')}"
                                                 f"&sslrootcert={certificate[1]}"}]})
    assert other_name.state is State.ERROR, other_name      # trusted, but issued for 127.0.0.1
    assert other_name.reason.startswith("TLS verification failed: Hostname mismatch"), other_name


def test_case_36_insecure_target_carries_a_badge_in_the_check_table_and_json(http, fronts, write_config):
    _serve(http)
    front = fronts(http.port)
    path = write_config(f'interval = "1s"\n'
                        f'[[cdn]]\nname = "unverified"\nurl = "https://127.0.0.1:{front.port}/ok"\ninsecure = true\n'
                        f'[[cdn]]\nname = "plain"\nurl = "{http.url("/ok")}"\n')
    table = run_cli("check", "--window", "100ms", "--config", str(path))
    rows = {line.split()[1]: line for line in table.out.splitlines() if line.strip().startswith("cdn ")}
    assert "[insecure]" in rows["unverified"] and "[insecure]" not in rows["plain"], table.out
    assert "[insecure] unverified (http): TLS certificate not verified (insecure = true in the config)" in table.out
    answer = json.loads(run_cli("check", "--json", "--window", "100ms", "--config", str(path)).out)
    assert {c["name"]: c["insecure"] for c in answer["components"]} == {"unverified": True, "plain": False}
    assert {s["name"]: s["insecure"] for s in answer["sources"]} == {"unverified": True, "plain": False}

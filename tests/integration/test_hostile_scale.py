"""Hostile scale: huge bodies, gzip bombs, endless streams, 100k series (RELIABILITY.md
cases 20 and 21, issue 11 point 4).

One target must never stall the others: each case runs beside a healthy neighbour and
checks its ERROR and reason, the neighbour's state, and that the canary is nowhere.
Real HTTP servers (conftest `http`) serve every body; Prometheus is real where a real
one can give the answer (many series), and the test server poses as one for a bomb,
which no real Prometheus sends.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import threading
import tracemalloc
import zlib

import pytest

from conftest import CANARY, run_cli, wait_for
from dashboard import output
from dashboard.app import build_app
from dashboard.config import ConfigError, validate
from dashboard.engine import Engine
from dashboard.model import MAX_ROWS_PER_SOURCE, State
from dashboard.probes import scrape
from fakes import poll_rounds, rows_of
from metric_texts import scaledash_metrics

MB = 1024 * 1024
TOO_LARGE = "response too large: body over 5 MB (decompressed)"


def breakers(count: int, prefix: str = "b") -> bytes:
    """A scaledash body of `count` breakers, one gauge line each (~45 bytes a line)."""
    lines = ["# TYPE circuit_breaker_state gauge"]
    lines += [f'circuit_breaker_state{{breaker="{prefix}{i:06d}"}} 0' for i in range(count)]
    return ("\n".join(lines) + "\n").encode()


def _bomb(size: int = 256 * MB) -> bytes:
    """`size` bytes of zeros, gzip-compressed (~250 KB on the wire)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MB)
    return b"".join([packer.compress(zeros) for _ in range(size // MB)] + [packer.flush()])


BOMB = _bomb()


def _engine(doc: dict, interval: str = "1s", timeout: str = "900ms") -> Engine:
    return Engine(validate({"interval": interval, "timeout": timeout, **doc}, "hostile.toml"))


def _source(name: str, url: str, **more) -> dict:
    # The canary is every source's password: it must appear in no reason.
    return {"name": name, "scrape": url, "preset": "scaledash", "username": "u",
            "password": "env:SCALEDASH_TEST_PG_PASSWORD", **more}


def _source_of(snap, name: str):
    return next(s for s in snap.sources if s.target == name)


def _no_canary(snap) -> None:
    assert CANARY not in output.dumps(snap)


def _run(engine: Engine, rounds: int = 1):
    async def scenario():
        try:
            return await poll_rounds(engine, rounds, 0.05)
        finally:
            await engine.close()
    return asyncio.run(scenario())


def _peak_during(work) -> tuple[object, int]:
    """`work()`'s result and the peak of Python allocations meanwhile (all threads)."""
    tracemalloc.start()
    try:
        result = work()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ------------------------------------------------------------------ huge bodies (case 20)

def _fake_prometheus_bomb(http) -> None:
    http.set("/api/v1/query", BOMB, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})


@pytest.mark.parametrize("kind", ["scrape", "prometheus", "edge"])
def test_gzip_bomb_is_refused_on_its_decompressed_size_and_memory_stays_flat(http, kind):
    http.routes["/ok"] = scaledash_metrics()
    http.set("/bomb", BOMB, headers={"Content-Type": "text/plain", "Content-Encoding": "gzip"})
    _fake_prometheus_bomb(http)
    bomb = {"scrape": {"source": [_source("bomb", http.url("/bomb"))]},
            "prometheus": {"source": [{"name": "bomb", "prometheus": http.url(""), "preset": "scaledash"}]},
            "edge": {"edge": [{"name": "bomb", "url": http.url("/bomb")}]}}[kind]
    doc = {**bomb, "source": bomb.get("source", []) + [_source("neighbour", http.url("/ok"))]}
    # tracemalloc slows every allocation: a deadline with room for it on a loaded machine
    snap, peak = _peak_during(lambda: _run(_engine(doc, interval="3s", timeout="3s")))
    limit = "1 MB" if kind == "edge" else "5 MB"     # an edge function's answer is capped at 1 MB
    assert _source_of(snap, "bomb").state is State.ERROR
    assert _source_of(snap, "bomb").reason == TOO_LARGE.replace("5 MB", limit)
    assert _source_of(snap, "neighbour").state is State.OK
    assert rows_of(snap, "neighbour")["upstream"].state is not State.ERROR
    # Inflated whole, one 64 KiB network chunk of zeros is ~64 MB; capped while it
    # streams, the body never holds more than the cap and one inflate step.
    assert peak < 16 * MB, f"peak {peak / MB:.0f} MB of allocations while refusing a bomb"
    _no_canary(snap)


@pytest.mark.parametrize("shape", ["with content-length", "chunked"])
def test_a_50_mb_body_is_refused_as_too_large(http, shape):
    body = b"# " + b"x" * (50 * MB) + b"\n"
    if shape == "chunked":
        async def chunks():
            for at in range(0, len(body), MB):
                yield body[at:at + MB]
        http.routes["/huge"] = lambda request: (200, {"Content-Type": "text/plain"}, chunks())
    else:
        http.set("/huge", body, headers={"Content-Type": "text/plain"})
    http.routes["/ok"] = scaledash_metrics()
    snap = _run(_engine({"source": [_source("huge", http.url("/huge")), _source("neighbour", http.url("/ok"))]}))
    assert _source_of(snap, "huge").state is State.ERROR
    assert _source_of(snap, "huge").reason == TOO_LARGE
    assert _source_of(snap, "neighbour").state is State.OK
    _no_canary(snap)


def test_an_endless_stream_is_cut_at_the_cap_while_the_neighbour_keeps_polling(http):
    sent = {"bytes": 0}

    async def endless():
        line = b'filler_metric{of="nothing a preset reads"} 0\n' * 1000
        while True:
            sent["bytes"] += len(line)
            yield line
            await asyncio.sleep(0)

    http.routes["/endless"] = lambda request: (200, {"Content-Type": "text/plain"}, endless())
    http.routes["/ok"] = scaledash_metrics()
    snap = _run(_engine({"source": [_source("endless", http.url("/endless")),
                                    _source("neighbour", http.url("/ok"))]}, timeout="2s", interval="2s"), 2)
    assert _source_of(snap, "endless").state is State.ERROR
    assert _source_of(snap, "endless").reason == TOO_LARGE
    assert _source_of(snap, "neighbour").state is State.OK
    assert rows_of(snap, "neighbour")["upstream"].state is not State.STALE
    assert sent["bytes"] < 50 * MB         # the stream was dropped, not drained
    _no_canary(snap)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw deflate"])
def test_compressed_bodies_in_the_encodings_asked_for_are_read(http, encoding):
    """A guard on the streaming decoder: what httpx decoded before, it still decodes."""
    body = scaledash_metrics()({})[2]
    packed = {"gzip": lambda b: gzip.compress(b), "deflate": zlib.compress,
              "raw deflate": lambda b: (lambda c: c.compress(b) + c.flush())(
                  zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS))}[encoding](body)
    word = encoding.split()[-1]
    http.set("/packed", packed, headers={"Content-Type": "text/plain", "Content-Encoding": word})
    snap = _run(_engine({"source": [_source("packed", http.url("/packed"))]}))
    assert _source_of(snap, "packed").state is State.OK
    assert rows_of(snap, "packed")["upstream"].metrics["state"] == "open"


def test_an_encoding_not_asked_for_is_an_error_not_a_guess(http):
    http.set("/br", b"\x8b\x02\x80hello\x03", headers={"Content-Type": "text/plain", "Content-Encoding": "br"})
    snap = _run(_engine({"source": [_source("br", http.url("/br"))]}))
    assert _source_of(snap, "br").state is State.ERROR
    assert _source_of(snap, "br").reason == "unsupported content-encoding: br"


# ------------------------------------------------------------------ many series (case 21)

def test_100k_series_are_an_error_and_the_neighbour_stays_on_time(http):
    """Polled as the TUI polls (the engine's loops), 0.5 s apart for ~3 s: the neighbour
    never goes STALE (no fresh data for 2 intervals) while 4.5 MB bodies arrive."""
    body = breakers(100_000)
    http.set("/big", body, headers={"Content-Type": "text/plain"})
    http.routes["/ok"] = scaledash_metrics()
    engine = _engine({"source": [_source("big", http.url("/big")), _source("neighbour", http.url("/ok"))]},
                     interval="500ms", timeout="500ms")

    async def scenario():
        seen = []
        engine.start()
        try:
            for _ in range(30):
                await asyncio.sleep(0.1)
                seen.append(engine.snapshot())
            return seen
        finally:
            await engine.close()

    seen = asyncio.run(scenario())
    last = seen[-1]
    assert _source_of(last, "big").state is State.ERROR
    # Read only until past the cap: the count is what came in by then, not the whole body's.
    said = re.fullmatch(r"too many series: at least (\d+) > 10000", _source_of(last, "big").reason or "")
    assert said and 10_000 < int(said.group(1)) < 100_000, _source_of(last, "big").reason
    assert not rows_of(last, "big")
    neighbour = [rows_of(snap, "neighbour").get("upstream") for snap in seen[10:]]
    assert all(row is not None and row.state not in (State.STALE, State.UNKNOWN) for row in neighbour), \
        [(row.state, row.reason) if row else None for row in neighbour]
    assert _source_of(last, "neighbour").state is State.OK
    _no_canary(last)


def test_max_series_is_the_cap_of_one_source_and_is_validated(http):
    http.set("/six", breakers(6), headers={"Content-Type": "text/plain"})
    over = _run(_engine({"source": [_source("six", http.url("/six"), max_series=5)]}))
    assert _source_of(over, "six").state is State.ERROR
    assert _source_of(over, "six").reason == "too many series: 6 > 5"
    within = _run(_engine({"source": [_source("six", http.url("/six"), max_series=6)]}))
    assert _source_of(within, "six").state is State.OK and len(rows_of(within, "six")) == 6
    for bad in (0, -1, 100_001, "many", True):
        with pytest.raises(ConfigError) as raised:
            validate({"source": [_source("six", http.url("/six"), max_series=bad)]}, "hostile.toml")
        assert any(p.startswith("source[0].max_series:") for p in raised.value.problems), raised.value.problems


@pytest.mark.slow
def test_a_prometheus_answer_over_max_series_is_an_error(http, prometheus_factory):
    http.set("/metrics", breakers(30), headers={"Content-Type": "text/plain"})
    prom = prometheus_factory({"app": [f"127.0.0.1:{http.port}"]})
    wait_for(lambda: prom.query("count(circuit_breaker_state) == 30"), timeout=30)

    def source(cap: int) -> dict:
        return {"source": [{"name": "prom", "prometheus": prom.url(), "preset": "scaledash", "max_series": cap}]}

    over = _run(_engine(source(20)))
    assert _source_of(over, "prom").state is State.ERROR
    assert _source_of(over, "prom").reason == "too many series: 31 > 20"     # 30 breakers and `up`
    within = _run(_engine(source(31)))
    assert _source_of(within, "prom").state is State.OK and len(rows_of(within, "prom")) == 30


def test_a_large_body_is_parsed_off_the_event_loop_and_a_small_one_on_it(http, monkeypatch):
    threads = []
    real = scrape.select

    def spy(text, families):
        threads.append(threading.current_thread() is threading.main_thread())
        return real(text, families)

    monkeypatch.setattr(scrape, "select", spy)
    http.set("/large", breakers(8_000), headers={"Content-Type": "text/plain"})     # ~360 KB
    http.set("/small", breakers(50), headers={"Content-Type": "text/plain"})
    large = _run(_engine({"source": [_source("large", http.url("/large"))]}))
    small = _run(_engine({"source": [_source("small", http.url("/small"))]}))
    assert threads == [False, True]
    assert _source_of(large, "large").state is State.OK and _source_of(small, "small").state is State.OK


# ------------------------------------------------------------------ bounded rows (case 21)

def test_rows_beyond_the_bound_per_source_are_counted_not_tracked(http):
    http.set("/many", breakers(MAX_ROWS_PER_SOURCE + 100), headers={"Content-Type": "text/plain"})
    http.set("/enough", breakers(MAX_ROWS_PER_SOURCE, "e"), headers={"Content-Type": "text/plain"})
    snap = _run(_engine({"source": [_source("many", http.url("/many")), _source("enough", http.url("/enough"))]}), 2)
    assert len(rows_of(snap, "many")) == MAX_ROWS_PER_SOURCE
    assert _source_of(snap, "many").rows_omitted == {"breaker": 100}
    assert len(rows_of(snap, "enough")) == MAX_ROWS_PER_SOURCE
    assert _source_of(snap, "enough").rows_omitted == {}


def test_rows_the_source_stopped_reporting_make_room_for_new_ones(http):
    http.set("/rotating", breakers(MAX_ROWS_PER_SOURCE, "old"), headers={"Content-Type": "text/plain"})
    engine = _engine({"source": [_source("rotating", http.url("/rotating"))]})

    async def scenario():
        try:
            await engine.poll_round()
            http.set("/rotating", breakers(50, "new") + breakers(MAX_ROWS_PER_SOURCE - 50, "old"),
                     headers={"Content-Type": "text/plain"})
            await engine.poll_round()
            return engine.snapshot()
        finally:
            await engine.close()

    snap = asyncio.run(scenario())
    rows = rows_of(snap, "rotating")
    assert len(rows) == MAX_ROWS_PER_SOURCE and "new000049" in rows
    assert _source_of(snap, "rotating").rows_omitted == {}


def test_check_json_and_table_carry_bounded_rows_and_a_truncated_note(http, write_config):
    http.set("/many", breakers(MAX_ROWS_PER_SOURCE + 300), headers={"Content-Type": "text/plain"})
    http.set("/few", breakers(3), headers={"Content-Type": "text/plain"})
    path = write_config(f'interval = "1s"\ntimeout = "900ms"\n'
                        f'[[source]]\nname = "many"\nscrape = "{http.url("/many")}"\n'
                        f'[[source]]\nname = "few"\nscrape = "{http.url("/few")}"\n')
    report = json.loads(run_cli("check", "--json", "--config", str(path), "--window", "100ms").out)
    assert sum(1 for c in report["components"] if c["target"] == "many") == MAX_ROWS_PER_SOURCE
    sources = {s["name"]: s for s in report["sources"]}
    assert sources["many"]["truncated"] == {"rows_omitted": 300, "by_kind": {"breaker": 300},
                                            "rows_per_source": MAX_ROWS_PER_SOURCE}
    assert sources["few"]["truncated"] is None
    table = run_cli("check", "--config", str(path), "--window", "100ms").out
    assert "source many (scrape): 300 more rows not shown (200 rows per source)" in table
    assert "source few" not in table


@pytest.mark.anyio
async def test_the_breaker_panel_counts_untracked_rows_in_its_more_row(http):
    http.set("/many", breakers(MAX_ROWS_PER_SOURCE + 40), headers={"Content-Type": "text/plain"})
    engine = _engine({"source": [_source("many", http.url("/many"))]})
    app = build_app(engine.config, engine=engine, autostart=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await engine.poll_round()
        await pilot.pause()
        app.refresh_view()
        await pilot.pause()
        text = "\n".join(strip.text for strip in app.screen._compositor.render_strips())
        tracked = len(app.snapshot.components)
    shown = sum(1 for line in text.splitlines() if " b0" in line)
    assert tracked == MAX_ROWS_PER_SOURCE
    assert f"Breakers ({MAX_ROWS_PER_SOURCE + 40})" in text          # the title counts every row
    assert f"+{MAX_ROWS_PER_SOURCE + 40 - shown} mor" in text          # and so does the summary row
    assert "40 more rows not tracked (200 rows per source)" in text   # the source's line says why

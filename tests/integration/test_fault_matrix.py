"""The network fault matrix: RELIABILITY.md cases 7-12 for every probe type, through the
fault proxy (tests/faultproxy.py).

Each test puts one real upstream (PostgreSQL, Redis, a /metrics endpoint, Prometheus,
an edge function, a CDN URL) behind the proxy, polls it in a running engine beside a
healthy neighbour (an edge function reached directly), waits until both are OK, then
injects the case's fault on the live, pooled connection and checks the case's own line
of RELIABILITY.md plus the universal assertions: no traceback (nothing logged by
asyncio, nothing on stdout/stderr), every polling loop alive, the neighbour on time,
and the canary secret (every password and token here) absent from every state, reason,
event and output.

tests/integration/test_engine_faults.py has cases 8 and 9 for every probe type against
a port that never answered (a bare blackhole, a closed port); here the same faults land
on targets that were answering, with connections already open, which is where pools
and keep-alive can go wrong. Timings are scaled down to keep the matrix fast: P = 0.5 s,
D = 0.4 s; case 7's 1 s latency is the overrunning half of its test.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Callable

import psutil
import pytest

from conftest import CANARY
from faultproxy import Bandwidth, Blackhole, Down, FaultProxy, Latency, LimitData, Reset, Slicer, Toxic
from fakes import assert_loops_alive, cpu_wait_s, run_scenario, source
from metric_texts import scaledash_metrics
from test_engine_faults import Watch, make_config
from dashboard.engine import Engine
from dashboard.event_limit import BUDGET, SETTLE_POLLS
from dashboard.lab.servers import PrometheusServer
from dashboard.model import Failure, Snapshot, State

P, D = 0.5, 0.4
GRACE = 0.2                    # RELIABILITY case 8: every probe ends by D + 0.2 s
SLACK = 1.0                    # shared machine: allowance on top of the case's bound (plus CPU wait)
PG_PASSWORD = "env:SCALEDASH_TEST_PG_PASSWORD"
REDIS_PASSWORD = "env:SCALEDASH_TEST_REDIS_PASSWORD"
PROBE_TYPES = ["postgres", "redis", "scrape", "prometheus", "edge", "cdn"]
FAULTY, NEIGHBOUR = "faulty", "neighbour"


# ---------------------------------------------------------------- the rig

@pytest.fixture(scope="module")
def prometheus_upstream(http_server, tmp_path_factory):
    """One real Prometheus for the module, scraping the test HTTP server's /metrics."""
    server = PrometheusServer(tmp_path_factory.mktemp("prom"), {"app": [f"127.0.0.1:{http_server.port}"]},
                              scrape_interval="1s").start()
    yield server
    server.stop()


@dataclass
class Rig:
    """One probe type behind the proxy, and the config that polls it beside the neighbour."""

    probe_type: str
    proxy: FaultProxy
    doc: dict

    @property
    def failure_state(self) -> State:
        """What a target that stops answering shows: a silent Prometheus is an ERROR of
        that source (DESIGN "States"), any other target is DOWN."""
        return State.ERROR if self.probe_type == "prometheus" else State.DOWN


def _upstream(probe_type: str, request, http, name: str = FAULTY) -> tuple[int, Callable[[str], dict]]:
    """(upstream port, doc of the faulty target given the proxy's host:port)."""
    if probe_type == "postgres":
        pg = request.getfixturevalue("pg")
        node = pg.replicas[0]
        return node.port, lambda host: {"replica": [{
            "name": name, "dsn": pg.dsn(node).replace(f":{node.port}/", f":{host.rsplit(':', 1)[1]}/"),
            "password": PG_PASSWORD}]}
    if probe_type == "redis":
        server = request.getfixturevalue("redis_server")
        return server.port, lambda host: {"cache": [{
            "name": name, "url": f"redis://{host}/0", "password": REDIS_PASSWORD}]}
    if probe_type == "scrape":
        return http.port, lambda host: {"source": [{
            "name": name, "scrape": f"http://{host}/metrics", "preset": "scaledash",
            "username": "service_role", "password": PG_PASSWORD}]}
    if probe_type == "prometheus":
        prom = request.getfixturevalue("prometheus_upstream")
        return prom.port, lambda host: {"source": [{
            "name": name, "prometheus": f"http://{host}", "preset": "scaledash", "password": PG_PASSWORD}]}
    if probe_type == "edge":
        return http.port, lambda host: {"edge": [{
            "name": name, "url": f"http://{host}/functions/v1/hello",
            "headers": {"Authorization": "env:SCALEDASH_TEST_TOKEN"}}]}
    return http.port, lambda host: {"cdn": [{"name": name, "url": f"http://{host}/app.js"}]}


def _serve_routes(http) -> None:
    http.routes["/metrics"] = scaledash_metrics()
    http.set("/functions/v1/hello", "hello")
    http.set("/functions/v1/neighbour", "fine")
    http.set("/app.js", b"console.log(1)\n" * 20, headers={"X-Cache": "HIT", "Age": "12"})


@pytest.fixture
def rig(request, http):
    probe_type = request.param
    _serve_routes(http)
    port, faulty = _upstream(probe_type, request, http)
    with FaultProxy(port, seed=11) as proxy:
        doc = faulty(proxy.url_host)
        neighbour = {"name": NEIGHBOUR, "url": http.url("/functions/v1/neighbour")}
        doc.setdefault("edge", []).append(neighbour)
        yield Rig(probe_type, proxy, doc)


def matrix(test=None, *, known_gaps: dict[str, str] | None = None):
    """Parametrize a case over every probe type, ids as in `test_case_08_blackhole[redis]`.
    `known_gaps`: probe type -> why it does not meet the case yet (a strict xfail, so the
    day it does, the mark has to go)."""
    def mark(test):
        params = [pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=known_gaps[p]))
                  if p in (known_gaps or {}) else p for p in PROBE_TYPES]
        return pytest.mark.parametrize("rig", params, indirect=True)(test)
    return mark(test) if test is not None else mark


# ---------------------------------------------------------------- running a case

@dataclass
class Run:
    """What a case body gets: the engine, the watch, the rig, and when the fault started."""

    engine: Engine
    watch: Watch
    rig: Rig
    fault_at: float = 0.0

    def inject(self, toxic: Toxic) -> str:
        self.rig.proxy.reset_peak()
        self.fault_at = time.monotonic()
        return self.rig.proxy.add(toxic)

    def faulty_samples(self, after: float | None = None, before: float = float("inf")):
        start = self.fault_at if after is None else after
        return [s for s in self.watch.samples[FAULTY] if start <= s.started <= before]

    def last(self) -> Snapshot:
        return self.watch.timeline[-1][1]

    def assert_probes_end_by(self, bound: float, after: float | None = None, before: float = float("inf")):
        figures, late = self.watch.overruns(FAULTY, bound, self.fault_at if after is None else after, before)
        assert figures, "no probe ran in the fault window"
        assert not late, f"probes ran past {bound:.2f}s (duration, CPU wait): {late}"
        return figures


class LoopLag:
    """The engine loop's worst lateness waking from a short sleep, less CPU wait: how long
    a key press would have waited (RELIABILITY case 11: keys still answered < 250 ms)."""

    def __init__(self, period: float = 0.02):
        self.period, self.worst = period, 0.0
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            before, waited = time.monotonic(), cpu_wait_s()
            await asyncio.sleep(self.period)
            late = time.monotonic() - before - self.period - (cpu_wait_s() - waited)
            self.worst = max(self.worst, late)

    def start(self) -> "LoopLag":
        self._task = asyncio.create_task(self._run(), name="loop-lag")
        return self

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def run_case(rig: Rig, capfd, body, *, interval: float = P, timeout: float = D) -> None:
    """Start the engine on the rig, wait until both targets are OK, run `body(run)`, then
    make the universal assertions."""
    cfg = make_config(interval=interval, timeout=timeout, **rig.doc)

    async def scenario():
        engine = Engine(cfg)
        watch = Watch(engine, ports={FAULTY: rig.proxy.port}).start()
        engine.start()
        run = Run(engine, watch, rig)
        try:
            await watch.until(lambda s: source(s, FAULTY).state is State.OK
                              and source(s, NEIGHBOUR).state is State.OK, 30, "faulty and neighbour OK")
            await body(run)
            # Long enough after the fault to judge the neighbour, however fast the case was.
            await asyncio.sleep(max(0.0, run.fault_at + 3 * P - time.monotonic()))
            assert_loops_alive(engine)
            _assert_neighbour_on_time(run)
            watch.assert_no_canary()
        finally:
            await watch.stop()
            await engine.close()

    run_scenario(scenario)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err, "a traceback reached the output"
    assert CANARY not in out + err, "the canary secret reached the output"
    print(out, end="")


def _assert_neighbour_on_time(run: Run) -> None:
    seen = [s for s in run.watch.samples[NEIGHBOUR] if s.started >= run.fault_at]
    assert len(seen) >= 2, "the neighbour kept polling during the fault"
    assert all(s.ok for s in seen), [s.error for s in seen if not s.ok]
    gaps = [round(b.started - a.started, 3) for a, b in zip(seen, seen[1:])
            if b.started - a.started > P + 0.3 + run.watch.starved(a.started, b.started)]
    assert not gaps, f"the neighbour's polls came late: {gaps}"
    assert set(run.watch.states_of(NEIGHBOUR, run.fault_at)) == {State.OK}


def faulty_rows_look_valid(snap: Snapshot) -> bool:
    """No row of the faulty target shows data as valid (OK or a judged state) right now."""
    return any(c.state in (State.OK, State.DEGRADED) for c in snap.components if c.target == FAULTY)


# ---------------------------------------------------------------- case 7

@matrix
def test_case_07_latency(rig, capfd):
    """Latency within the deadline is measured and shown, the target stays OK; latency of
    1 s (> P) makes every poll overrun: each is cut at D and the next waits for its tick,
    never queued behind it (one in flight, at most one start per tick)."""

    async def body(run: Run):
        name = run.inject(Latency(ms=120, jitter=10))
        await asyncio.sleep(4 * P)
        shown = source(run.last(), FAULTY)
        slowed = run.faulty_samples(after=run.fault_at + P)     # started after the toxic was in place
        print(f"\ncase 7 {rig.probe_type}: 120 ms latency -> latency shown {shown.latency_ms} ms, "
              f"state {shown.state}, {len(slowed)} probes, ok {[s.ok for s in slowed]}")
        assert slowed and all(s.ok for s in slowed), [s.error for s in slowed]
        assert shown.state is State.OK
        assert shown.latency_ms >= 110, shown
        rows = [c for c in run.last().components if c.target == FAULTY and "latency_ms" in c.metrics]
        assert all(c.metrics["latency_ms"] >= 110 for c in rows), [c.metrics["latency_ms"] for c in rows]

        run.rig.proxy.remove(name)
        overrun_at = time.monotonic()
        run.rig.proxy.add(Latency(ms=1000))
        await asyncio.sleep(6 * P)
        window_end = time.monotonic()
        figures = run.assert_probes_end_by(D + GRACE, after=overrun_at, before=window_end)
        late = run.faulty_samples(after=overrun_at, before=window_end)
        starts = [s.started for s in late]
        gaps = [round(b - a, 3) for a, b in zip(starts, starts[1:])]
        print(f"case 7 {rig.probe_type}: 1 s latency -> {len(late)} polls in {window_end - overrun_at:.1f}s, "
              f"gaps {gaps}, durations {[round(d, 3) for d, _ in figures]}, "
              f"reasons {sorted({s.error for s in late if s.error})}")
        assert run.watch.max_running[FAULTY] <= 1, "two probes of one target in flight"
        assert len(late) <= (window_end - overrun_at) / P + 1, "overrunning polls queued"
        assert all(g >= P / 2 - 0.02 for g in gaps), f"polls started back to back: {gaps}"
        assert all(not s.ok for s in late[1:]), "an answer 1 s late is past the deadline"
        assert all("timeout" in s.error.lower() or "skipped" in s.error for s in late[1:] if s.error)

    run_case(rig, capfd, body)


# ---------------------------------------------------------------- case 8

@matrix
def test_case_08_blackhole(rig, capfd):
    """A route that swallows everything on an open connection: every probe ends by
    D + 0.2 s, the target turns DOWN (a Prometheus: ERROR) on timeouts, and the sockets
    stay at most 2 on our side and at the proxy."""

    async def body(run: Run):
        run.inject(Blackhole())
        at = await run.watch.until(lambda s: source(s, FAULTY).state is rig.failure_state, 10 * P + SLACK,
                                   f"faulty {rig.failure_state}")
        await asyncio.sleep(max(0.0, run.fault_at + 8 * P - time.monotonic()))
        figures = run.assert_probes_end_by(D + GRACE)
        shown = source(run.last(), FAULTY)
        print(f"\ncase 8 {rig.probe_type}: {shown.state} {at - run.fault_at:.2f}s after the blackhole; "
              f"{len(figures)} probes, max duration {max(d for d, _ in figures):.3f}s (D={D}); "
              f"max sockets ours {run.watch.max_sockets[FAULTY]}, at the proxy "
              f"{run.rig.proxy.peak_connections}; accepted {run.rig.proxy.accepted}; reason {shown.reason!r}")
        assert shown.state is rig.failure_state
        assert "timeout" in shown.reason.lower(), shown.reason
        assert run.watch.max_sockets[FAULTY] <= 2, run.watch.worst_sockets[FAULTY]
        assert run.rig.proxy.peak_connections <= 2
        assert run.watch.max_running[FAULTY] <= 1
        assert not faulty_rows_look_valid(run.last()), "rows of a silent target still look valid"

    run_case(rig, capfd, body)


LONG_RUN_ROUNDS = 100


@pytest.mark.slow
def test_case_08_blackhole_long_run_keeps_sockets_and_memory_flat(request, http, capfd):
    """Every probe type behind its own blackholed proxy for 100 rounds at D = 0.1 s: each
    probe ends by D + 0.2 s, sockets stay <= 2 per target on both sides, and the
    process's memory does not grow from round 30 to the end."""
    _serve_routes(http)
    with contextlib.ExitStack() as stack:
        proxies, doc = {}, {}
        for probe_type in PROBE_TYPES:
            port, faulty = _upstream(probe_type, request, http, name=probe_type)
            proxies[probe_type] = stack.enter_context(FaultProxy(port))
            proxies[probe_type].add(Blackhole())
            for section, targets in faulty(proxies[probe_type].url_host).items():
                doc.setdefault(section, []).extend(targets)
        cfg = make_config(interval=0.15, timeout=0.1, **doc)

        async def scenario():
            engine = Engine(cfg)
            watch = Watch(engine, ports={t: p.port for t, p in proxies.items()}).start()
            rss_mb = {}
            try:
                for i in range(LONG_RUN_ROUNDS):
                    await engine.poll_round()
                    watch.tick()
                    if i + 1 in (30, LONG_RUN_ROUNDS):
                        rss_mb[i + 1] = psutil.Process().memory_info().rss / 2**20
                engine.start()                   # and the polling loops still run after it
                await asyncio.sleep(0.3)
                assert_loops_alive(engine)
                late = {t: watch.overruns(t, 0.1 + GRACE)[1] for t in proxies}
                print(f"\ncase 8 long run: {LONG_RUN_ROUNDS} rounds, RSS {rss_mb[30]:.1f} MB at round 30, "
                      f"{rss_mb[LONG_RUN_ROUNDS]:.1f} MB at the end; max sockets ours {watch.max_sockets}; "
                      f"at the proxies { {t: p.peak_connections for t, p in proxies.items()} }; "
                      f"accepted { {t: p.accepted for t, p in proxies.items()} }")
                assert not any(late.values()), late
                assert all(n <= 2 for n in watch.max_sockets.values()), watch.worst_sockets
                assert all(p.peak_connections <= 2 for p in proxies.values())
                assert rss_mb[LONG_RUN_ROUNDS] - rss_mb[30] < 10, rss_mb
                watch.assert_no_canary()
            finally:
                await watch.stop()
                await engine.close()

        run_scenario(scenario)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and CANARY not in out + err
    print(out, end="")


# ---------------------------------------------------------------- case 9

@matrix
def test_case_09_refused(rig, capfd):
    """The upstream goes away under open connections (the listener closes, connections
    are cut): DOWN within 2P (+ D for a probe caught mid-flight) with "connection
    refused", and the next retry time shown."""

    async def body(run: Run):
        run.inject(Down())
        at = await run.watch.until(lambda s: source(s, FAULTY).state is rig.failure_state
                                   and "connection refused" in (source(s, FAULTY).reason or ""),
                                   10 * P + SLACK, f"faulty {rig.failure_state} with connection refused")
        waited = run.watch.starved(run.fault_at, at)
        await asyncio.sleep(P)
        shown = source(run.last(), FAULTY)
        rows = [c for c in run.last().components if c.target == FAULTY]
        print(f"\ncase 9 {rig.probe_type}: {shown.state} with {shown.reason!r} {at - run.fault_at:.2f}s "
              f"after the cut (2P + D = {2 * P + D}, CPU wait {waited:.2f}s); next retry in "
              f"{shown.next_probe_in_s}s; reasons seen {[s.error for s in run.faulty_samples()]}")
        assert at - run.fault_at <= 2 * P + D + SLACK + waited
        assert "connection refused" in shown.reason
        assert shown.next_probe_in_s is not None
        assert rows and all(c.next_probe_in_s is not None for c in rows)
        assert all(c.state in (rig.failure_state, State.STALE) for c in rows), [(c.name, c.state) for c in rows]
        # A target gone is DOWN from its first failed probe, never a broken answer (case 10's
        # ERROR): a kept connection the cut closed while idle is replaced, not read from.
        # (50 ms after the cut: the proxy's close reaches our loop in that time.)
        failed = [s for s in run.faulty_samples(after=run.fault_at + 0.05) if not s.ok]
        assert all(s.failure is Failure.DOWN for s in failed) or rig.failure_state is State.ERROR, \
            [(s.failure, s.error) for s in failed]
        run.assert_probes_end_by(D + GRACE)

    run_case(rig, capfd, body)


# ---------------------------------------------------------------- case 10

TRUNCATIONS = {"reset": lambda: Reset(after_bytes=40), "truncated": lambda: LimitData(limit=40)}


def _case_10(rig: Rig, capfd, fault: str) -> None:
    async def body(run: Run):
        run.inject(TRUNCATIONS[fault]())
        accepted_before = run.rig.proxy.accepted
        at = await run.watch.until(lambda s: source(s, FAULTY).state in (State.ERROR, State.DOWN),
                                   10 * P + SLACK, "faulty failed")
        await asyncio.sleep(max(0.0, run.fault_at + 6 * P - time.monotonic()))
        broken = run.faulty_samples(before=time.monotonic())
        shown = source(run.last(), FAULTY)
        opened = run.rig.proxy.accepted - accepted_before
        print(f"\ncase 10 {fault} {rig.probe_type}: {shown.state} {at - run.fault_at:.2f}s after the fault; "
              f"{len(broken)} probes {sorted({(s.failure.value if s.failure else 'ok', s.error) for s in broken})}; "
              f"{opened} new connections")
        assert broken and all(not s.ok for s in broken[1:]), "partial data was taken as an answer"
        assert not any(s.ok and s.started > run.fault_at + P for s in broken)
        assert not faulty_rows_look_valid(run.last()), "rows still show the broken target's data as valid"
        assert not any("cannot connect" in (s.error or "") for s in broken), "it did connect: the answer broke"
        assert shown.state is State.ERROR, shown
        # Each probe opened a fresh connection: the broken one was dropped, never reused.
        assert opened >= len([s for s in broken if not s.ok]) - 1
        assert run.watch.max_sockets[FAULTY] <= 2, run.watch.worst_sockets[FAULTY]

        run.rig.proxy.clear()
        healed_at = time.monotonic()
        run.engine.refresh_now()
        await run.watch.until(lambda s: source(s, FAULTY).state is State.OK, 4 * P + SLACK, "faulty OK again")
        first = run.faulty_samples(after=healed_at)[0]
        assert first.ok, f"the first probe after the fault reused a broken connection: {first.error}"

    run_case(rig, capfd, body)


@matrix
def test_case_10_reset_mid_response(rig, capfd):
    """An RST after 40 bytes of an answer: the probe fails, nothing partial is shown as
    valid, and the connection is dropped (the first probe after the fault is OK)."""
    _case_10(rig, capfd, "reset")


@matrix
def test_case_10_truncated_body(rig, capfd):
    """The answer ends (FIN) after 40 bytes: the same as a reset, never a short answer."""
    _case_10(rig, capfd, "truncated")


@pytest.mark.parametrize("rig", ["redis"], indirect=True)
def test_case_10_redis_closed_before_answering_is_down(rig, capfd):
    """The other side of case 10 for Redis, whose driver calls both ConnectionError: the
    proxy closes every connection at the server's first byte. On the kept connection
    (answered on before) that is a broken answer, ERROR; on each new one the target never
    answered at all, DOWN, as a refusal is."""

    async def body(run: Run):
        run.inject(LimitData(limit=0))
        await run.watch.until(lambda s: source(s, FAULTY).state is State.DOWN, 10 * P + SLACK, "faulty DOWN")
        failed = [s for s in run.faulty_samples(before=time.monotonic()) if not s.ok]
        print(f"\ncase 10 closed before answering redis: {[(s.failure.value, s.error) for s in failed]}")
        assert failed[0].failure is Failure.ERROR, "the kept connection broke off an answer"
        assert len(failed) >= 2 and all(s.failure is Failure.DOWN for s in failed[1:]), failed
        assert not any("mid-response" in s.error for s in failed[1:])

    run_case(rig, capfd, body)


# ---------------------------------------------------------------- case 11

SLOW_BODIES = {
    "within_deadline": lambda: Slicer(size=512, delay_ms=15),     # ~34 KB/s in small segments
    "past_deadline": lambda: Bandwidth(kb_per_s=0.2),              # 200 B/s: no answer fits in D
}


def _case_11(rig: Rig, capfd, speed: str) -> None:
    async def body(run: Run):
        lag = LoopLag().start()
        try:
            run.inject(SLOW_BODIES[speed]())
            await asyncio.sleep(6 * P)
        finally:
            await lag.stop()
        probes = run.faulty_samples(after=run.fault_at + P)
        figures = run.assert_probes_end_by(D + GRACE, after=run.fault_at + P)
        print(f"\ncase 11 {speed} {rig.probe_type}: {len(probes)} probes, "
              f"durations {[round(d, 3) for d, _ in figures]}, outcomes "
              f"{sorted({s.error or 'ok' for s in probes})}; worst loop lag {lag.worst * 1000:.0f} ms")
        assert probes
        if speed == "within_deadline":
            assert all(s.ok for s in probes), [s.error for s in probes]
            assert source(run.last(), FAULTY).state is State.OK
        else:
            assert all(not s.ok and "timeout" in s.error.lower() for s in probes), [s.error for s in probes]
            assert source(run.last(), FAULTY).state is rig.failure_state
        assert lag.worst < 0.25, f"the engine's loop stalled {lag.worst:.3f}s"
        assert run.watch.max_sockets[FAULTY] <= 2, run.watch.worst_sockets[FAULTY]

    run_case(rig, capfd, body)


@matrix
def test_case_11_slow_body_within_deadline(rig, capfd):
    """A body in small segments that still arrives within D: the probe completes, OK."""
    _case_11(rig, capfd, "within_deadline")


@matrix
def test_case_11_slow_body_past_deadline(rig, capfd):
    """A body at 200 B/s: every probe times out cleanly at D, the loop stays responsive."""
    _case_11(rig, capfd, "past_deadline")


# ---------------------------------------------------------------- case 12

def _check_hysteresis(run: Run, samples, seen: dict) -> str:
    """Each probe's outcome against the state the first snapshot after it showed."""
    outcomes = "".join("." if s.ok else "x" for s in samples)
    for i, sample in enumerate(samples):
        state = source(run.watch.snapshot_showing(sample), FAULTY).state
        previous = samples[i - 1] if i else None
        if sample.ok:
            assert state is State.OK, f"a success did not show OK at once: {outcomes} at {i} ({state})"
            seen["recovery"] += previous is not None and not previous.ok
        elif previous is None or previous.ok:
            assert state is not State.DOWN, f"one failure showed DOWN: {outcomes} at {i}"
            seen["single"] += 1
        elif sample.failure is Failure.DOWN:
            assert state is State.DOWN, f"two failures in a row did not show DOWN: {outcomes} at {i}"
            seen["double"] += 1
    return outcomes


@pytest.mark.slow
@matrix
def test_case_12_flapping(rig, capfd):
    """Half the answers arrive 1 s late, past D (toxicity 0.5): a single failure never
    shows DOWN, two in a row do, and the first success after failures shows OK at once.
    PostgreSQL and Redis rarely recover while flapping (their reconnect is several
    exchanges, each rolled), so the toxic is then removed and the first good probe must
    show OK at once."""

    async def body(run: Run):
        run.inject(Latency(ms=1000, toxicity=0.5))
        await asyncio.sleep(14 * P)
        run.rig.proxy.clear()
        healed_at = time.monotonic()
        run.engine.refresh_now()
        await run.watch.until(lambda s: source(s, FAULTY).state is State.OK, 4 * P + SLACK, "faulty OK again")
        seen = {"single": 0, "double": 0, "recovery": 0}
        outcomes = _check_hysteresis(run, run.faulty_samples(before=time.monotonic()), seen)
        flapping = len(run.faulty_samples(before=healed_at))
        events = [e for e in run.last().events if e.target == FAULTY]
        print(f"\ncase 12 {rig.probe_type}: outcomes {outcomes[:flapping]}|{outcomes[flapping:]} "
              f"({outcomes[:flapping].count('x')}/{flapping} failed while flapping, | = toxic removed); "
              f"judgements checked {seen}; {len(events)} event-log lines for the target")
        assert seen["single"] and seen["recovery"], f"not flapping both ways: {outcomes}"
        if rig.failure_state is State.DOWN:
            assert seen["double"], f"never two failures in a row: {outcomes}"

    run_case(rig, capfd, body)


def _row_changes(run: Run, target: str) -> int:
    """Row state changes of `target` over the watch's snapshots: what an unlimited log
    holds (the first data arriving OK is not a change the engine logs)."""
    changes, seen = 0, {}
    for _, snap in run.watch.timeline:
        for c in snap.components:
            if c.target == target:
                before = seen.get(c.key, State.UNKNOWN)
                changes += before is not c.state and not (before is State.UNKNOWN and c.state is State.OK)
                seen[c.key] = c.state
    return changes


@pytest.mark.slow
@pytest.mark.parametrize("rig", ["scrape"], indirect=True)
def test_case_12_notifications_rate_limited(rig, http, capfd):
    """The second half of case 12 on a real /metrics target (5 rows) flapping through the
    proxy: its first changes are logged as they happen, then one "flapping" line stands
    for the rest, and once it is back and quiet one "settled" line gives its final state.
    Meanwhile another target breaks (and starts to recover): each of its changes is
    logged in the snapshot that first shows it, never held back by the flapping one
    (event_limit.py)."""
    http.set("/functions/v1/other", "fine")
    rig.doc["edge"].append({"name": "other", "url": http.url("/functions/v1/other")})

    def other_row(snap: Snapshot) -> State:
        return next(c.state for c in snap.components if c.target == "other")

    async def body(run: Run):
        run.inject(Latency(ms=1000, toxicity=0.5))
        fault_wall = time.time()
        await asyncio.sleep(8 * P)
        http.set("/functions/v1/other", "broken", status=500)
        await run.watch.until(lambda s: other_row(s) is State.DOWN, 10 * P + SLACK, "other DOWN")
        await asyncio.sleep(6 * P)
        http.set("/functions/v1/other", "fine")
        run.rig.proxy.clear()
        run.engine.refresh_now()
        await run.watch.until(lambda s: source(s, FAULTY).state is State.OK, 4 * P + SLACK, "faulty OK again")
        await run.watch.until(lambda s: any("settled" in e.message for e in s.events if e.target == FAULTY),
                              (SETTLE_POLLS + 4) * P + SLACK, "the flapping target settled")

        events = [e for e in reversed(run.last().events)]           # oldest first
        faulty = [e.message for e in events if e.target == FAULTY and e.at >= fault_wall]
        other = [e.message for e in events if e.target == "other"]
        flapped, broke = _row_changes(run, FAULTY), _row_changes(run, "other")
        rows = [c for c in run.last().components if c.target == FAULTY]
        print(f"\ncase 12 notifications: {FAULTY} ({len(rows)} rows) {flapped} row state changes -> {len(faulty)} "
              f"lines since the fault: {[m[:70] for m in faulty]}; other {broke} changes -> {len(other)} lines")
        assert " -> " in faulty[0], "the first change is logged as it is"
        assert any(" flapping: " in m for m in faulty), "no flapping line"
        assert faulty[-1].startswith(f"{FAULTY} settled: ") and all(c.state.value in faulty[-1] for c in rows), \
            "the final state closes the story"
        assert len(faulty) <= BUDGET * len(rows) + 3 and len(faulty) < flapped, (len(faulty), flapped)
        assert len(other) == broke >= 2, "every change of the other target is logged"
        previous = None
        for _, snap in run.watch.timeline:
            state = other_row(snap)
            if previous is not None and state is not previous and previous is not State.UNKNOWN:
                newest = next(e.message for e in snap.events if e.target == "other")
                assert f"{previous.value} -> {state.value}" in newest, (previous, state, newest)
            previous = state

    run_case(rig, capfd, body)

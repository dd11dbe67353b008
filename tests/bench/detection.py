"""Benchmark: detection latency, from a fault injected to its state on the screen.

Run on demand (not collected by pytest):

    .venv/bin/python tests/bench/detection.py                    # 10 runs of each fault
    .venv/bin/python tests/bench/detection.py --runs 20 --only refused,blackhole

One lab comes up in a temporary directory (taken down at the end, also on Ctrl-C or a
failure; every fault is undone in a `finally`). The dashboard is the real TUI, headless
(`build_app` + `run_test`, 160x50) in this process, on the lab's config plus three
targets of the bench's own: a Redis cache `redis-proxied` reached through the project's
fault proxy (tests/faultproxy.py), a `service-prom` source reading the lab service's
breakers through Prometheus, and a 1 MiB lag ceiling (`max_lag_bytes`) on replica-2.

"On screen" is what the panels draw: the app's `refresh_view` is wrapped, and after each
call the state word of every row is read from the panels' tables (the text the screen
paints); the time is taken once that paint is done (`call_after_refresh`). So a figure
includes the view's own cadence: the app repaints once per tick, just after the poll
grid ticks, not the moment a probe answers. Beside it, the engine's own time: its
snapshot after every sample of the fault's target (what the screen would show if it
painted at once), and a line saying where in the poll interval the view's snapshots and
paints land.

Each run waits for the row to show OK, waits a random part of an interval (faults land
anywhere in the poll cycle), injects the fault, records the first paint showing the
expected state, and undoes the fault. The faults:

  replica-killed   SIGKILL to replica-1's postmaster: STALE (or DOWN), then DOWN; `lab restart`
  primary-hung     SIGSTOP to the primary's postmaster and all its children: DOWN "timeout"
  redis-stopped    SIGTERM to the lab's redis-server: DOWN; `lab restart`
  refused          fault proxy `Down` in front of redis-proxied: DOWN "connection refused"
  blackhole        fault proxy `Blackhole` in front of redis-proxied: DOWN "timeout"
  breaker-open     the lab upstream fails every call (admin /faults): the `upstream` breaker
                   opens in the service (its own /metrics, polled every 50 ms by this bench:
                   the reference moment), then its rows turn DEGRADED, by direct scrape and
                   through Prometheus (when installed)
  replay-paused    pg_wal_replay_pause() on replica-2: DEGRADED "replay paused"
  lag-threshold    replica-2's startup process stopped (SIGSTOP: replay stalls, not paused)
                   and ~3 MB written on the primary: lag > 1 MiB, DEGRADED

Bounds (RELIABILITY.md, P = poll interval, D = per-probe deadline): STALE within 2P and
DOWN within 2P + D for a dead or hung target (cases 1-2), DOWN within 2P for connection
refused (case 9). The spec has no bound for a threshold (breaker, replay, lag): the
table prints 2P for them (the next poll, then the next paint), and for Prometheus the
scrape interval on top. The latency of a psql-injected fault is taken from the moment
psql returned (up to a few tens of ms late). The machine is shared: figures are noisy,
and the bench's own work (fault injection, the breaker poller) shares the dashboard's
process and cores. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from figures import machine, percentile, process_tree, table  # noqa: E402

SIZE = (160, 50)
LAG_CEILING = 1 << 20          # replica-2's max_lag_bytes in the bench config
LAG_BURST_ROWS = 3000          # x 1 KB rows: ~3 MB of WAL, three times the ceiling
STATE_TIMEOUT = 30.0           # a state not shown by then counts as missed
STALE_OR_DOWN = ("STALE", "DOWN")
SHOWS_OPEN = re.compile(r"(?<![-\w])open\b")   # the Circuit column; not "half-open"


# ---------------------------------------------------------------- the screen


class Timeline:
    """What each row showed, and when: (time, {(target, row name): (state word, text)})."""

    def __init__(self) -> None:
        self.entries: list[tuple[float, dict[tuple[str, str], tuple[str, str]]]] = []
        self.changed = asyncio.Event()

    def note(self, shown: dict) -> None:
        self.entries.append((time.monotonic(), shown))
        del self.entries[:-400]
        self.changed.set()

    async def first(self, row: tuple[str, str], states: tuple[str, ...], after: float,
                    timeout: float = STATE_TIMEOUT, shows: re.Pattern | None = None) -> float | None:
        """The time of the first entry after `after` showing `row` in one of `states`
        (and, with `shows`, a text that matches it); None if none within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            for at, shown in self.entries:
                word, text = shown.get(row, ("", ""))
                if at >= after and word in states and (shows is None or shows.search(text)):
                    return at
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                return None


class ScreenWatch(Timeline):
    """The state word each row shows after each paint (the text: the row's whole line)."""

    def __init__(self, app) -> None:
        super().__init__()
        self.app = app
        original = app.refresh_view

        self.asked: list[float] = []       # when refresh_view ran (its paint follows)

        def refresh_view(tick: bool = True) -> None:
            self.asked.append(time.monotonic())
            del self.asked[:-2000]
            original(tick)
            shown = self._read()
            app.call_after_refresh(lambda: self.note(shown))

        app.refresh_view = refresh_view     # before the app starts: its timers take this one

    def _read(self) -> dict[tuple[str, str], tuple[str, str]]:
        from widgets.panel import ComponentPanel

        shown: dict[tuple[str, str], tuple[str, str]] = {}
        for panel in self.app.query(ComponentPanel):
            table_ = panel.table
            columns = panel._columns()
            at = next((i for i, c in enumerate(columns) if c.key == "state"), None)
            if at is None or len(table_._widths) != len(columns):
                continue
            start = sum(table_._widths[:at])
            for key, line in zip(table_._keys, table_._lines):
                parts = key.split("|")
                if len(parts) < 3:
                    continue        # the "+N more" summary row
                words = line.plain[start:start + table_._widths[at]].split()
                shown[(parts[0], parts[2])] = (words[0] if words else "", line.plain)
        return shown

    def reason(self, target: str, name: str) -> str:
        snap = self.app.snapshot
        found = next((c for c in snap.components if c.target == target and c.name == name), None) if snap else None
        return (found.reason or "") if found else ""


def view_phases(watch: ScreenWatch, engine) -> str:
    """Where in each poll interval the view takes its snapshot and where the paint lands,
    measured from the engine's grid tick (the app asks for VIEW_SETTLE_S after it)."""
    p = engine.interval

    def phases(times: list[float]) -> str:
        values = [(t - engine.epoch) % p for t in times[5:]]     # past the first frames
        return f"p50 {_seconds(percentile(values, 50))} / p99 {_seconds(percentile(values, 99))} s"

    return (f"view: snapshot taken {phases(watch.asked)}, painted {phases([t for t, _ in watch.entries])} "
            f"after each poll-grid tick")


class EngineWatch(Timeline):
    """The engine's own state of each row after every sample of a watched target (the text:
    the row's `state` figure, e.g. a breaker's "open"): what the screen would show if it
    painted at once. A snapshot per sample costs CPU, so only `targets` are followed."""

    def __init__(self, engine) -> None:
        super().__init__()
        self.targets: set[str] = set()
        original = engine._apply

        def apply(t, sample) -> None:
            original(t, sample)
            if t.probe.target in self.targets:
                self.note({(c.target, c.name): (c.state.value, str(c.metrics.get("state")))
                           for c in engine.snapshot().components if c.target in self.targets})

        engine._apply = apply


# ---------------------------------------------------------------- the faults


@dataclass
class Milestone:
    label: str
    row: tuple[str, str]
    states: tuple[str, ...]
    bound: str                      # "2P", "2P+D", "2P+S" (S: Prometheus scrape interval) or ""
    since: str = "fault"            # "fault", or the name of a reference moment the fault reports
    shows: re.Pattern | None = None  # and the row's line must match this (a figure, not just the state)


@dataclass
class Fault:
    name: str
    milestones: list[Milestone]
    inject: Callable[["Bench"], Awaitable[dict[str, float]]]   # returns reference moments
    undo: Callable[["Bench"], Awaitable[None]]
    rows_ok: list[tuple[str, str]]
    samples: dict[str, list[float]] = field(default_factory=dict)          # on screen
    engine_samples: dict[str, list[float]] = field(default_factory=dict)   # in the engine
    missed: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class Bench:
    lab: object
    cluster: object
    proxy: object
    watch: ScreenWatch
    engine: EngineWatch
    service_url: str
    admin_token: str
    prometheus: bool
    toxic: str | None = None
    stopped: list[int] = field(default_factory=list)      # PIDs under SIGSTOP, resumed on the way out

    def psql(self, node: str, sql: str) -> str:
        """`sql` through psql on the lab node `node` (as recorded now: restarts change PIDs)."""
        return self.cluster.psql(self.lab.entry(f"postgres-{node}").process(), sql)

    def signal_tree(self, pid: int, sig: int) -> None:
        for p in process_tree(pid):
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass

    def resume_all(self) -> None:
        for pid in self.stopped:
            self.signal_tree(pid, signal.SIGCONT)
        self.stopped.clear()


async def _kill_replica(b: Bench) -> dict:
    os.kill(b.lab.entry("postgres-replica-1").pid, signal.SIGKILL)
    return {}


async def _restart(b: Bench, name: str) -> None:
    from dashboard.lab.restart import restart

    entry = b.lab.entry(name)
    await asyncio.to_thread(entry.process().wait_gone, 15.0)
    await asyncio.to_thread(restart, b.lab, name)


async def _hang_primary(b: Bench) -> dict:
    pid = b.lab.entry("postgres-primary").pid
    b.stopped.append(pid)
    b.signal_tree(pid, signal.SIGSTOP)
    return {}


async def _resume(b: Bench) -> None:
    b.resume_all()


async def _stop_redis(b: Bench) -> dict:
    b.lab.entry("redis-server").process().request_stop()
    return {}


async def _proxy_toxic(b: Bench, toxic) -> dict:
    b.toxic = b.proxy.add(toxic)
    return {}


async def _proxy_clear(b: Bench) -> None:
    if b.toxic is not None:
        b.proxy.remove(b.toxic)
        b.toxic = None


def _admin(b: Bench, body: bytes) -> None:
    request = urllib.request.Request(b.service_url + "/admin/faults", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {b.admin_token}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        resp.read()


BREAKER_OPEN = re.compile(r'^circuit_breaker_state\{[^}]*breaker="upstream"[^}]*\}\s+1(\.0)?\s*$', re.M)


def _breaker_open_in_service(b: Bench) -> bool:
    with urllib.request.urlopen(b.service_url + "/metrics", timeout=2) as resp:
        return bool(BREAKER_OPEN.search(resp.read().decode("utf-8", "replace")))


async def _open_breaker(b: Bench) -> dict:
    await asyncio.to_thread(_admin, b, b'{"upstream": {"failure_rate": 1.0}}')
    injected = time.monotonic()
    while time.monotonic() - injected < STATE_TIMEOUT:
        if await asyncio.to_thread(_breaker_open_in_service, b):
            return {"opened": time.monotonic()}
        await asyncio.sleep(0.05)
    return {}


async def _close_breaker(b: Bench) -> None:
    await asyncio.to_thread(_admin, b, b'{"upstream": {"failure_rate": 0.0}}')


async def _pause_replay(b: Bench) -> dict:
    await asyncio.to_thread(b.psql, "replica-2", "SELECT pg_wal_replay_pause()")
    return {}


async def _resume_replay(b: Bench) -> None:
    await asyncio.to_thread(b.psql, "replica-2", "SELECT pg_wal_replay_resume()")


async def _stall_replay_and_write(b: Bench) -> dict:
    pid = int(await asyncio.to_thread(
        b.psql, "replica-2", "SELECT pid FROM pg_stat_activity WHERE backend_type = 'startup'"))
    b.stopped.append(pid)
    os.kill(pid, signal.SIGSTOP)
    await asyncio.to_thread(b.psql, "primary", "INSERT INTO bench_lag SELECT repeat('x', 1000) "
                                               f"FROM generate_series(1, {LAG_BURST_ROWS})")
    return {}


async def _resume_replay_and_trim(b: Bench) -> None:
    b.resume_all()
    await asyncio.to_thread(b.psql, "primary", "TRUNCATE bench_lag")


def faults(prometheus: bool) -> list[Fault]:
    r1, r2, primary = ("replica-1", "replica-1"), ("replica-2", "replica-2"), ("primary", "primary")
    proxied = ("redis-proxied", "redis-proxied")
    from faultproxy import Blackhole, Down

    # The failures before the breaker opens may make its row DEGRADED already (failure
    # rate): the row counts once it shows the state "open".
    breaker = [Milestone("opened in the service's /metrics", ("service", "upstream"), (), "", "fault"),
               Milestone("DEGRADED open, direct scrape", ("service", "upstream"), ("DEGRADED",), "2P", "opened",
                         SHOWS_OPEN)]
    if prometheus:
        breaker.append(Milestone("DEGRADED open, via Prometheus", ("service-prom", "upstream"), ("DEGRADED",),
                                 "2P+S", "opened", SHOWS_OPEN))
    return [
        Fault("replica-killed", [Milestone("STALE (or DOWN)", r1, STALE_OR_DOWN, "2P"),
                                 Milestone("DOWN", r1, ("DOWN",), "2P+D")],
              _kill_replica, lambda b: _restart(b, "postgres-replica-1"), [r1]),
        Fault("primary-hung", [Milestone("DOWN", primary, ("DOWN",), "2P+D")], _hang_primary, _resume, [primary]),
        Fault("redis-stopped", [Milestone("DOWN", ("redis", "redis"), ("DOWN",), "2P+D")], _stop_redis,
              lambda b: _restart(b, "redis-server"), [("redis", "redis")]),
        Fault("refused", [Milestone("DOWN", proxied, ("DOWN",), "2P")],
              lambda b: _proxy_toxic(b, Down()), _proxy_clear, [proxied]),
        Fault("blackhole", [Milestone("DOWN", proxied, ("DOWN",), "2P+D")],
              lambda b: _proxy_toxic(b, Blackhole()), _proxy_clear, [proxied]),
        Fault("breaker-open", breaker, _open_breaker, _close_breaker,
              [m.row for m in breaker]),
        Fault("replay-paused", [Milestone("DEGRADED", r2, ("DEGRADED",), "2P")], _pause_replay, _resume_replay, [r2]),
        Fault("lag-threshold", [Milestone("DEGRADED", r2, ("DEGRADED",), "2P")], _stall_replay_and_write,
              _resume_replay_and_trim, [r2]),
    ]


# ---------------------------------------------------------------- running


async def one_run(b: Bench, fault: Fault, interval: float, log) -> None:
    for row in fault.rows_ok:
        if await b.watch.first(row, ("OK",), time.monotonic(), timeout=90.0) is None:
            log(f"  {fault.name}: {row[0]} not OK within 90 s; run skipped")
            return
    await asyncio.sleep(random.uniform(0, interval))
    t0 = time.monotonic()
    try:
        moments = {"fault": t0, **await fault.inject(b)}
        found = []
        for m in fault.milestones:
            since = moments.get(m.since)
            if not m.states:            # a reference moment of the fault itself
                at = moments.get("opened")
            elif since is None:
                at = None
            else:
                at = await b.watch.first(m.row, m.states, since, shows=m.shows)
            if at is None or since is None:
                fault.missed[m.label] = fault.missed.get(m.label, 0) + 1
                found.append(f"{m.label}: not seen")
                continue
            fault.samples.setdefault(m.label, []).append(at - since)
            if m.states:
                engine_at = await b.engine.first(m.row, m.states, since, timeout=0.5, shows=m.shows)
                if engine_at is not None:
                    fault.engine_samples.setdefault(m.label, []).append(engine_at - since)
            if m.states:
                reason = b.watch.reason(*m.row)[:60]
                counts = fault.reasons.setdefault(m.label, {})
                counts[reason] = counts.get(reason, 0) + 1
            found.append(f"{m.label} {at - since:.2f}s")
        log(f"  {fault.name}: " + "; ".join(found))
    finally:
        await fault.undo(b)


def bound_value(bound: str, p: float, d: float, scrape: float) -> float | None:
    return {"2P": 2 * p, "2P+D": 2 * p + d, "2P+S": 2 * p + scrape}.get(bound)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _within(value: float | None, limit: float | None) -> str:
    return "-" if limit is None or value is None else ("yes" if value <= limit else "NO")


def report(results: list[Fault], p: float, d: float, scrape: float, runs: int) -> str:
    rows = []
    for fault in results:
        for m in fault.milestones:
            values, engine = fault.samples.get(m.label, []), fault.engine_samples.get(m.label, [])
            limit = bound_value(m.bound, p, d, scrape)
            p99, engine_p99 = percentile(values, 99), percentile(engine, 99)
            reasons = fault.reasons.get(m.label, {})
            said = max(reasons, key=reasons.get) if reasons else ""
            rows.append((fault.name, m.label, "fault" if m.since == "fault" else f"breaker {m.since}",
                         f"{len(values)}/{runs}", f"{_seconds(percentile(values, 50))} / {_seconds(p99)}",
                         f"{_seconds(percentile(engine, 50))} / {_seconds(engine_p99)}" if m.states else "-",
                         "-" if limit is None else f"{m.bound} = {limit:.1f}",
                         f"{_within(p99, limit)} / {_within(engine_p99, limit)}", said))
    return table(rows, ("fault", "state", "from", "seen", "screen p50 / p99 s", "engine p50 / p99 s",
                        "bound s", "p99 within (screen / engine)", "reason shown (most often)"))


def bench_config(lab, proxy_port: int, prometheus_url: str | None) -> Path:
    text = lab.config_path.read_text()
    text = text.replace('name = "replica-2"\n', f'name = "replica-2"\nmax_lag_bytes = {LAG_CEILING}\n', 1)
    text += f'''
# Added by tests/bench/detection.py
[[cache]]
name = "redis-proxied"
url = "redis://127.0.0.1:{proxy_port}/0"
password = "file:{lab.dir / 'secrets' / 'redis_password'}"
min_hit_rate = 0.0
'''
    if prometheus_url:
        text += f'''
[[source]]
name = "service-prom"
prometheus = "{prometheus_url}"
preset = "scaledash"
job = "service"
'''
    path = lab.dir / "detection.toml"
    path.write_text(text)
    return path


async def run_faults(config_path: Path, b_args: dict, selected: list[str], runs: int, log) -> tuple:
    from dashboard.app import build_app
    from dashboard.config import load

    config = load(str(config_path))
    app = build_app(config)
    bench = Bench(watch=ScreenWatch(app), engine=EngineWatch(app.engine), **b_args)
    chosen = [f for f in faults(bench.prometheus) if f.name in selected]
    p, d = app.engine.interval, config.timeout
    async with app.run_test(size=SIZE):
        try:
            for fault in chosen:
                log(f"## {fault.name}: {runs} runs")
                bench.engine.targets = {m.row[0] for m in fault.milestones if m.states}
                for _ in range(runs):
                    await one_run(bench, fault, p, log)
        finally:
            bench.resume_all()
            await _proxy_clear(bench)
    return chosen, p, d, view_phases(bench.watch, app.engine)


def main() -> int:
    names = [f.name for f in faults(True)]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each fault (default 10)")
    parser.add_argument("--only", default=",".join(names), help=f"comma-separated subset of {','.join(names)}")
    args = parser.parse_args()
    selected = [n for n in args.only.split(",") if n]
    if not set(selected) <= set(names):
        parser.error(f"--only: expected a subset of {','.join(names)}")

    from dashboard.lab.stack import Lab
    from faultproxy import FaultProxy

    def log(msg: str) -> None:
        print(msg, flush=True)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # so the finally below runs
    tmp = Path(tempfile.mkdtemp(prefix="bench-detect-"))
    lab = Lab(tmp / "lab")
    proxy = None
    started = time.monotonic()
    log(f"# {machine()}")
    try:
        lab.up(log=lambda m: log(f"  lab: {m}"))
        proxy = FaultProxy(lab.entry("redis-server").port).start()
        prom = next((e for e in lab.entries() if e.name == "prometheus"), None)
        prometheus_url = f"http://127.0.0.1:{prom.port}" if prom else None
        config_path = bench_config(lab, proxy.port, prometheus_url)
        cluster = lab.cluster()
        cluster.psql(lab.entry("postgres-primary").process(), "CREATE TABLE bench_lag (pad text)")
        service = lab.entry("service")
        b_args = dict(lab=lab, cluster=cluster, proxy=proxy, service_url=f"http://127.0.0.1:{service.port}",
                      admin_token=(lab.dir / "secrets" / "admin_token").read_text().strip(),
                      prometheus=prometheus_url is not None)
        results, p, d, view = asyncio.run(run_faults(config_path, b_args, selected, args.runs, log))
    finally:
        if proxy is not None:
            proxy.stop()
        log("# lab down: " + ", ".join(lab.down()))
        shutil.rmtree(tmp, ignore_errors=True)
    scrape = 1.0     # the lab's Prometheus scrape interval (dashboard/lab/stack.py)
    print()
    print(f"Detection latency, fault -> state on the real TUI's screen (headless {SIZE[0]}x{SIZE[1]}); "
          f"P = {p:g} s, D = {d:g} s, Prometheus scrape S = {scrape:g} s; {args.runs} runs a fault "
          f"(p99 of fewer than 100 runs is the worst run); {(time.monotonic() - started) / 60:.1f} min; "
          f"{machine()}")
    print(report(results, p, d, scrape, args.runs))
    print(view)
    return 0


if __name__ == "__main__":
    sys.exit(main())

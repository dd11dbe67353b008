"""Benchmark: the latency shown for each PostgreSQL node vs a bare round trip to it.

Run on demand (not collected by pytest):

    .venv/bin/python tests/bench/probe_latency.py                  # 25 s per run
    .venv/bin/python tests/bench/probe_latency.py --seconds 15 --lab-dir /tmp/lab   # a lab already up

One lab comes up in a temporary directory (taken down at the end) unless --lab-dir names
a running one. The engine then polls the lab's whole config in this process, as the
dashboard does (`Engine.start()`, one snapshot a second), and every `latency_ms` the
PostgreSQL probes report is kept. In the same window a second process (the peer, its
event loop doing nothing else) times a bare asyncpg `SELECT 1` to each node once a
second on a connection of its own.

Two runs: "before" restores the old timing (the status query timed with every probe
woken in the same loop iteration) and "after" is the code as it is (a bare round trip
timed in the probe's own slot of the tick, engine.py `_phase`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def restore_old_timing(engine) -> None:
    """The code before the fix: every target on the same instant of a tick, and the
    PostgreSQL probe timing its status query (dashboard/probes/postgres.py before)."""
    import time as clock

    from dashboard.model import Kind, Reading
    from dashboard.probes.postgres import NODE_STATUS_SQL

    engine._phase = lambda t: 0.0
    for t in engine.targets:
        if t.probe.source != "postgres":
            continue
        probe = t.probe

        async def collect(probe=probe):
            try:
                conn = await probe._connection()
                started = clock.perf_counter()
                row = await conn.fetchrow(NODE_STATUS_SQL)
                latency_ms = (clock.perf_counter() - started) * 1000.0
            except BaseException:
                await probe.close()
                raise
            return [Reading(Kind.REPLICA, probe.target, probe._figures(row, latency_ms))]

        probe.collect = collect


def keep_latencies(engine, shown: dict[str, list[float]]) -> None:
    for t in engine.targets:
        if t.probe.source != "postgres":
            continue
        inner = t.probe.collect

        async def collect(inner=inner, name=t.probe.target):
            readings = await inner()
            for r in readings:
                if r.figures.get("latency_ms") is not None:
                    shown.setdefault(name, []).append(r.figures["latency_ms"])
            return readings

        t.probe.collect = collect


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_engine(config_path: Path, seconds: float, old: bool) -> tuple[dict[str, list[float]], float]:
    """Every latency_ms the PostgreSQL probes report, and the engine's CPU s/min."""
    from dashboard.config import load
    from dashboard.engine import Engine

    engine = Engine(load(str(config_path)))
    if old:
        restore_old_timing(engine)
    shown: dict[str, list[float]] = {}
    engine.start()
    try:
        await asyncio.sleep(3.0)          # connections open, first rounds done
        keep_latencies(engine, shown)
        started, cpu = time.monotonic(), cpu_s()
        while time.monotonic() - started < seconds:
            await asyncio.sleep(1.0)
            engine.snapshot()
        per_min = (cpu_s() - cpu) / (time.monotonic() - started) * 60
    finally:
        await engine.close()
    return shown, per_min


async def run_peer(config_path: Path, seconds: float) -> dict[str, list[float]]:
    """A bare asyncpg `SELECT 1` to each node once a second, on an otherwise idle loop."""
    import asyncpg

    from dashboard.config import load

    config = load(str(config_path))
    conns = {r.name: await asyncpg.connect(r.dsn, password=r.password.reveal() if r.password else None)
             for r in config.replicas}
    out: dict[str, list[float]] = {name: [] for name in conns}
    await asyncio.sleep(3.3)              # the engine's warm-up, and off its ticks
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        for name, conn in conns.items():
            t0 = time.perf_counter()
            await conn.fetchval("SELECT 1")
            out[name].append((time.perf_counter() - t0) * 1000.0)
            await asyncio.sleep(0.1)
        await asyncio.sleep(max(0.0, 1.0 - 0.1 * len(conns)))
    for conn in conns.values():
        await conn.close()
    return out


def measure(config_path: Path, seconds: float, old: bool) -> tuple[dict, dict, float]:
    peer = subprocess.Popen([sys.executable, __file__, "--peer", str(config_path), "--seconds", str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    shown, per_min = asyncio.run(run_engine(config_path, seconds, old))
    out, _ = peer.communicate(timeout=seconds + 30)
    return shown, json.loads(out), per_min


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=25.0, help="seconds measured per run (default 25)")
    parser.add_argument("--lab-dir", help="a lab already up (`scaledash lab up --dir D`); else one is started")
    parser.add_argument("--only", choices=("before", "after"), help="one run instead of both")
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        print(json.dumps(asyncio.run(run_peer(Path(args.peer), args.seconds))))
        return 0

    from dashboard.lab.stack import Lab

    tmp = None if args.lab_dir else Path(tempfile.mkdtemp(prefix="bench-latency-"))
    lab = Lab(Path(args.lab_dir) if args.lab_dir else tmp / "lab")
    rows, cpu = [], {}
    try:
        if tmp is not None:
            lab.up(log=lambda m: print(f"  lab: {m}", flush=True))
            time.sleep(2.0)     # let the lab's traffic get going
        runs = [args.only] if args.only else ["before", "after"]
        for run in runs:
            shown, peer, cpu[run] = measure(lab.config_path, args.seconds, old=run == "before")
            for node in sorted(shown):
                rows.append((run, node, shown[node], peer.get(node, [])))
                print(f"  {run}: {node} shown {len(shown[node])} peer {len(peer.get(node, []))}", flush=True)
    finally:
        if tmp is not None:
            print("# lab down: " + ", ".join(lab.down()), flush=True)
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nPostgreSQL latency_ms on the lab, whole config polled, {args.seconds:.0f} s per run, "
          "vs a bare asyncpg SELECT 1 from an idle process (peer)")
    print("| run | node | shown p50 | shown p99 | bare p50 | bare p99 | shown/bare p50 |")
    print("|---|---|---|---|---|---|---|")
    for run, node, shown, bare in rows:
        s50, s99, b50, b99 = (quantile(shown, 0.5), quantile(shown, 0.99), quantile(bare, 0.5), quantile(bare, 0.99))
        ratio = f"{s50 / b50:.1f}x" if s50 and b50 else "-"
        print(f"| {run} | {node} | {_ms(s50)} | {_ms(s99)} | {_ms(b50)} | {_ms(b99)} | {ratio} |")
    print("\nengine CPU over the same windows (every target, one snapshot a second): "
          + ", ".join(f"{run} {per_min:.3f} CPU s/min" for run, per_min in cpu.items()))
    return 0


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


if __name__ == "__main__":
    sys.exit(main())

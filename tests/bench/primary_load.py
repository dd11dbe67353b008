"""Benchmark: the load dashboards put on the primary PostgreSQL, polling it directly and
in Prometheus mode.

Run on demand (not collected by pytest):

    .venv/bin/python tests/bench/primary_load.py                # 30 s windows
    .venv/bin/python tests/bench/primary_load.py --window 60 --dashboards 1,5,10

One lab comes up in a temporary directory (taken down at the end, also on Ctrl-C or a
failure). Each row runs N dashboards at once, each the real TUI headless (`build_app` +
`run_test`, 120x40) in a process of its own (stopped by PID), and after a warm-up reads
the primary's own counters twice, a window apart: `pg_stat_database` xact_commit +
xact_rollback per database (PostgreSQL counts a statement outside a transaction block
as a transaction), and the client connections per database from `pg_stat_activity`.

To tell the dashboards' load from everybody else's, the dashboards connect to a
database of their own (`dashboards`, same monitor role; the DSN is the only change to
the lab's config). The lab's service works in `app`; postgres_exporter, scraped by
Prometheus every second, works in `postgres`, where this bench's psql readings land too
(two transactions a window).

Modes:
  direct      the lab's config: every [[replica]] probed over asyncpg at P = 1 s
  prometheus  the lab's config without its [[replica]] tables (nor the drills that name
              them): PostgreSQL seen only through the `postgres-prom` source (Prometheus
              + postgres_exporter), as a team with a monitoring stack would run it

"Per dashboard" is the `dashboards` database's transactions/s divided by N; "vs none" is
the primary's transactions/s outside `app` minus the row with no dashboard, divided by
N: it would catch load a dashboard puts anywhere else (in Prometheus mode it should be
~0 at any N: only the exporter queries the primary, as often as Prometheus scrapes it;
the exporter's own rate varies by a few tenths between rows). The machine is shared
and PostgreSQL flushes a backend's counters at most once a second: figures are rates
over the window, noisy by about one transaction per backend. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from figures import machine, table  # noqa: E402

DASHBOARD_DB = "dashboards"
SERVICE_DB = "app"
EXPORTER_DB = "postgres"
SIZE = (120, 40)
COUNTERS_SQL = ("SELECT datname, xact_commit + xact_rollback FROM pg_stat_database "
                "WHERE datname IS NOT NULL")
CONNECTIONS_SQL = ("SELECT datname, count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                   "AND datname IS NOT NULL GROUP BY datname")
DROPPED_IN_PROMETHEUS_MODE = ("[[replica]]", "[drills]", "[[drill]]")


# ---------------------------------------------------------------- one dashboard (child process)

async def run_dashboard(config_path: str, seconds: float) -> None:
    from dashboard.app import build_app
    from dashboard.config import load

    app = build_app(load(config_path))
    async with app.run_test(size=SIZE):
        await asyncio.sleep(seconds)


# ---------------------------------------------------------------- configs

def direct_config(lab) -> Path:
    text = re.sub(r'(dsn = "postgresql://monitor@127\.0\.0\.1:\d+)/postgres"', rf'\1/{DASHBOARD_DB}"',
                  lab.config_path.read_text())
    path = lab.dir / "load-direct.toml"
    path.write_text(text)
    return path


def prometheus_config(lab) -> Path | None:
    """The direct config without the tables that probe PostgreSQL (or name those targets);
    None when the lab has no Prometheus source for PostgreSQL."""
    text = direct_config(lab).read_text()
    blocks = re.split(r"(?m)^(?=\[)", text)
    kept = [b for b in blocks if not b.startswith(DROPPED_IN_PROMETHEUS_MODE)
            and not b.startswith("[drill.")]
    result = "".join(kept)
    if 'preset = "postgres_exporter"' not in result:
        return None
    path = lab.dir / "load-prometheus.toml"
    path.write_text(result)
    return path


# ---------------------------------------------------------------- measuring

@dataclass
class Row:
    mode: str
    dashboards: int
    xact_per_s: dict[str, float]
    connections: dict[str, int]
    window: float
    problems: list[str]


def _pairs(out: str) -> dict[str, int]:
    pairs = {}
    for line in out.splitlines():
        if "|" in line:
            name, value = line.rsplit("|", 1)
            pairs[name] = int(value)
    return pairs


def measure(lab, mode: str, config: Path | None, count: int, warmup: float, window: float, log) -> Row:
    cluster = lab.cluster()
    primary = lab.entry("postgres-primary").process()
    children: list[subprocess.Popen] = []
    problems: list[str] = []
    try:
        for _ in range(count):
            children.append(subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--child", str(config),
                 "--seconds", str(warmup + window + 30)],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        time.sleep(warmup)
        before, t0 = _pairs(cluster.psql(primary, COUNTERS_SQL)), time.monotonic()
        time.sleep(window)
        after, t1 = _pairs(cluster.psql(primary, COUNTERS_SQL)), time.monotonic()
        connections = _pairs(cluster.psql(primary, CONNECTIONS_SQL))
        for child in children:
            if child.poll() is not None:
                problems.append(f"a dashboard exited early ({child.returncode}): "
                                f"{(child.stderr.read().strip().splitlines() or ['no output'])[-1][:120]}")
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
        if children:
            time.sleep(2.0)     # exiting backends flush their counters: not into the next row
    rates = {db: (after[db] - before.get(db, 0)) / (t1 - t0) for db in after}
    row = Row(mode, count, rates, connections, t1 - t0, problems)
    log(f"  {mode} x{count}: " + ", ".join(f"{db} {rate:.1f}/s" for db, rate in sorted(rates.items()))
        + f"; connections {connections}")
    return row


def outside_service(row: Row) -> float:
    return sum(rate for db, rate in row.xact_per_s.items() if db != SERVICE_DB)


def report(rows: list[Row]) -> str:
    base = next((outside_service(r) for r in rows if r.dashboards == 0), None)
    lines = []
    for r in rows:
        n = r.dashboards
        own = r.xact_per_s.get(DASHBOARD_DB, 0.0)
        added = "-" if base is None or n == 0 else f"{(outside_service(r) - base) / n:+.2f}"
        lines.append((r.mode if n else "(no dashboard)", n, f"{own:.2f}", "-" if n == 0 else f"{own / n:.2f}",
                      f"{r.xact_per_s.get(EXPORTER_DB, 0.0):.2f}", f"{outside_service(r):.2f}", added,
                      f"{r.connections.get(DASHBOARD_DB, 0)} / {r.connections.get(EXPORTER_DB, 0)}",
                      f"{r.xact_per_s.get(SERVICE_DB, 0.0):.1f}"))
    return table(lines, ("mode", "N", f"'{DASHBOARD_DB}' db xact/s", "per dashboard",
                         f"'{EXPORTER_DB}' db (exporter) xact/s", "all but 'app' xact/s",
                         "vs none, per dashboard", f"connections '{DASHBOARD_DB}' / '{EXPORTER_DB}'",
                         f"'{SERVICE_DB}' db (service) xact/s"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=30.0, help="seconds between the two readings")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds from the dashboards' start")
    parser.add_argument("--dashboards", default="1,5", help="dashboard counts per mode (default 1,5)")
    parser.add_argument("--child", metavar="CONFIG", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=60.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))   # leave run_test's context cleanly
        asyncio.run(run_dashboard(args.child, args.seconds))
        return 0
    counts = [int(n) for n in args.dashboards.split(",") if n]

    from dashboard.lab.stack import Lab

    def log(msg: str) -> None:
        print(msg, flush=True)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # so the finally below runs
    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    lab = Lab(tmp / "lab")
    started = time.monotonic()
    rows: list[Row] = []
    log(f"# {machine()}")
    try:
        lab.up(log=lambda m: log(f"  lab: {m}"))
        lab.cluster().psql(lab.entry("postgres-primary").process(),
                           f"CREATE DATABASE {DASHBOARD_DB} OWNER monitor")
        direct, prometheus = direct_config(lab), prometheus_config(lab)
        rows.append(measure(lab, "none", None, 0, args.warmup, args.window, log))
        for mode, config in (("direct", direct), ("prometheus", prometheus)):
            if config is None:
                log(f"  {mode}: skipped (the lab has no Prometheus with postgres_exporter here)")
                continue
            for count in counts:
                rows.append(measure(lab, mode, config, count, args.warmup, args.window, log))
    finally:
        log("# lab down: " + ", ".join(lab.down()))
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f"Load on the primary PostgreSQL per dashboard (real TUI, headless, P = 1 s; Prometheus scrapes "
          f"postgres_exporter every 1 s); {args.window:.0f} s windows after {args.warmup:.0f} s; "
          f"{(time.monotonic() - started) / 60:.1f} min; {machine()}")
    print(report(rows))
    problems = [p for r in rows for p in r.problems]
    for problem in problems:
        print(f"problem: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

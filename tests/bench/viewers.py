"""Benchmark: one poller, many viewers (issue 12). Ten `attach` viewers cost the targets
nothing more than one.

Run on demand (not collected by pytest):

    .venv/bin/python tests/bench/viewers.py                 # 20 s windows
    .venv/bin/python tests/bench/viewers.py --window 30 --viewers 1,5,10

A PostgreSQL primary with one streaming replica comes up in a temporary directory
(always stopped at the end), and `scaledash daemon` polls both every second into a
recording. For each row, N `scaledash attach` viewers run in terminals of their own
(ptys, 120x40, their output read and thrown away as a terminal would show it), and
over the window it measures:

  - the primary's transactions per second in the daemon's database, from its own
    counters (pg_stat_database xact_commit, read at the start and the end of the window:
    one of those reads is ours and is taken off);
  - the viewers' CPU (psutil, user + system over the window), each and in all;
  - the daemon's CPU, for scale.

A "no viewer" row is the daemon alone. Then one state change: the replica is killed
(SIGKILL) and the bench times when the daemon's recording first holds a frame that is
DOWN, and when each viewer's terminal first draws DOWN; the difference is
the viewers' delay behind the daemon (the issue's bound: 2 s). Printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import pty
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dashboard.lab.servers import PostgresCluster  # noqa: E402
from dashboard.model import State  # noqa: E402
from dashboard.recording import Recording  # noqa: E402

PASSWORD = "bench-viewers-pw"
# The daemon's database only: autovacuum and the other databases' traffic stay out of it.
COMMITS = "SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'"
ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]")


class Viewer:
    """`scaledash attach FILE` in a pty of its own; what it draws is kept to search."""

    def __init__(self, recording: Path) -> None:
        master, slave = pty.openpty()
        os.set_blocking(master, True)
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
        self.proc = subprocess.Popen([sys.executable, "-m", "dashboard.cli", "attach", str(recording)],
                                     stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env,
                                     start_new_session=True)
        os.close(slave)
        subprocess.run(["stty", "-F", os.ttyname(master), "cols", "120", "rows", "40"], check=False,
                       capture_output=True)
        self._master = master
        self._lock = threading.Lock()
        self._tail = b""
        self.seen: dict[bytes, float] = {}
        self._watch: list[re.Pattern[bytes]] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def watch(self, pattern: bytes) -> None:
        """Note the time `pattern` (a regex) first shows up on the screen, in `seen[pattern]`."""
        with self._lock:
            self._watch.append(re.compile(pattern))

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:
                return
            if not chunk:
                return
            now = time.time()
            with self._lock:
                text = ANSI.sub(b"", self._tail + chunk)
                for pattern in self._watch:
                    if pattern.pattern not in self.seen and pattern.search(text):
                        self.seen[pattern.pattern] = now
                self._tail = text[-4096:]

    def cpu(self) -> float:
        t = psutil.Process(self.proc.pid).cpu_times()
        return t.user + t.system

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            os.close(self._master)
        except OSError:
            pass


def cpu_of(proc: subprocess.Popen) -> float:
    t = psutil.Process(proc.pid).cpu_times()
    return t.user + t.system


def config(cluster: PostgresCluster, path: Path) -> Path:
    rows = [("primary", cluster.primary), *((r.name.removeprefix("postgres-"), r) for r in cluster.replicas)]
    text = 'name = "bench-viewers"\ninterval = "1s"\n' + "".join(
        f'[[replica]]\nname = "{name}"\ndsn = "{cluster.dsn(node)}"\npassword = "env:BENCH_PG_PASSWORD"\n'
        for name, node in rows)
    path.write_text(text)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--viewers", default="1,10")
    args = parser.parse_args()
    counts = [int(n) for n in args.viewers.split(",")]
    base = Path(tempfile.mkdtemp(prefix="bench-viewers-"))
    cluster = PostgresCluster(base / "pg", replica_names=["replica-1"], password=PASSWORD)
    recording = base / "fleet.sqlite"
    daemon = None
    viewers: list[Viewer] = []
    rows = []
    try:
        cluster.start()
        cfg = config(cluster, base / "scaledash.toml")
        daemon = subprocess.Popen([sys.executable, "-m", "dashboard.cli", "daemon", str(recording), "--config",
                                   str(cfg)], cwd=ROOT, env={**os.environ, "BENCH_PG_PASSWORD": PASSWORD},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(5)                      # the daemon's first rounds, connections made

        def window(n: int) -> tuple:
            before = int(cluster.psql(cluster.primary, COMMITS))
            cpu0, daemon0, t0 = [v.cpu() for v in viewers], cpu_of(daemon), time.monotonic()
            time.sleep(args.window)
            elapsed = time.monotonic() - t0
            after = int(cluster.psql(cluster.primary, COMMITS))
            each = [(v.cpu() - c) / elapsed * 100 for v, c in zip(viewers, cpu0)]
            return (n, (after - before - 1) / elapsed, statistics.mean(each) if each else None,
                    sum(each) if each else None, (cpu_of(daemon) - daemon0) / elapsed * 100)

        rows.append(window(0))
        for n in counts:
            while len(viewers) < n:
                viewers.append(Viewer(recording))
            while len(viewers) > n:
                viewers.pop().stop()
            time.sleep(5)                  # the viewers' start-up is not their steady cost
            rows.append(window(n))

        # One state change: the replica hangs; the daemon's recording, then each viewer, shows it.
        # Any DOWN drawn but the STALE event's "(DOWN if the next one fails)": the screen is
        # repainted by changed cells, so a row's name is not sent again when only its state
        # word changes; the overall state in the header is the first DOWN drawn.
        row_down = rb"DOWN(?! if the next)"
        for v in viewers:
            v.watch(row_down)
        replica = cluster.replicas[0]
        stopped_at = time.time()
        os.kill(replica.pid, signal.SIGKILL)      # its backends follow the postmaster out
        deadline, daemon_at = time.time() + 40, None
        while time.time() < deadline:
            daemon_at = daemon_at or first_down(recording, stopped_at)
            if daemon_at and all(row_down in v.seen for v in viewers):
                break
            time.sleep(0.2)
        delays = [v.seen[row_down] - daemon_at for v in viewers if daemon_at and row_down in v.seen]
    finally:
        for v in viewers:
            v.stop()
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(20)
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)

    print(f"# one poller, many viewers: {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; {args.window:g} s windows; a primary and a replica polled every 1 s")
    print("| viewers | primary transactions/s | CPU per viewer | CPU of all viewers | daemon CPU |")
    print("|---|---|---|---|---|")
    for n, tps, each, total, daemon_cpu in rows:
        print(f"| {n or 'none (daemon alone)'} | {tps:.2f} | {'-' if each is None else f'{each:.1f} %'} | "
              f"{'-' if total is None else f'{total:.1f} %'} | {daemon_cpu:.1f} % |")
    if daemon_at is None:
        print("state change: the daemon's recording never showed replica-1 DOWN within 40 s")
    else:
        print(f"state change: replica-1 killed (SIGKILL); DOWN in the daemon's recording after {daemon_at - stopped_at:.2f} s; "
              f"on {len(delays)}/{len(viewers)} viewers' screens "
              + (f"{min(delays):.2f}-{max(delays):.2f} s after the daemon (median {statistics.median(delays):.2f} s)"
                 if delays else "never"))


def first_down(recording: Path, since: float) -> float | None:
    """The time of the first recorded frame since `since` that is DOWN overall."""
    rec = Recording(recording)
    try:
        for snap in rec.between(since, float("inf")):
            if snap.overall is State.DOWN:
                return snap.generated_at
        return None
    finally:
        rec.close()


if __name__ == "__main__":
    main()

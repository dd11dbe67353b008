"""Benchmark: one hostile target among the lab's (issue 11, "hostile scale").

Run on demand (not collected by pytest):

    .venv/bin/python tests/bench/hostile_scale.py                  # 30 s windows
    .venv/bin/python tests/bench/hostile_scale.py --window 15      # shorter, noisier
    .venv/bin/python tests/bench/hostile_scale.py --before <rev>   # also the code of <rev>

One lab comes up in a temporary directory (always taken down at the end), and a small
HTTP server in a process of its own serves the hostile bodies: /metrics with 100,000
series (4.5 MB, every line a breaker the scaledash preset reads) and a gzip bomb
(256 MB of zeros, ~250 KB on the wire). Each row is a fresh dashboard process (so its
peak RSS is its own) running the real TUI headless (`run_test`, Pilot) on the lab's
config, plus the hostile source where the row says so. After a 5 s warm-up, for the
window it measures:

  - key answer: a Tab every 200 ms, sent as the terminal driver sends keys; the time
    until the app and its screen have handled it (p50 / p99 / max);
  - loop stall: a heartbeat task sleeping 10 ms; the most it overslept;
  - others' lateness: for every lab target, how late each poll started against the
    time it was due (p50 / p99 / max), from the engine's own schedule;
  - RSS at the end and its peak (ru_maxrss), against the plain lab's.

`--before <rev>` runs the same rows on the dashboard of an older commit (git archive
into a temporary directory), for the figures before a change. The issue's targets:
keys < 250 ms, the others on time, RSS within 50 MB of the plain lab's. Figures are
printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

from figures import percentile  # noqa: E402

SERVER = r'''
import gzip, sys, zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lines = ["# TYPE circuit_breaker_state gauge"]
lines += ['circuit_breaker_state{breaker="b%06d"} 0' % i for i in range(100_000)]
BIG = ("\n".join(lines) + "\n").encode()
packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
BOMB = b"".join([packer.compress(bytes(1 << 20)) for _ in range(256)] + [packer.flush()])

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body, extra = {"/big": (BIG, {}), "/bomb": (BOMB, {"Content-Encoding": "gzip"})}.get(
            self.path, (b"not found", {}))
        self.send_response(200 if self.path in ("/big", "/bomb") else 404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print("ready", flush=True)
server.serve_forever()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ one row, in a child process

async def key_answer(app, pilot) -> float:
    """Seconds from a Tab arriving as a terminal's driver sends it to the app and its
    screen having handled it and all before it. (Pilot's own `press` also waits for the
    process's CPU to go idle, which a polling dashboard never quite is.)"""
    from textual import events

    before = time.perf_counter()
    key = events.Key("tab", "\t")
    key.set_sender(app)
    app._driver.send_message(key)
    await pilot._wait_for_screen()
    return time.perf_counter() - before


async def measure_row(config_path: str, warmup: float, window: float, hostile: str | None) -> dict:
    import asyncio
    import resource

    import psutil

    from dashboard.app import build_app
    from dashboard.config import load

    app = build_app(load(config_path))
    engine = app.engine
    lateness: list[float] = []
    real_poll = engine._poll

    async def timed_poll(t):
        if t.probe.target != hostile:
            lateness.append(max(0.0, engine.clock() - t.next_due))
        await real_poll(t)

    engine._poll = timed_poll
    keys: list[float] = []
    stalls: list[float] = []
    states: dict = {}

    async def heartbeat():
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.010)
            stalls.append(time.perf_counter() - before - 0.010)

    async with app.run_test(size=(160, 50)) as pilot:
        beat = asyncio.create_task(heartbeat())
        await asyncio.sleep(warmup)
        lateness.clear()
        stalls.clear()
        started = time.monotonic()
        while time.monotonic() - started < window:
            keys.append(await key_answer(app, pilot))
            await asyncio.sleep(0.2)
        beat.cancel()
        snap = engine.snapshot()
        for s in snap.sources:
            if s.target == hostile:
                states = {"state": s.state.value, "reason": s.reason}
        rows = len(snap.components)
    rss = psutil.Process().memory_info().rss / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"keys": keys, "stalls": stalls, "lateness": lateness, "rss_mb": rss, "peak_mb": peak,
            "hostile": states, "rows": rows}


def child_main(args) -> int:
    import asyncio

    result = asyncio.run(measure_row(args.config, args.warmup, args.window, args.hostile))
    print("RESULT " + json.dumps(result), flush=True)
    return 0


# ------------------------------------------------------------------ the parent: lab, server, rows

def hostile_config(lab_config: Path, name: str, url: str) -> Path:
    path = lab_config.with_name(f"hostile-{name}.toml")
    path.write_text(lab_config.read_text() + f'\n[[source]]\nname = "hostile"\nscrape = "{url}"\n'
                    f'preset = "scaledash"\n')
    return path


def run_row(code: Path, config: Path, warmup: float, window: float, hostile: bool) -> dict | str:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--config", str(config),
               "--warmup", str(warmup), "--window", str(window)]
    if hostile:
        command += ["--hostile", "hostile"]
    env = {**os.environ, "PYTHONPATH": str(code)}
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=warmup + window + 180,
                              env=env, cwd=code)
    except subprocess.TimeoutExpired:
        return "did not finish"
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return f"failed: {tail[:120]}"


def code_of(rev: str, into: Path) -> Path:
    """The dashboard of `rev`, for a before/after comparison."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev, "dashboard", "widgets"], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def table_row(label: str, result: dict | str, plain_rss: float | None) -> str:
    if isinstance(result, str):
        return f"| {label} | {result} | | | | | | |"
    keys, stalls, late = result["keys"], result["stalls"], result["lateness"]
    rss = result["rss_mb"]
    delta = f"{rss - plain_rss:+.0f}" if plain_rss is not None else "-"
    hostile = result["hostile"]
    said = f"{hostile.get('state', '-')}: {hostile.get('reason') or ''}"[:60] if hostile else "-"
    return (f"| {label} | {ms(percentile(keys, 50))} / {ms(percentile(keys, 99))} / {ms(max(keys, default=None))} "
            f"| {ms(max(stalls, default=None))} "
            f"| {ms(percentile(late, 50))} / {ms(percentile(late, 99))} / {ms(max(late, default=None))} "
            f"| {rss:.0f} ({delta}) | {result['peak_mb']:.0f} | {result['rows']} | {said} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=30.0, help="seconds measured per row (default 30)")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--before", help="also run the rows on the dashboard of this git revision")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--hostile", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(args)

    sys.path.insert(0, str(ROOT))
    from dashboard.lab.stack import Lab

    tmp = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    lab = Lab(tmp / "lab")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    codes = [("now", ROOT)]
    if args.before:
        codes.insert(0, (f"before ({args.before})", code_of(args.before, tmp / "before")))
    lines: list[str] = []
    try:
        server.stdout.readline()
        lab.up(log=lambda m: print(f"  lab: {m}", flush=True))
        time.sleep(2.0)
        big = hostile_config(lab.config_path, "big", f"http://127.0.0.1:{port}/big")
        bomb = hostile_config(lab.config_path, "bomb", f"http://127.0.0.1:{port}/bomb")
        for label, code in codes:
            plain = run_row(code, lab.config_path, args.warmup, args.window, False)
            plain_rss = plain["rss_mb"] if isinstance(plain, dict) else None
            for row, config, hostile in (("plain lab", lab.config_path, False),
                                         ("lab + 100k-series /metrics", big, True),
                                         ("lab + gzip bomb /metrics", bomb, True)):
                result = plain if not hostile else run_row(code, config, args.warmup, args.window, True)
                lines.append(table_row(f"{label}: {row}", result, plain_rss))
                print("  " + lines[-1], flush=True)
    finally:
        server.terminate()
        server.wait(5)
        print("# lab down: " + ", ".join(lab.down()), flush=True)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nhostile scale, TUI headless (160x50) on the lab, {args.window:.0f} s windows after "
          f"{args.warmup:.0f} s warm-up; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("| run | key answer ms p50 / p99 / max | loop stall max ms | others' lateness ms p50 / p99 / max "
          "| RSS MB (vs plain) | peak RSS MB | rows | hostile source |")
    print("|---|---|---|---|---|---|---|---|")
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

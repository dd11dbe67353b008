"""Benchmark: the engine's CPU per minute on the lab, without the TUI, target by target.

Run on demand (not collected by pytest):

    .venv/bin/python tests/bench/engine_cpu.py                 # 60 s windows
    .venv/bin/python tests/bench/engine_cpu.py --window 20     # shorter, noisier

One lab comes up in a temporary directory (always taken down at the end). The engine
then polls the lab's config in this process, as the dashboard does (`Engine.start()`, one
snapshot a second), and the CPU of this process (`resource.getrusage`, user + system)
is measured over a steady window after a 5 s warm-up:

  1. every target, polled on the shared grid of ticks (what the dashboard does);
  2. the same targets with each one's ticks spread over the second, as before the grid
     (the peer in the same run: `Engine._next_due` replaced by the pre-grid schedule);
  3. each target alone on the grid, and no target at all (the idle floor of an event
     loop with one snapshot a second), to show what each kind of target costs.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def use_spread_schedule(engine) -> None:
    """The pre-grid schedule (the engine's code before the grid): a healthy target's next
    poll is one interval after its last one started, missed ticks skipped; the backoff of
    dead targets is unchanged."""
    from dashboard.engine import DOWN_AFTER

    grid_next_due = engine._next_due

    def next_due(t, started: float, finished: float) -> float:
        if t.failures >= DOWN_AFTER:
            return grid_next_due(t, started, finished)
        p = engine.interval_of(t)
        return started + max(1, math.ceil((finished - started) / p)) * p

    engine._next_due = next_due


async def measure(config_path: Path, window: float, only: set[str] | None, spread: bool) -> tuple[float, int]:
    from dashboard.config import load
    from dashboard.engine import Engine

    engine = Engine(load(str(config_path)))
    if only is not None:
        engine.targets = [t for t in engine.targets if t.probe.target in only]
    if spread:
        use_spread_schedule(engine)
    engine.start()
    try:
        await asyncio.sleep(5.0)
        before, started = cpu_s(), time.monotonic()
        while time.monotonic() - started < window:
            await asyncio.sleep(1.0)
            engine.snapshot()
        used = cpu_s() - before
        return used / (time.monotonic() - started) * 60, len(engine.targets)
    finally:
        await engine.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured per row (default 60)")
    args = parser.parse_args()

    from dashboard.config import load
    from dashboard.lab.stack import Lab

    tmp = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    lab = Lab(tmp / "lab")
    rows: list[tuple[str, int, float]] = []
    try:
        lab.up(log=lambda m: print(f"  lab: {m}", flush=True))
        time.sleep(2.0)     # let the lab's traffic get going
        config = load(str(lab.config_path))
        names = [t.name for t in (*config.replicas, *config.caches, *config.sources, *config.edges, *config.cdns)]
        plan = [("all targets, shared grid", None, False), ("all targets, spread (peer)", None, True)]
        plan += [(f"only {name}", {name}, False) for name in names]
        plan.append(("no target (idle floor)", set(), False))
        for label, only, spread in plan:
            per_min, count = asyncio.run(measure(lab.config_path, args.window, only, spread))
            rows.append((label, count, per_min))
            print(f"  {label:<34} {count:>2} targets  {per_min:.3f} CPU s/min", flush=True)
    finally:
        print("# lab down: " + ", ".join(lab.down()), flush=True)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nengine CPU on the lab, {args.window:.0f} s windows, interval 1 s (Prometheus sources and CDN 5 s)")
    print("| run | targets | CPU s/min |\n|---|---|---|")
    for label, count, per_min in rows:
        print(f"| {label} | {count} | {per_min:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

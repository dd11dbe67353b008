"""Benchmark: the failover drill and its rejoin, N times in a row on one lab.

Run on demand (not collected by pytest):

    .venv/bin/python tests/bench/drill_failover.py            # 5 failovers, each followed by a rejoin
    .venv/bin/python tests/bench/drill_failover.py --runs 3

One lab comes up in a temporary directory (always taken down at the end). Each round
runs `scaledash drill run failover` on the node that is primary now (SIGKILL, promote the
most caught-up replica, repoint the other, canary writes throughout), then `scaledash
drill run rejoin` on the old primary, so the lab is three streaming nodes again before
the next round, each time with a different primary. Printed per round: the failover
time (last write acknowledged by the old primary -> first by the new one), the writes
that failed in the gap, the acknowledged writes lost (target 0), how long the promotion
and the rejoin took, and each drill's verdict. Load on the machine shows directly in
these figures: run it on a quiet machine and say what else ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dashboard.lab.stack import Lab  # noqa: E402


def drill(config: Path, name: str, target: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "dashboard.cli", "drill", "run", name, "--config", str(config),
                           "--confirm", target, "--json"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        sys.exit(f"{name}: no outcome (exit {proc.returncode}): {proc.stderr[-800:]}")


def primary_now(lab: Lab) -> str:
    out = subprocess.run([sys.executable, "-m", "dashboard.cli", "lab", "topology", "--json", "--dir", str(lab.dir)],
                         capture_output=True, text=True, cwd=ROOT, timeout=60).stdout
    nodes = json.loads(out)["nodes"]
    return next(name for name, node in nodes.items() if node["role"] == "primary")


def step_seconds(report: str, prefix: str) -> float | None:
    data = json.loads(Path(report).read_text())
    return next((s["seconds"] for s in data["steps"] if s["label"].startswith(prefix)), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-drill-"))
    lab = Lab(base / "lab")
    rows = []
    try:
        lab.up(log=lambda line: None)
        time.sleep(5)          # the service's caches and monitors warm up
        for i in range(1, args.runs + 1):
            primary = primary_now(lab)
            failover = drill(lab.config_path, "failover", primary)
            f = failover["figures"]
            rejoin = drill(lab.config_path, "rejoin", primary)
            rows.append((i, primary, f.get("new_node"), f.get("failover_seconds"), f.get("failed_writes"),
                         f.get("lost_writes"), step_seconds(failover["report_json"], "promote"),
                         failover["verdict"], step_seconds(rejoin["report_json"], "rebuild"), rejoin["verdict"]))
            time.sleep(3)
    finally:
        lab.down()
        shutil.rmtree(base, ignore_errors=True)
    print(f"# failover drill x{len(rows)} on the lab, {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}")
    print("| run | old primary | new primary | failover s | failed writes | lost writes | promote s | verdict "
          "| rejoin s | rejoin |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join("-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)
                                for v in row) + " |")
    times = [r[3] for r in rows if r[3] is not None]
    if times:
        print(f"failover s: median {statistics.median(times):.3f}, max {max(times):.3f}; lost writes in all: "
              f"{sum(r[5] or 0 for r in rows)}")


if __name__ == "__main__":
    main()

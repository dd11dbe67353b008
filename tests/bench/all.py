"""Every benchmark table in one command: `make bench`, or

    .venv/bin/python tests/bench/all.py                         # all of them (~30 min)
    .venv/bin/python tests/bench/all.py --quick                 # shorter runs of each (~15 min)
    .venv/bin/python tests/bench/all.py --only detection,load --runs 20

The header says when and on what the figures were measured (date, cores, CPU model,
Python, PostgreSQL, load average). Each bench runs as its own process, one after the
other, with its progress shown as it goes; each brings up and takes down what it needs,
also on Ctrl-C or a failure (its own `finally`), and this runner waits for it to do so.
At the end every bench's table is printed again, together, with its exit status. A
bench that cannot run here (tui.py needs pyte and a pg_activity venv) says why and
the others still run. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent

from figures import machine  # noqa: E402


@dataclass(frozen=True)
class Bench:
    script: str
    what: str
    report_from: str            # the line that opens the bench's final table(s)
    quick: tuple[str, ...] = ()


BENCHES = {
    "detection": Bench("detection.py", "detection latency, fault -> state on screen, per fault type",
                       "Detection latency,", ("--runs", "5")),
    "load": Bench("primary_load.py", "load on the primary per dashboard, direct and in Prometheus mode",
                  "Load on the primary", ("--window", "15")),
    "tui": Bench("tui.py", "the TUI against pg_activity: start-up, bytes and CPU, RSS over a soak",
                 "scaledash vs pg_activity", ("--quick",)),
    "poll-round": Bench("poll_round.py", "one engine poll round for 1 to 1000 targets, and the bare drivers",
                        "scaledash poll-round benchmark", ("--quick",)),
}


def run(name: str, bench: Bench, extra: list[str]) -> tuple[int, str, float]:
    """Run one bench, echoing its output; (exit status, its final tables, seconds)."""
    argv = [sys.executable, str(HERE / bench.script), *extra]
    print(f"\n## {name}: {bench.what}\n## {' '.join(argv[1:])}", flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: list[str] = []
    try:
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line)
        status = proc.wait()
    except KeyboardInterrupt:
        # The bench got the Ctrl-C too (same process group): let its finally take its servers down.
        try:
            status = proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            status = proc.wait()
        raise
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    starts = [i for i, line in enumerate(lines) if line.startswith(bench.report_from)]
    tables = "".join(lines[starts[-1]:]) if starts else "".join(lines[-3:])
    return status, tables, time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(BENCHES), help=f"comma-separated subset of {','.join(BENCHES)}")
    parser.add_argument("--quick", action="store_true", help="shorter runs of each bench (noisier figures)")
    parser.add_argument("--runs", type=int, help="detection: runs of each fault")
    parser.add_argument("--window", type=float, help="load: seconds between the two counter readings")
    args = parser.parse_args()
    chosen = [n for n in args.only.split(",") if n]
    unknown = [n for n in chosen if n not in BENCHES]
    if unknown:
        parser.error(f"--only: unknown {', '.join(unknown)}; expected a subset of {','.join(BENCHES)}")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # the running bench is stopped in run()
    started = time.monotonic()
    print(f"# scaledash benchmarks: {', '.join(chosen)}{' (quick)' if args.quick else ''}")
    print(f"# {machine()}", flush=True)
    results = []
    for name in chosen:
        bench = BENCHES[name]
        extra = list(bench.quick) if args.quick else []
        # Given after the quick ones: argparse keeps an option's last value.
        if name == "detection" and args.runs:
            extra += ["--runs", str(args.runs)]
        if name == "load" and args.window:
            extra += ["--window", str(args.window)]
        try:
            results.append((name, *run(name, bench, extra)))
        except KeyboardInterrupt:
            print(f"\n# interrupted during {name} (it was given 120 s to take down what it started)", flush=True)
            return 130

    print(f"\n# ==== every table, {(time.monotonic() - started) / 60:.0f} min in all; {machine()}")
    for name, status, tables, seconds in results:
        verdict = "ok" if status == 0 else f"exit status {status}"
        print(f"\n## {name} ({seconds / 60:.1f} min, {verdict})\n{tables.rstrip()}")
    return 0 if all(status == 0 for _, status, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())

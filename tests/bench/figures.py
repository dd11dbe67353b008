"""What several benchmarks share: percentiles, plain-text tables, process trees, and the
machine a run was measured on.

The benches run as scripts (`python tests/bench/x.py`), so this folder is on their
path and they `import figures`; nothing here imports the project, so a bench that runs
an older checkout's code (hostile_scale.py --before) still gets these helpers.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile `q` (0-100) of `values`; None when there are none. With
    fewer than 100 values, p99 is the largest: say how many values a p99 stands on."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def table(rows: list[tuple], header: tuple[str, ...]) -> str:
    """Columns padded to their widest cell, a dashed rule under the header."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(r) -> str:
        return " | ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()

    sep = "-+-".join("-" * w for w in widths)
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                out += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
            except (FileNotFoundError, ProcessLookupError):
                pass
    except FileNotFoundError:
        pass
    return out


def process_tree(pid: int) -> list[int]:
    """`pid` and all its live descendants (from /proc/<pid>/task/*/children)."""
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += _children(p)
    return tree


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown CPU"
    found = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return found.group(1).strip() if found else (platform.processor() or "unknown CPU")


def postgres_version() -> str:
    """The version of the PostgreSQL server binaries the lab would use."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                        key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.parent.name)] or [0])
    binary = str(candidates[-1]) if candidates else "postgres"
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "PostgreSQL not found"
    return out.strip() or "PostgreSQL version unknown"


def machine() -> str:
    """One line: date, cores, CPU model, Python, PostgreSQL, load average."""
    return (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores, {cpu_model()}; "
            f"Python {sys.version.split()[0]}; {postgres_version()}; load average {loadavg()}")

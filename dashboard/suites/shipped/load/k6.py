"""Run the k6 twin of the Locust scenarios (load.k6.js) when k6 is installed.

k6 is a separate binary (Go, not on PyPI), often present on CI runners and absent from
laptops: when it is not on PATH its part is reported as skipped with that reason, never
counted as passed. It runs after Locust, not beside it, so the stack never takes both
loads at once; the same bounded users and run time apply. The stack reaches the script
through its environment (k6 passes it to `__ENV`), so edge headers that hold secrets
never appear in argv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from dashboard.redact import safe_message
from dashboard.suites.shipped.load.target import LoadTarget

SCRIPT = Path(__file__).with_name("load.k6.js")
THRESHOLDS_CROSSED = 99     # k6's exit code when a threshold failed
_SLACK_S = 60.0
_SHOWN_LINES = 40


def k6_environment(target: LoadTarget, users: int, run_time_s: float) -> dict[str, str]:
    edges = [{"name": e.name, "url": e.url, "method": e.method, "headers": dict(e.headers),
              "expect_status": e.expect_status} for e in target.edges]
    return {"SCALEDASH_SERVICE_URL": target.service_url, "SCALEDASH_EDGES": json.dumps(edges),
            "SCALEDASH_K6_USERS": str(max(users, 1)), "SCALEDASH_K6_DURATION": f"{max(run_time_s, 1):g}s"}


def run_k6(target: LoadTarget, users: int, run_time_s: float, say) -> tuple[str, str] | None:
    """Run k6 (or not); None when it ran and passed, else ("failed"|"skipped", why)."""
    k6 = shutil.which("k6")
    if k6 is None:
        return "skipped", "k6 is not on PATH (install it from k6.io to run load.k6.js too)"
    env = {**os.environ, **k6_environment(target, users, run_time_s)}
    try:
        proc = subprocess.run([k6, "run", "--no-color", "--quiet", str(SCRIPT)], env=env, capture_output=True,
                              text=True, timeout=run_time_s + _SLACK_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return "failed", f"k6 did not finish within {run_time_s + _SLACK_S:g} s"
    except OSError as exc:
        return "skipped", f"k6 could not be started ({safe_message(str(exc), 120)})"
    for line in (proc.stdout + proc.stderr).splitlines()[-_SHOWN_LINES:]:
        say(f"k6: {safe_message(line, 300)}")
    if proc.returncode == 0:
        return None
    if proc.returncode == THRESHOLDS_CROSSED:
        return "failed", "k6 reported a crossed threshold (exit code 99; its lines above name it)"
    return "failed", f"k6 ended with exit code {proc.returncode}"

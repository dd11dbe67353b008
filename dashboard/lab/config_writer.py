"""Write the dashboard config for a running lab: every target, secrets as file: refs."""

from __future__ import annotations

import json
import sys
from pathlib import Path


# The lab's functions (dashboard/lab/service/edge.py) and the contract each keeps. The
# budgets leave room for a loaded laptop: a lab function answers in milliseconds, and
# the `latency_ms` fault (seconds) is what the edge suite must see missed.
_EDGE_FUNCTIONS = (
    ("hello", "POST", '''content_type = "application/json"
body = { message = "string" }
request_body = { name = "scaledash" }
latency_ms = 1000
samples = 5
'''),
    ("resize", "GET", '''content_type = "application/json"
body = { width = "integer", height = "integer", sha256 = "string" }
latency_ms = 2000
samples = 5
'''),
)


def _replica(name: str, port: int, secret: Path) -> str:
    return f'''
[[replica]]
name = "{name}"
dsn = "postgresql://monitor@127.0.0.1:{port}/postgres"
password = "file:{secret}"
'''


def render(*, lab_dir: Path, primary_port: int, replica_ports: dict[str, int], redis_url: str,
           service_port: int, traffic_port: int, prometheus_url: str | None,
           exporter_jobs: tuple[str, ...]) -> str:
    secrets = lab_dir / "secrets"
    service = f"http://127.0.0.1:{service_port}"
    parts = [f'''# Written by `scaledash lab up` for the lab in {lab_dir}; rewritten at every start.
name = "lab"
interval = "1s"
timeout = "800ms"

# The lab's own service: what `scaledash suite run` drives; the token opens its
# /admin/faults and /admin/state endpoints.
[service]
url = "{service}"
admin_token = "file:{secrets / 'admin_token'}"
''']
    parts.append(_replica("primary", primary_port, secrets / "pg_password"))
    parts += [_replica(name, port, secrets / "pg_password") for name, port in replica_ports.items()]
    parts.append(f'''
# This Redis is the second layer of the service's items cache: it only sees what the
# memory layer missed (the cold keys), so its own hit rate says little on its own (0 %
# for the first half minute of a fresh lab). Its hits are judged where they matter:
# with the memory layer, in the items/* rows' overall hit rate.
[[cache]]
name = "redis"
url = "{redis_url}"
password = "file:{secrets / 'redis_password'}"
min_hit_rate = 0.0

# Client-side response times, cached vs uncached (the cache speed-up KPI); listed
# before the service so its figure is the one the KPI reads.
[[source]]
name = "traffic"
scrape = "http://127.0.0.1:{traffic_port}/metrics"
preset = "scaledash"

[[source]]
name = "service"
scrape = "{service}/metrics"
preset = "scaledash"
''')
    if prometheus_url:
        presets = {"postgres": "postgres_exporter", "redis": "redis_exporter"}
        for job in exporter_jobs:
            parts.append(f'''
[[source]]
name = "{job}-prom"
prometheus = "{prometheus_url}"
preset = "{presets[job]}"
job = "{job}"
interval = "5s"           # PromQL rates span 1 m: asking every second buys nothing
''' + ("min_hit_rate = 0.0        # the same second-layer Redis as [[cache]] \"redis\" above\n"
       if job == "redis" else ""))
    for function, method, contract in _EDGE_FUNCTIONS:
        parts.append(f'''
[[edge]]
name = "{function}"
url = "{service}/functions/v1/{function}"
method = "{method}"
[edge.contract]           # what `scaledash suite run edge` checks in each answer
{contract}''')
    parts.append(f'''
[[cdn]]
name = "static"
url = "{service}/static/app.js"
interval = "5s"
''')
    parts.append(_drills(lab_dir, ["primary", *replica_ports, "redis", "service"]))
    return "".join(parts)


def _drills(lab_dir: Path, allowed: list[str]) -> str:
    """The built-in drills on this lab: its own targets allowed, its own verbs as commands."""
    def lab(*verb: str) -> str:
        return json.dumps([sys.executable, "-m", "dashboard.cli", "lab", *verb, "--dir", str(lab_dir)])

    return f'''
# Drills may act on this lab's own targets (a real stack opts in per target the same way).
# Their journal, reports, audit records and locks live in state_dir; `signal` steps find
# PIDs in the lab's process table.
[drills]
allow = {json.dumps(allowed)}
state_dir = "{lab_dir / 'drills'}"
processes = "{lab_dir / 'lab.json'}"

[[drill]]
name = "failover"
use = "failover"
# No promote command: pg_promote() on the candidate through the monitor role (granted it).
commands = {{ repoint = {lab("repoint", "{node}", "--primary", "{primary}")}, restart = {lab("restart", "{process}")} }}

[[drill]]
name = "rejoin"
use = "rejoin"
commands = {{ rejoin = {lab("rejoin", "{node}", "--primary", "{primary}")} }}

[[drill]]
name = "redis-outage"
use = "redis-outage"
target = "redis"
commands = {{ restart = {lab("restart", "{process}")} }}

[[drill]]
name = "upstream-fault"
use = "upstream-fault"

[[drill]]
name = "replica-lag"
use = "replica-lag"
'''

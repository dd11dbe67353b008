"""`lab restart NAME`: start a dead lab process again, the way lab.json says it was started.

Drills stop Redis or a database node on purpose and must bring them back without a
new lab (new ports, new data, a new config). The process starts with the argv, cwd,
user and environment recorded at `up`, on its recorded port, and counts as back only
when it answers as its kind does (PING for Redis, a query for PostgreSQL, an open
port for the rest); then its new PID replaces the old one in lab.json.

A PostgreSQL node that was a primary is refused while another node is the primary:
it would come back as a second one beside the promoted standby (split brain), so it
must be rebuilt with `lab rejoin` instead.
"""

from __future__ import annotations

import time
from pathlib import Path

from dashboard.lab.servers import (
    START_TIMEOUT,
    Process,
    ServerError,
    port_in_use,
    redis_command,
    spawn,
)
from dashboard.lab.servers.process import _start_failed, _wait_until
from dashboard.lab.servers.standby import wait_stopped
from dashboard.lab.stack import NODES, Entry, Lab
from dashboard.lab.topology import nodes


def restart(lab: Lab, name: str) -> str:
    """Start `name` again; the answer line says its new PID. ServerError while it runs."""
    entry = lab.entry(name)
    if entry.alive():
        raise ServerError(f"{name} is still running (pid {entry.pid}); nothing to restart")
    if not entry.argv:
        raise ServerError(f"{name}: lab.json does not record how it was started (a lab started by an older "
                          "version); take it down and up again")
    if entry.env_withheld:
        raise ServerError(f"{name} was started with secrets in its environment ({', '.join(entry.env_withheld)}), "
                          "which lab.json does not keep; take the lab down and up again")
    started = time.monotonic()
    node = name.removeprefix("postgres-")
    proc = _restart_postgres(lab, node) if name.startswith("postgres-") and node in NODES else _restart(lab, entry)
    lab.replace(proc)
    return f"lab: restarted {name} in {time.monotonic() - started:.2f}s (pid {proc.pid}, port {proc.port})"


def _restart_postgres(lab: Lab, node: str) -> Process:
    cluster = lab.cluster()
    entry = lab.entry(f"postgres-{node}")
    datadir = Path(entry.cwd)
    if not (datadir / "standby.signal").exists():
        primaries = [s.name for s in nodes(lab, cluster).values() if s.role == "primary" and s.name != node]
        if primaries:
            raise ServerError(f"{node} was a primary and {primaries[0]} is the primary now: it would come back "
                              f"as a second one; use `scaledash lab rejoin {node} --primary {primaries[0]}`")
    # Backends of a SIGKILLed postmaster still hold its shared memory until they notice.
    wait_stopped(datadir)
    return cluster.start_node(node, datadir, entry.port)


def _restart(lab: Lab, entry: Entry) -> Process:
    if port_in_use(entry.port):
        raise ServerError(f"port {entry.port} of {entry.name} is taken by another process")
    proc = spawn(entry.name, list(entry.argv), entry.port, Path(entry.log), env=entry.env or None,
                 cwd=Path(entry.cwd) if entry.cwd else None, user=entry.user, stop_signal=entry.stop_signal)
    deadline = time.monotonic() + START_TIMEOUT
    if not _wait_until(lambda: _answers(lab, proc), deadline, proc, interval=0.05):
        state = "exited" if not proc.alive() else f"did not answer within {START_TIMEOUT:.0f}s"
        raise _start_failed(proc, f"{entry.name} on port {entry.port} {state}")
    return proc


def _answers(lab: Lab, proc: Process) -> bool:
    if proc.name != "redis-server":
        return port_in_use(proc.port)
    password = (lab.dir / "secrets" / "redis_password").read_text()
    try:
        return redis_command(proc.port, "PING", password=password, timeout=0.5) == "+PONG"
    except OSError:
        return False

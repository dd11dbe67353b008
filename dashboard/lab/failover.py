"""The lab's side of a failover drill: promote a standby, repoint another, rejoin the old primary.

The drill engine (dashboard/drills/) never imports the lab; it runs these as
`scaledash lab promote|repoint|rejoin ...` and reads their one-line answers. Each
checks the roles the servers report (topology.py) before it acts, refuses with a
one-line ServerError when they are not what the step needs, and keeps lab.json
right (a rebuilt node is recorded with its new PID, on its old port).

Synchronous commit follows Patroni's non-strict mode: a promoted node has no standby
yet, so `synchronous_standby_names` is cleared on it (commits asking for a standby
must not wait for one that does not exist); once a standby streams from it again
(repoint, rejoin) it is set back to 'ANY 1 (*)'.
"""

from __future__ import annotations

import time

from dashboard.lab.servers import PostgresCluster, ServerError, log_tail
from dashboard.lab.servers.postgres import _sql_literal
from dashboard.lab.servers.standby import rebuild
from dashboard.lab.stack import SYNCHRONOUS_STANDBYS, Lab
from dashboard.lab.topology import NodeState, node_state

PROMOTE_WAIT = 30
STREAM_TIMEOUT = 15.0
REJOIN_STREAM_TIMEOUT = 30.0

# synchronous_standby_names is cleared before the promotion, while still a standby
# (ALTER SYSTEM only writes a file), so the node never takes writes with a synchronous
# standby setting nobody can satisfy. pg_promote(wait => true) looks every 100 ms; the
# loop here every 10 ms, as a failover's gap is what the drill measures.
PROMOTE = f"""
ALTER SYSTEM SET synchronous_standby_names = '';
SELECT pg_reload_conf();
SELECT pg_promote(wait => false);
DO $$ BEGIN
    FOR i IN 1..{PROMOTE_WAIT * 100} LOOP
        EXIT WHEN NOT pg_is_in_recovery();
        PERFORM pg_sleep(0.01);
    END LOOP;
END $$;
SELECT pg_is_in_recovery();
"""


def _state(lab: Lab, cluster: PostgresCluster, name: str, role: str, what: str) -> NodeState:
    """`name`'s state, which must have `role`; else a ServerError saying why `what` cannot be."""
    state = node_state(lab, cluster, name)
    if state.role != role:
        found = "not running" if state.role == "down" else f"a {state.role}" if state.role != "unknown" \
            else f"not answering ({state.error})"
        raise ServerError(f"cannot {what}: {name} is {found}, not a {role}")
    return state


def _node(lab: Lab, name: str):
    return lab.entry(f"postgres-{name}").process()


def _set_synchronous(cluster: PostgresCluster, lab: Lab, name: str, value: str) -> None:
    cluster.psql(_node(lab, name), f"ALTER SYSTEM SET synchronous_standby_names = {_sql_literal(value)};\n"
                                   "SELECT pg_reload_conf();\n")


def promote(lab: Lab, name: str) -> str:
    """Promote standby `name`; the answer line says how long pg_promote took."""
    cluster = lab.cluster()
    _state(lab, cluster, name, "standby", f"promote {name}")
    started = time.monotonic()
    out = cluster.psql(_node(lab, name), PROMOTE, timeout=PROMOTE_WAIT + 5)
    seconds = time.monotonic() - started
    if out.split()[-1:] != ["f"]:
        raise ServerError(f"pg_promote on {name} did not finish within {PROMOTE_WAIT}s")
    return (f"lab: promoted {name} in {seconds:.2f}s (port {lab.entry(f'postgres-{name}').port}); "
            "synchronous_standby_names cleared until a standby streams from it")


def _wait_streaming(lab: Lab, cluster: PostgresCluster, name: str, upstream: str, timeout: float) -> float:
    """Seconds until standby `name` streams from `upstream`; ServerError at the deadline."""
    started = time.monotonic()
    while True:
        state = node_state(lab, cluster, name)
        if (state.role == "standby" and state.upstream == upstream and state.receiver == "streaming"
                and _walsender_state(cluster, lab, upstream, name) == "streaming"):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            log = lab.dir / f"{name}.log"
            raise ServerError(f"{name} does not stream from {upstream} after {timeout:.0f}s (role {state.role}, "
                              f"receiver {state.receiver or 'stopped'}); if it has WAL {upstream} lacks, stop it "
                              f"and rejoin it; its log: {log_tail(log)}")
        time.sleep(0.1)


def _walsender_state(cluster: PostgresCluster, lab: Lab, upstream: str, name: str) -> str:
    """The upstream's walsender for `name`: "catchup" until it has sent all it has (and on a
    timeline the standby is leaving), then "streaming"; "" when there is none."""
    try:
        return cluster.psql(_node(lab, upstream), "SELECT state FROM pg_stat_replication WHERE application_name = "
                            f"{_sql_literal(name)}", timeout=3.0).strip()
    except ServerError:
        return ""


def repoint(lab: Lab, name: str, primary: str) -> str:
    """Make standby `name` stream from `primary`, then require a synchronous standby there again."""
    if name == primary:
        raise ServerError(f"cannot repoint {name} at itself")
    cluster = lab.cluster()
    _state(lab, cluster, primary, "primary", f"repoint {name} at {primary}")
    _state(lab, cluster, name, "standby", f"repoint {name}")
    conninfo = cluster.conninfo(_node(lab, primary), application_name=name)
    # PostgreSQL 13+ restarts the WAL receiver when primary_conninfo changes on reload.
    cluster.psql(_node(lab, name), f"ALTER SYSTEM SET primary_conninfo = {_sql_literal(conninfo)};\n"
                                   "SELECT pg_reload_conf();\n")
    seconds = _wait_streaming(lab, cluster, name, primary, STREAM_TIMEOUT)
    _set_synchronous(cluster, lab, primary, SYNCHRONOUS_STANDBYS)
    return (f"lab: {name} streams from {primary} after {seconds:.2f}s; "
            f"synchronous_standby_names '{SYNCHRONOUS_STANDBYS}' on {primary}")


def rejoin(lab: Lab, name: str, primary: str) -> str:
    """Rebuild the stopped node `name` as a standby of `primary` (pg_rewind, else a fresh
    base backup), start it on its port, record it, wait until it streams."""
    if name == primary:
        raise ServerError(f"cannot rejoin {name} to itself")
    cluster = lab.cluster()
    entry = lab.entry(f"postgres-{name}")
    if entry.alive():
        raise ServerError(f"cannot rejoin {name}: it is running (pid {entry.pid}); stop it first")
    _state(lab, cluster, primary, "primary", f"rejoin {name} to {primary}")
    started = time.monotonic()
    datadir = cluster.datadir(entry.process())
    method = rebuild(cluster, name, datadir, entry.port, _node(lab, primary))
    proc = cluster.start_node(name, datadir, entry.port)
    lab.replace(proc)
    _wait_streaming(lab, cluster, name, primary, REJOIN_STREAM_TIMEOUT)
    _set_synchronous(cluster, lab, primary, SYNCHRONOUS_STANDBYS)
    return (f"lab: rejoined {name} as a standby of {primary} by {method} in {time.monotonic() - started:.1f}s "
            f"(pid {proc.pid}, port {proc.port})")

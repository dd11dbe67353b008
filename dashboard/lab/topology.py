"""What the lab's PostgreSQL nodes are right now: alive, primary or standby, streaming from whom.

A failover drill changes roles: the node named `primary` may be a standby after it,
and `replica-1` the primary. So roles are read from the servers themselves
(`pg_is_in_recovery()` over each node's unix socket, as superuser), never from the
names. `lab topology` prints this; promote, repoint, rejoin and restart check it
before they act.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from dashboard.lab.servers import PostgresCluster, ServerError, redis_command
from dashboard.lab.stack import NODES, Lab

PSQL_TIMEOUT = 3.0

# One line per node (PostgreSQL 13 and later). pg_is_wal_replay_paused() and
# pg_current_wal_lsn() raise on the wrong side of recovery, hence the CASEs.
NODE_STATE = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN '' ELSE pg_current_wal_lsn()::text END,
       coalesce(pg_last_wal_receive_lsn()::text, ''),
       coalesce(pg_last_wal_replay_lsn()::text, ''),
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused()::text ELSE '' END,
       coalesce((SELECT sender_port::text FROM pg_stat_wal_receiver), ''),
       coalesce((SELECT status FROM pg_stat_wal_receiver), '')
"""


def lsn_bytes(text: str | None) -> int | None:
    """'16/B374D848' -> its byte position; None for no position."""
    if not text:
        return None
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass(frozen=True)
class NodeState:
    """One node as it answered (role "down" when its postmaster is not running,
    "unknown" when it runs but did not answer)."""

    name: str
    port: int
    pid: int
    alive: bool
    role: str                          # primary | standby | down | unknown
    upstream: str | None = None        # the node it streams from (by port), for a standby
    receiver: str | None = None        # WAL receiver status; None when none runs
    wal_lsn: str | None = None         # a primary's current position
    receive_lsn: str | None = None     # a standby's received (flushed) position
    replay_lsn: str | None = None
    replay_paused: bool | None = None
    error: str | None = None

    def as_dict(self) -> dict:
        data = asdict(self)
        for key in ("wal_lsn", "receive_lsn", "replay_lsn"):
            data[f"{key}_bytes"] = lsn_bytes(data[key])
        return data

    def line(self) -> str:
        if self.role in ("down", "unknown"):
            return f"{self.name} {self.role.upper()}" + (f" ({self.error})" if self.error else "")
        if self.role == "primary":
            return f"{self.name} primary lsn {self.wal_lsn}"
        source = f"of {self.upstream}" if self.upstream else "of nobody"
        paused = " replay paused" if self.replay_paused else ""
        return (f"{self.name} standby {source} {self.receiver or 'not streaming'} "
                f"receive {self.receive_lsn or '-'} replay {self.replay_lsn or '-'}{paused}")


def node_state(lab: Lab, cluster: PostgresCluster, name: str) -> NodeState:
    entry = lab.entry(f"postgres-{name}")
    base = dict(name=name, port=entry.port, pid=entry.pid)
    if not entry.alive():
        return NodeState(alive=False, role="down", **base)
    try:
        row = cluster.psql(entry.process(), NODE_STATE, timeout=PSQL_TIMEOUT).strip().split("|")
        in_recovery, wal, received, replayed, paused, sender_port, status = row
    except (ServerError, ValueError) as exc:
        return NodeState(alive=True, role="unknown", error=str(exc)[:200], **base)
    if in_recovery != "t":
        return NodeState(alive=True, role="primary", wal_lsn=wal, **base)
    ports = {lab.entry(f"postgres-{n}").port: n for n in NODES}
    upstream = ports.get(int(sender_port)) if sender_port else None
    return NodeState(alive=True, role="standby", upstream=upstream, receiver=status or None,
                     receive_lsn=received or None, replay_lsn=replayed or None, replay_paused=paused == "true",
                     **base)


def nodes(lab: Lab, cluster: PostgresCluster | None = None) -> dict[str, NodeState]:
    """Every node's state, asked all at once: right after a crash a drill picks the most
    caught-up standby from this, and the failover's gap includes the time it takes."""
    cluster = cluster or lab.cluster()
    with ThreadPoolExecutor(len(NODES)) as pool:
        states = pool.map(lambda name: node_state(lab, cluster, name), NODES)
    return dict(zip(NODES, states))


def redis_alive(lab: Lab) -> bool:
    entry = lab.entry("redis-server")
    if not entry.alive():
        return False
    password = (lab.dir / "secrets" / "redis_password").read_text()
    try:
        return redis_command(entry.port, "PING", password=password, timeout=1.0) == "+PONG"
    except OSError:
        return False


def topology(lab: Lab) -> dict:
    """Every node's state, the one primary (None when not exactly one), and Redis."""
    states = nodes(lab)
    primaries = [s.name for s in states.values() if s.role == "primary"]
    return {"nodes": {name: state.as_dict() for name, state in states.items()},
            "primary": primaries[0] if len(primaries) == 1 else None,
            "redis": {"alive": redis_alive(lab), "port": lab.entry("redis-server").port}}


def topology_line(report: dict) -> str:
    parts = [NodeState(**{k: v for k, v in node.items() if not k.endswith("_bytes")}).line()
             for node in report["nodes"].values()]
    parts.append(f"redis {'alive' if report['redis']['alive'] else 'DOWN'}")
    return "topology: " + "; ".join(parts)

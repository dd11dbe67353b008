"""The small moves every scaling check makes on the stack.

Checks read the service's own counters before and after what they do, and
PostgreSQL's where the service could be wrong about itself; the stack keeps serving
other traffic meanwhile, so every figure is a difference over a burst far larger
than that background.

Ids: reads of ids at MISSING_IDS never find a row, so they are never cached and each
one is a database read; writes go to fresh ids at WRITE_IDS, far above any seeded
catalogue, so the suite never changes an item someone else reads.
"""

from __future__ import annotations

import random

import asyncpg
import pytest

from dashboard.redact import safe_message
from dashboard.suites.stack import Node, Stack, require, wait_until

MISSING_IDS = (2_000_000_000, 2_147_483_647)
WRITE_IDS = (1_000_000, 1_999_999_999)
QUERIES = "db_queries_total"


def fresh_write_id() -> int:
    return random.randint(*WRITE_IDS)


def missing_ids(count: int) -> list[int]:
    return random.sample(range(*MISSING_IDS), count)


def node_reads(stack: Stack) -> dict[str, float]:
    """The service's read counter per database node."""
    metrics = stack.metrics()
    require(metrics.has(QUERIES), "the service exports no db_queries_total{node,kind}: "
                                  "no per-node query counters to check routing by")
    return {node: metrics.value(QUERIES, node=node, kind="read")
            for node in metrics.label_values(QUERIES, "node")}


def read_burst(stack: Stack, count: int = 100) -> dict[str, float]:
    """Read `count` ids that exist nowhere (each a database read); per node, the reads it took."""
    before = node_reads(stack)
    for item_id in missing_ids(count):
        response = stack.service.get(f"/items/{item_id}")
        assert response.status_code == 404, \
            f"GET /items/{item_id} (no such item) answered {response.status_code}: " \
            f"{safe_message(response.text)}"
    after = node_reads(stack)
    return {node: after[node] - before.get(node, 0.0) for node in after}


def service_node(stack: Stack, node: Node) -> str:
    """The service's label for a configured node: its name, which must be among the counters'."""
    labels = set(node_reads(stack))
    require(node.name in labels, f"the service's db_queries_total has no node {node.name!r} "
                                 f"(it has {sorted(labels)}): name the config's [[replica]] as the service does")
    return node.name


def write_item(stack: Stack, item_id: int, **fields) -> dict:
    response = stack.service.put(f"/items/{item_id}", json=fields)
    assert response.status_code == 200, \
        f"PUT /items/{item_id} answered {response.status_code}: {safe_message(response.text)}"
    return response.json()


def pause_replay(node: Node) -> None:
    """Pause WAL replay on a replica, or skip when the config's role may not."""
    try:
        node.fetchval("SELECT pg_wal_replay_pause()")
    except asyncpg.InsufficientPrivilegeError:
        pytest.skip(f"the role in {node.name}'s DSN may not pause replay (GRANT EXECUTE ON FUNCTION "
                    "pg_wal_replay_pause(), pg_wal_replay_resume() TO it on the primary)")


def resume_replay(node: Node) -> None:
    node.fetchval("SELECT pg_wal_replay_resume()")


def lag_bytes(primary: Node, replica: Node) -> int:
    """The primary's WAL insert position minus the replica's replay position, read in that order.

    The insert position, not pg_current_wal_lsn(): with synchronous_commit off the write
    position can trail commits just made by the WAL writer's delay, and a burst of
    writes would read as no lag at all (seen in CI: 20 writes, lag 0 -> 0).
    """
    position = primary.fetchval("SELECT pg_current_wal_insert_lsn()::text")
    return int(replica.fetchval("SELECT pg_wal_lsn_diff($1::text::pg_lsn, pg_last_wal_replay_lsn())", position))


def wait_replayed(stack: Stack, what: str) -> None:
    """Until every replica has replayed everything inserted into the primary's WAL so far.

    The insert position, not pg_current_wal_lsn(): with synchronous_commit off the
    write position can still be short of a commit just made.
    """
    position = stack.primary.fetchval("SELECT pg_current_wal_insert_lsn()::text")
    for replica in stack.replicas:
        wait_until(f"{what}: {replica.name} replays the primary's position {position}",
                   lambda: int(replica.fetchval("SELECT pg_wal_lsn_diff($1::text::pg_lsn, pg_last_wal_replay_lsn())",
                                                position)),
                   lambda behind: behind <= 0)

"""Reads go to replicas, writes to the primary; a paused or lagging replica leaves the read set.

Routing is judged by the service's per-node query counters over a burst of reads
that miss every cache, and cross-checked by PostgreSQL's own commit counters on the
replicas (pg_stat_database), so a service that counted reads where it did not send
them would not pass.
"""

from __future__ import annotations

from dashboard.suites.stack import wait_until

from .moves import fresh_write_id, lag_bytes, pause_replay, read_burst, resume_replay, service_node, write_item

BURST = 200
COMMITS = "SELECT sum(xact_commit)::bigint FROM pg_stat_database"


def _replica_commits(stack) -> int:
    return sum(int(node.fetchval(COMMITS)) for node in stack.replicas)


def test_reads_are_served_by_replicas_and_writes_by_the_primary(stack):
    replicas = [service_node(stack, node) for node in stack.replicas]
    primary = service_node(stack, stack.primary)
    commits_before = _replica_commits(stack)
    reads = read_burst(stack, BURST)
    on_replicas = sum(reads.get(name, 0) for name in replicas)
    assert on_replicas >= 0.9 * BURST and reads.get(primary, 0) < 0.2 * BURST, \
        f"{BURST} uncached reads were served {reads} (node: reads); the replicas should take them all"
    # The replicas' own books: PostgreSQL counts the transactions it ran (statistics reach
    # pg_stat_database within a few seconds of a backend going idle).
    wait_until(f"pg_stat_database on the replicas counts the {BURST} reads (commits since the burst)",
               lambda: _replica_commits(stack) - commits_before, lambda grown: grown >= 0.9 * BURST)

    metrics = stack.metrics()
    writes_before = {n: metrics.value("db_queries_total", node=n, kind="write") for n in [primary, *replicas]}
    for _ in range(10):
        write_item(stack, fresh_write_id(), name="scaling-suite routing")
    metrics = stack.metrics()
    writes = {n: metrics.value("db_queries_total", node=n, kind="write") - writes_before[n]
              for n in writes_before}
    assert writes[primary] >= 10 and not any(writes[n] for n in replicas), \
        f"10 writes were run {writes} (node: writes); the primary should run them all"


def test_paused_replica_leaves_the_read_set_and_returns_after_resume(stack):
    replica = stack.replicas[-1]
    name = service_node(stack, replica)
    admin, _ = stack.find_admin()     # the routing table is looked at when there is one
    pause_replay(replica)
    try:
        reads = wait_until(f"reads move away from {name} once its replay is paused",
                           lambda: read_burst(stack, 50), lambda r: r.get(name, 0) == 0)
        assert sum(reads.values()) >= 50, f"the burst's reads went nowhere: {reads}"
        if admin is not None:
            routing = admin.state()["routing"]
            assert name not in routing["reads"] and routing["replicas"][name]["healthy"] is False, \
                f"/admin/state still routes reads to paused {name}: {routing}"
    finally:
        resume_replay(replica)
    wait_until(f"reads return to {name} after replay resumes",
               lambda: read_burst(stack, 50), lambda r: r.get(name, 0) > 0)


def test_replica_lag_grows_while_replay_is_paused_and_reads_move_away(stack):
    primary, replica = stack.primary, stack.replicas[-1]
    name = service_node(stack, replica)
    pause_replay(replica)
    try:
        before = lag_bytes(primary, replica)
        for _ in range(20):
            write_item(stack, fresh_write_id(), name="scaling-suite lag " + "x" * 80)
        grown = lag_bytes(primary, replica)
        assert grown > before and grown > 0, \
            f"20 writes on the primary while {name} replays nothing: lag {before} -> {grown} bytes"
        reads = wait_until(f"reads move away from {name} while it lags {grown} bytes",
                           lambda: read_burst(stack, 50), lambda r: r.get(name, 0) == 0)
        assert sum(reads.values()) >= 50, f"the burst's reads went nowhere: {reads}"
    finally:
        resume_replay(replica)
    wait_until(f"{name} catches up after replay resumes (lag bytes)",
               lambda: lag_bytes(primary, replica), lambda lag: lag < grown)


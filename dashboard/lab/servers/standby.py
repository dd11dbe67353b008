"""Rebuild a stopped former primary as a standby of the new one.

After a failover the old primary's data dir has forked off the new timeline: it may
hold WAL the new primary never received. pg_rewind winds it back to the fork point,
copying only what changed (seconds, whatever the database size); when it cannot (the
new primary recycled the WAL it needs, no common history), a fresh pg_basebackup
copies everything. Either way the node is then set up as a standby of the new primary
on its own port and data dir, so the DSNs that name it by port stay right.

Separate from `postgres` because it is the one place that edits a data dir behind
the server's back, and it only ever runs while that server is down.
"""

from __future__ import annotations

import os
import pwd
import shutil
import time
from pathlib import Path

from dashboard.lab.servers.postgres import PG_USER, PostgresCluster, _conf_value, socket_dir
from dashboard.lab.servers.process import Process, ServerError, require_binary

REWIND = "pg_rewind"
BASEBACKUP = "pg_basebackup"
REWIND_TIMEOUT = 60.0
ORPHAN_TIMEOUT = 10.0


def processes_in(datadir: Path) -> list[int]:
    """PIDs working in `datadir`: a postmaster and its backends all chdir there, so after a
    SIGKILL of the postmaster this finds the children still winding down."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd") == str(datadir):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_stopped(datadir: Path, timeout: float = ORPHAN_TIMEOUT) -> None:
    """Wait until no process works in `datadir` (they exit once they notice their
    postmaster died); raise ServerError if some still do at the deadline."""
    deadline = time.monotonic() + timeout
    while processes_in(datadir):
        if time.monotonic() > deadline:
            raise ServerError(f"processes {processes_in(datadir)} still use {datadir}; stop the node first")
        time.sleep(0.05)


def rebuild(cluster: PostgresCluster, name: str, datadir: Path, port: int, source: Process) -> str:
    """Make the stopped node `name` a standby of `source` (not started); return the method
    used: pg_rewind, or pg_basebackup when the rewind failed."""
    wait_stopped(datadir)
    # A promoted node writes its new timeline into pg_control only at its first checkpoint,
    # which after a promotion is a spread one (minutes); until then pg_rewind reads "same
    # timeline, no rewind required" and the node never streams. So: a checkpoint now.
    cluster.psql(source, "CHECKPOINT")
    try:
        _rewind(cluster, name, datadir, source)
        method = REWIND
    except ServerError:
        _clone(cluster, name, datadir, source)
        method = BASEBACKUP
    _configure_standby(datadir, port, cluster.conninfo(source, application_name=name))
    return method


def _source_server(cluster: PostgresCluster, source: Process) -> str:
    return f"host={socket_dir(cluster.datadir(source))} port={source.port} user={PG_USER} dbname=postgres"


def _rewind(cluster: PostgresCluster, name: str, datadir: Path, source: Process) -> None:
    # A crashed target is first recovered in single-user mode by pg_rewind itself.
    argv = [require_binary("pg_rewind", pg=True), "--target-pgdata", str(datadir),
            "--source-server", _source_server(cluster, source), "--no-sync"]
    cluster.run_as_pg({f"rewind-{name}": argv}, timeout=REWIND_TIMEOUT)


def _clone(cluster: PostgresCluster, name: str, datadir: Path, source: Process) -> None:
    shutil.rmtree(datadir, ignore_errors=True)
    argv = [require_binary("pg_basebackup", pg=True), "-D", str(datadir),
            "-d", cluster.conninfo(source, application_name=name),
            "-X", "stream", "-c", "fast", "--no-sync", "--no-manifest"]
    cluster.run_as_pg({f"basebackup-{name}": argv}, timeout=REWIND_TIMEOUT)


def _configure_standby(datadir: Path, port: int, conninfo: str) -> None:
    """standby.signal, and a postgresql.auto.conf of its own: both tools copy the source's,
    which names the source's port and socket dir (and its synchronous standby setting)."""
    _write_as_pg(datadir / "standby.signal", "")
    _write_as_pg(datadir / "postgresql.auto.conf",
                 "# Written by dashboard.lab.servers.standby: a standby of the node in primary_conninfo.\n"
                 f"port = {port}\n"
                 f"unix_socket_directories = {_conf_value(str(socket_dir(datadir)))}\n"
                 f"primary_conninfo = {_conf_value(conninfo)}\n")


def _write_as_pg(path: Path, text: str) -> None:
    entry = pwd.getpwnam(PG_USER)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chown(path, entry.pw_uid, entry.pw_gid)

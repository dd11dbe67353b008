"""A PostgreSQL primary with streaming hot-standby replicas, for tests and the lab.

The PostgreSQL tools refuse to run as root, so they run as the `postgres` OS user
with data dirs it can reach (a short path under /tmp when base_dir is not).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from dashboard.lab.servers.process import (
    LOCALHOST,
    START_TIMEOUT,
    Process,
    ServerError,
    _clean_env,
    _one_line,
    _start_failed,
    _wait_until,
    find_pg_bin,
    free_port,
    log_tail,
    require_binary,
    spawn,
    stop_all,
)

PG_USER = "postgres"
# Unix socket paths are limited to 108 bytes including ".s.PGSQL.NNNNN".
MAX_SOCKET_DIR_LEN = 90


def _pg_can_reach(path: Path) -> bool:
    """True if the postgres OS user can traverse every ancestor of path."""
    entry = pwd.getpwnam(PG_USER)
    groups = set(os.getgrouplist(PG_USER, entry.pw_gid))
    for directory in [path, *path.parents]:
        if not directory.exists():
            continue
        st = directory.stat()
        if st.st_uid == entry.pw_uid:
            bit = 0o100
        elif st.st_gid in groups:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return False
    return True


def socket_dir(datadir: Path) -> Path:
    """Where a node's unix socket lives: the data root all nodes share, told apart by port.

    Not the data dir: pg_rewind copies every file of the source's data dir, and a socket
    file cannot be read."""
    return datadir.parent


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _conf_value(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


class PostgresCluster:
    """A PostgreSQL primary plus streaming hot-standby replicas on 127.0.0.1.

    The superuser `postgres` may connect without password only over the unix
    socket (in the data root, see socket_dir); TCP clients (the role `monitor`, member of
    pg_monitor) must use scram-sha-256 when a password is given.
    """

    def __init__(self, base_dir: Path, replicas: int = 1, *,
                 replica_names: list[str] | None = None, password: str | None = None,
                 port: int | None = None, synchronous_standby_names: str | None = None):
        if replica_names is not None and replicas not in (1, len(replica_names)):
            raise ValueError("replicas and replica_names disagree")
        names = list(replica_names) if replica_names is not None else [
            f"replica{i}" for i in range(1, replicas + 1)]
        for name in names:
            if not re.fullmatch(r"[A-Za-z0-9_-]+", name) or name == "primary":
                raise ValueError(f"invalid replica name {name!r}")
        if len(set(names)) != len(names):
            raise ValueError("replica names must be unique")
        self.base_dir = Path(base_dir).resolve()
        self.replica_names = names
        self.password = password
        self._requested_port = port
        self._sync_names = synchronous_standby_names
        self.primary: Process | None = None
        self.replicas: list[Process] = []
        self._datadirs: dict[str, Path] = {}
        # Every postmaster as soon as it is spawned, so an interrupted start can stop it.
        self._spawned: list[Process] = []
        self._scratch: Path | None = None  # fallback data root we must delete
        self._psql_bin = find_pg_bin("psql") or "psql"

    # -- layout -------------------------------------------------------------

    def _data_root(self) -> Path:
        """Directory for data dirs: base_dir if postgres can reach it, else /tmp."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        root = self.base_dir / "pg"
        # pytest's tmp_path sits under a 0700 root-owned dir, and sockets need short paths.
        if _pg_can_reach(self.base_dir) and len(str(root)) + 12 <= MAX_SOCKET_DIR_LEN:
            root.mkdir(exist_ok=True)
        else:
            root = Path(tempfile.mkdtemp(prefix="lab-pg-"))
            self._scratch = root
            link = self.base_dir / "pg"
            if not link.exists() and not link.is_symlink():
                link.symlink_to(root)
        entry = pwd.getpwnam(PG_USER)
        os.chown(root, entry.pw_uid, entry.pw_gid)
        os.chmod(root, 0o700)
        return root

    def run_as_pg(self, jobs: dict[str, list[str]], timeout: float = START_TIMEOUT) -> None:
        """Run PostgreSQL tools concurrently as the postgres user (they refuse root).

        jobs maps a log name to argv; all must exit 0 before the deadline.
        """
        procs = {what: spawn(what, argv, 0, self._log(what), user=PG_USER, cwd=Path("/"))
                 for what, argv in jobs.items()}
        deadline = time.monotonic() + timeout
        try:
            for what, proc in procs.items():
                if not proc.wait_gone(deadline - time.monotonic()):
                    raise ServerError(f"{what} timed out after {timeout:.0f}s: {log_tail(proc.log_path)}")
                if proc.popen.returncode != 0:
                    raise ServerError(f"{what} failed (exit {proc.popen.returncode}): "
                                      f"{log_tail(proc.log_path)}")
        finally:
            stop_all(list(procs.values()), timeout=5.0)

    def _log(self, name: str) -> Path:
        return self.base_dir / f"{name}.log"

    # -- start ---------------------------------------------------------------

    def start(self) -> "PostgresCluster":
        try:
            self._start()
        except BaseException:
            # Also on KeyboardInterrupt: never leave half a cluster running.
            self.stop()
            raise
        return self

    def _start(self) -> None:
        binaries = {n: require_binary(n, pg=True) for n in ("initdb", "postgres", "pg_basebackup", "psql")}
        root = self._data_root()
        self.primary = self._start_primary(root, binaries)
        self._create_monitor_role()
        # Base backups run in parallel: each mostly waits on its own checkpoint and copy.
        self.run_as_pg({f"basebackup-{name}": self._basebackup_argv(root / name, name, binaries)
                         for name in self.replica_names})
        for name in self.replica_names:
            self.replicas.append(self._start_replica(root / name, name, binaries))
        self._wait_streaming(time.monotonic() + START_TIMEOUT)

    def _start_primary(self, root: Path, binaries: dict[str, str]) -> Process:
        datadir = root / "primary"
        self.run_as_pg({"initdb": [binaries["initdb"], "-D", str(datadir), "-U", PG_USER,
                                    "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
                                    "--auth-local=trust", "--auth-host=reject"]})
        port = self._requested_port or free_port()
        with open(datadir / "postgresql.conf", "a") as conf:
            conf.write(self._primary_settings(datadir, port))
        (datadir / "pg_hba.conf").write_text(self._hba())
        return self._start_postgres("primary", datadir, port, binaries)

    def _primary_settings(self, datadir: Path, port: int) -> str:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": _conf_value(str(socket_dir(datadir))),
            "wal_level": "replica",
            "max_wal_senders": str(max(10, 2 * len(self.replica_names) + 4)),
            "max_replication_slots": "10",
            "hot_standby": "on",
            "wal_keep_size": "'64MB'",
            "shared_buffers": "'16MB'",
            "max_connections": "50",
            "fsync": "off",
            "synchronous_commit": "off",
            "password_encryption": "'scram-sha-256'",
            "logging_collector": "off",
            # Replicas report status often so pg_stat_replication fills quickly.
            "wal_receiver_status_interval": "'1s'",
            # pg_rewind needs it to rebuild a crashed former primary as a standby.
            "wal_log_hints": "on",
            # A standby whose primary died retries streaming after this; PostgreSQL 15 also
            # acts on a promote request only then (5 s by default: a 5 s failover).
            "wal_retrieve_retry_interval": "'100ms'",
        }
        if self._sync_names:
            # Only commits that ask for it (SET LOCAL synchronous_commit) wait for a standby:
            # synchronous_commit stays off for everything else.
            settings["synchronous_standby_names"] = _conf_value(self._sync_names)
        return "\n# added by dashboard.lab.servers\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())

    def _hba(self) -> str:
        tcp_auth = "scram-sha-256" if self.password is not None else "trust"
        return (
            "# generated by dashboard.lab.servers\n"
            f"local   all          {PG_USER}   trust\n"
            f"local   replication  {PG_USER}   trust\n"
            f"host    all          all        127.0.0.1/32   {tcp_auth}\n"
        )

    def _start_postgres(self, name: str, datadir: Path, port: int, binaries: dict[str, str]) -> Process:
        self._datadirs[name] = datadir
        # Popen (not pg_ctl) so the postmaster is our child and its PID is known.
        # SIGINT = "fast" shutdown: SIGTERM would wait for every client to leave.
        proc = spawn(f"postgres-{name}", [binaries["postgres"], "-D", str(datadir)], port,
                     self._log(name), user=PG_USER, cwd=datadir, stop_signal=signal.SIGINT)
        self._spawned.append(proc)
        deadline = time.monotonic() + START_TIMEOUT
        if not _wait_until(lambda: self._accepts(datadir, port), deadline, proc, interval=0.05):
            state = "exited" if not proc.alive() else "did not accept connections"
            raise _start_failed(proc, f"postgres {name} on port {port} {state}")
        return proc

    def start_node(self, name: str, datadir: Path, port: int) -> Process:
        """Start the postmaster of an existing data dir (a restart, a rebuilt standby) on
        `port` and wait until it accepts connections; raise ServerError if it does not."""
        return self._start_postgres(name, datadir, port, {"postgres": require_binary("postgres", pg=True)})

    def accepts(self, node: Process) -> bool:
        return self._accepts(self.datadir(node), node.port)

    def _accepts(self, datadir: Path, port: int) -> bool:
        # A socket file alone is not enough: the server may still be recovering.
        if not (socket_dir(datadir) / f".s.PGSQL.{port}").exists():
            return False
        result = self._psql_raw(datadir, port, "select 1", timeout=5.0)
        return result.returncode == 0

    def _create_monitor_role(self) -> None:
        password = f" PASSWORD {_sql_literal(self.password)}" if self.password is not None else ""
        # Sent on stdin by psql(): the password must not appear in any argv.
        self.psql(self.primary, f"CREATE ROLE monitor LOGIN{password};\nGRANT pg_monitor TO monitor;\n")

    def _replica_conninfo(self, name: str) -> str:
        return self.conninfo(self.primary, application_name=name)

    def conninfo(self, upstream: Process, application_name: str) -> str:
        """primary_conninfo for a standby of `upstream`: over its unix socket, where
        `postgres` is trusted for replication."""
        return (f"host={socket_dir(self.datadir(upstream))} port={upstream.port} user={PG_USER} "
                f"application_name={application_name}")

    def _basebackup_argv(self, datadir: Path, name: str, binaries: dict[str, str]) -> list[str]:
        return [binaries["pg_basebackup"], "-D", str(datadir), "-d", self._replica_conninfo(name),
                "-X", "stream", "-c", "fast", "-R", "--no-sync", "--no-manifest"]

    def _start_replica(self, datadir: Path, name: str, binaries: dict[str, str]) -> Process:
        port = free_port()
        # postgresql.auto.conf is read last, so these override the primary's copy.
        with open(datadir / "postgresql.auto.conf", "a") as conf:
            conf.write(f"port = {port}\n"
                       f"unix_socket_directories = {_conf_value(str(socket_dir(datadir)))}\n"
                       f"primary_conninfo = {_conf_value(self._replica_conninfo(name))}\n")
        return self._start_postgres(name, datadir, port, binaries)

    def streaming_replicas(self) -> dict[str, str]:
        """application_name -> state, as the primary sees its walsenders."""
        out = self.psql(self.primary, "select application_name, state from pg_stat_replication")
        return dict(line.split("|", 1) for line in out.splitlines() if "|" in line)

    def _wait_streaming(self, deadline: float) -> None:
        wanted = set(self.replica_names)

        def all_streaming() -> bool:
            states = self.streaming_replicas()
            return all(states.get(n) == "streaming" for n in wanted)

        if not _wait_until(all_streaming, deadline, interval=0.05):
            states = self.streaming_replicas()
            missing = sorted(n for n in wanted if states.get(n) != "streaming") or sorted(wanted)
            log = self._log(missing[0])
            raise ServerError(f"replicas not streaming after {START_TIMEOUT:.0f}s: {missing} "
                              f"(seen: {states}); {missing[0]} log: {log_tail(log)}")

    # -- use -----------------------------------------------------------------

    @classmethod
    def attach(cls, base_dir: Path, nodes: dict[str, tuple[Process, Path]]) -> "PostgresCluster":
        """The cluster of a running lab, from what it recorded: node name -> (postmaster,
        data dir). Roles may have changed since `start` (a promotion), so `primary` and
        `replicas` stay empty: callers name nodes. `stop()` stops only what it started."""
        cluster = cls(base_dir)
        cluster.replica_names = [name for name in nodes if name != "primary"]
        cluster._datadirs = {name: Path(datadir) for name, (_, datadir) in nodes.items()}
        return cluster

    @property
    def nodes(self) -> list[Process]:
        return [p for p in [self.primary, *self.replicas] if p is not None]

    @property
    def processes(self) -> list[Process]:
        """Every postmaster spawned so far, also those of a start that failed halfway."""
        return list(self._spawned)

    @property
    def scratch_dir(self) -> Path | None:
        """The /tmp data root used when base_dir is out of the postgres user's reach."""
        return self._scratch

    def dsn(self, node: Process, user: str = "monitor", db: str = "postgres") -> str:
        """TCP connection URL without password (pass it via PGPASSWORD or with_password)."""
        return f"postgresql://{user}@{LOCALHOST}:{node.port}/{db}"

    def datadir(self, node: Process) -> Path:
        return self._datadirs[node.name.removeprefix("postgres-")]

    def _psql_raw(self, datadir: Path, port: int, sql: str, timeout: float) -> subprocess.CompletedProcess:
        argv = [self._psql_bin, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", str(socket_dir(datadir)), "-p", str(port), "-U", PG_USER, "-d", "postgres", "-f", "-"]
        try:
            return subprocess.run(argv, input=sql, capture_output=True, text=True,
                                  timeout=timeout, env=_clean_env(), cwd="/")
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(argv, -1, "", f"psql timed out after {timeout}s")

    def psql(self, node: Process, sql: str, timeout: float = 30.0) -> str:
        """Run SQL as superuser over node's unix socket; return psql's stdout."""
        result = self._psql_raw(self.datadir(node), node.port, sql, timeout)
        if result.returncode != 0:
            raise ServerError(f"psql on {node.name} failed: {_one_line(result.stderr) or 'no stderr'}")
        return result.stdout

    # -- stop ----------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every postmaster by PID (all at once), then drop any scratch dir."""
        stop_all(self._spawned, timeout)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            link = self.base_dir / "pg"
            if link.is_symlink():
                link.unlink()
            self._scratch = None

    def __enter__(self) -> "PostgresCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

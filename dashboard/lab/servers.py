"""Start and stop real local servers on 127.0.0.1 for tests and the local lab.

This module owns the lifecycle of throw-away server processes: a PostgreSQL
primary with streaming replicas, Redis, Prometheus and HTTP exporters.  Each
server gets a fresh free port, lives under a caller-supplied directory, logs to
a file there, runs in its own session and is stopped by its PID -- never through
system services, never on a default port.  Secrets travel through files with
mode 0600, stdin or environment variables, never through argv (argv is world
readable via /proc/<pid>/cmdline).

Only the standard library is used so the lab can run anywhere the Debian
packages (postgresql, redis-server, prometheus, prometheus-postgres-exporter,
prometheus-redis-exporter) are installed.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ExporterProcess",
    "PostgresCluster",
    "Process",
    "PrometheusServer",
    "RedisServer",
    "ServerError",
    "find_binary",
    "find_pg_bin",
    "free_port",
    "redis_command",
    "require_binary",
    "start_postgres_exporter",
    "start_redis_exporter",
    "stop_all",
    "with_password",
]

START_TIMEOUT = 30.0
LOCALHOST = "127.0.0.1"
# Well-known ports a system service may own; a lab server must never take them.
DEFAULT_PORTS = frozenset({5432, 6379, 9090, 9100, 9121, 9187})
# Debian package that ships each binary, for actionable error messages.
PACKAGES = {
    "initdb": "postgresql",
    "pg_ctl": "postgresql",
    "postgres": "postgresql",
    "pg_basebackup": "postgresql",
    "pg_isready": "postgresql",
    "psql": "postgresql",
    "redis-server": "redis-server",
    "prometheus": "prometheus",
    "prometheus-postgres-exporter": "prometheus-postgres-exporter",
    "prometheus-redis-exporter": "prometheus-redis-exporter",
}
PG_USER = "postgres"
# Unix socket paths are limited to 108 bytes including ".s.PGSQL.NNNNN".
MAX_SOCKET_DIR_LEN = 90


class ServerError(Exception):
    """A lab server could not be found, started or queried (one-line message)."""


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOCALHOST, 0))
            port = sock.getsockname()[1]
        if port not in DEFAULT_PORTS:
            return port


def port_in_use(port: int) -> bool:
    """True if something listens on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOCALHOST, port)) == 0


def _version_key(path: Path) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in path.name.split("."))


def find_pg_bin(name: str) -> str | None:
    """Locate a PostgreSQL binary, preferring the newest server version."""
    root = Path("/usr/lib/postgresql")
    versions = sorted(root.glob("*/bin"), key=lambda p: _version_key(p.parent), reverse=True)
    for bindir in versions:
        candidate = bindir / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def find_binary(name: str) -> str | None:
    """Locate a binary on PATH, then in /usr/sbin and /usr/bin."""
    found = shutil.which(name)
    if found:
        return found
    for directory in ("/usr/sbin", "/usr/bin"):
        candidate = Path(directory) / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def require_binary(name: str, *, pg: bool = False, package: str | None = None) -> str:
    """Like find_binary/find_pg_bin but raise a ServerError naming the package."""
    path = find_pg_bin(name) if pg else find_binary(name)
    if path is None:
        package = package or PACKAGES.get(name, name)
        raise ServerError(f"{name} not found; install the Debian package '{package}'")
    return path


def _one_line(text: str) -> str:
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


_ERROR_WORDS = re.compile(r"error|fatal|fail|panic|in use|denied|abort|cannot|could not", re.I)


def log_tail(path: Path, lines: int = 3) -> str:
    """The telling end of a log, as one line for an error message.

    Servers often end with noise ("database system is shut down"), so the last
    error-looking lines win over the plain last lines.
    """
    try:
        content = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    recent = [line.strip() for line in content.splitlines() if line.strip()][-20:]
    errors = [line for line in recent if _ERROR_WORDS.search(line)]
    return " | ".join((errors or recent)[-lines:]) or "(empty log)"


def with_password(dsn: str, password: str) -> str:
    """Insert a password into a postgresql:// or redis:// URL."""
    parts = urllib.parse.urlsplit(dsn)
    user = parts.username or ""
    netloc = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}@"
    netloc += parts.hostname or LOCALHOST
    if parts.port:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _write_secret_file(path: Path, text: str) -> None:
    # O_CREAT with 0600 so the secret is never readable, even for an instant.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(text)


def _wait_until(check, deadline: float, process: "Process | None" = None, interval: float = 0.05) -> bool:
    """Poll check() until it is truthy; give up at deadline or if process dies."""
    while time.monotonic() < deadline:
        if check():
            return True
        if process is not None and not process.alive():
            return False
        time.sleep(interval)
    return bool(check())


def _http_status(url: str, timeout: float = 1.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------


def _pid_running(pid: int) -> bool:
    """True if pid exists and is not a zombie (zombies accept kill(0))."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@dataclass
class Process:
    """One started server, identified and stopped by its PID."""

    name: str
    pid: int
    port: int
    log_path: Path
    stop_signal: int = signal.SIGTERM
    popen: subprocess.Popen | None = field(default=None, repr=False, compare=False)

    def alive(self) -> bool:
        # Our own children must be reaped through Popen, else they linger as zombies.
        if self.popen is not None:
            return self.popen.poll() is None
        return _pid_running(self.pid)

    def _signal(self, sig: int) -> None:
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def request_stop(self) -> None:
        """Send the stop signal without waiting (lets callers stop many at once)."""
        if not self.alive():
            return
        self._signal(self.stop_signal)
        # A paused (SIGSTOPped) process would never act on the stop signal.
        self._signal(signal.SIGCONT)

    def wait_gone(self, timeout: float) -> bool:
        if self.popen is not None:
            try:
                self.popen.wait(timeout=max(timeout, 0))
                return True
            except subprocess.TimeoutExpired:
                return False
        return _wait_until(lambda: not self.alive(), time.monotonic() + timeout)

    def kill(self) -> None:
        if self.alive():
            self._signal(signal.SIGKILL)
            self.wait_gone(5.0)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully, SIGKILL after timeout. Safe to call repeatedly."""
        self.request_stop()
        if not self.wait_gone(timeout):
            self.kill()

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)


def stop_all(processes: list[Process], timeout: float = 10.0) -> None:
    """Stop several processes in parallel: signal all first, then wait."""
    for proc in processes:
        proc.request_stop()
    deadline = time.monotonic() + timeout
    for proc in processes:
        if not proc.wait_gone(deadline - time.monotonic()):
            proc.kill()


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # Inherited PG*/REDIS* variables would silently redirect clients and servers.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "REDIS", "DATA_SOURCE"))}
    env.update({"LC_ALL": "C", "LANG": "C"})
    env.update(extra or {})
    return env


def spawn(
    name: str,
    argv: list[str],
    port: int,
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
    stop_signal: int = signal.SIGTERM,
) -> Process:
    """Start argv in its own session with output appended to log_path."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    user_kwargs = {}
    if user is not None:
        entry = pwd.getpwnam(user)
        # extra_groups=[] drops root's supplementary groups too.
        user_kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    with open(log_path, "ab") as log:
        try:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_clean_env(env),
                cwd=cwd,
                # Own session: a Ctrl-C in the parent's terminal must not reach it.
                start_new_session=True,
                **user_kwargs,
            )
        except OSError as exc:
            raise ServerError(f"{name}: cannot execute {argv[0]}: {exc}") from exc
    return Process(name=name, pid=popen.pid, port=port, log_path=log_path,
                   stop_signal=stop_signal, popen=popen)


def _start_failed(proc: Process, what: str) -> ServerError:
    """Stop a half-started process and build the error describing why."""
    proc.stop(timeout=5.0)
    return ServerError(f"{what}: {log_tail(proc.log_path)}")


def wait_http(proc: Process, url: str, *, ok=lambda status: status is not None,
              timeout: float = START_TIMEOUT) -> None:
    """Wait until url answers acceptably; on failure stop proc and raise."""
    deadline = time.monotonic() + timeout
    if not _wait_until(lambda: ok(_http_status(url)), deadline, proc, interval=0.1):
        state = "exited" if not proc.alive() else f"not ready after {timeout:.0f}s"
        raise _start_failed(proc, f"{proc.name} on port {proc.port} {state}")


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------


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


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _conf_value(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


class PostgresCluster:
    """A PostgreSQL primary plus streaming hot-standby replicas on 127.0.0.1.

    The superuser `postgres` may connect without password only over the unix
    socket in each data dir; TCP clients (the role `monitor`, member of
    pg_monitor) must use scram-sha-256 when a password is given.
    """

    def __init__(self, base_dir: Path, replicas: int = 1, *,
                 replica_names: list[str] | None = None, password: str | None = None,
                 port: int | None = None):
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

    def _run_as_pg(self, jobs: dict[str, list[str]], timeout: float = START_TIMEOUT) -> None:
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
        self._run_as_pg({f"basebackup-{name}": self._basebackup_argv(root / name, name, binaries)
                         for name in self.replica_names})
        for name in self.replica_names:
            self.replicas.append(self._start_replica(root / name, name, binaries))
        self._wait_streaming(time.monotonic() + START_TIMEOUT)

    def _start_primary(self, root: Path, binaries: dict[str, str]) -> Process:
        datadir = root / "primary"
        self._run_as_pg({"initdb": [binaries["initdb"], "-D", str(datadir), "-U", PG_USER,
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
            "unix_socket_directories": _conf_value(str(datadir)),
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
        }
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

    def _accepts(self, datadir: Path, port: int) -> bool:
        # A socket file alone is not enough: the server may still be recovering.
        if not (datadir / f".s.PGSQL.{port}").exists():
            return False
        result = self._psql_raw(datadir, port, "select 1", timeout=5.0)
        return result.returncode == 0

    def _create_monitor_role(self) -> None:
        password = f" PASSWORD {_sql_literal(self.password)}" if self.password is not None else ""
        # Sent on stdin by psql(): the password must not appear in any argv.
        self.psql(self.primary, f"CREATE ROLE monitor LOGIN{password};\nGRANT pg_monitor TO monitor;\n")

    def _replica_conninfo(self, name: str) -> str:
        # Over the primary's unix socket: `postgres` is trusted there for replication.
        return (f"host={self._datadirs['primary']} port={self.primary.port} user={PG_USER} "
                f"application_name={name}")

    def _basebackup_argv(self, datadir: Path, name: str, binaries: dict[str, str]) -> list[str]:
        return [binaries["pg_basebackup"], "-D", str(datadir), "-d", self._replica_conninfo(name),
                "-X", "stream", "-c", "fast", "-R", "--no-sync", "--no-manifest"]

    def _start_replica(self, datadir: Path, name: str, binaries: dict[str, str]) -> Process:
        port = free_port()
        # postgresql.auto.conf is read last, so these override the primary's copy.
        with open(datadir / "postgresql.auto.conf", "a") as conf:
            conf.write(f"port = {port}\n"
                       f"unix_socket_directories = {_conf_value(str(datadir))}\n"
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
                "-h", str(datadir), "-p", str(port), "-U", PG_USER, "-d", "postgres", "-f", "-"]
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


# --------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------


def _resp(*args: str) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def redis_command(port: int, *args: str, password: str | None = None, timeout: float = 1.0) -> str:
    """Send one command over a raw socket (optionally after AUTH); return the first reply line."""
    with socket.create_connection((LOCALHOST, port), timeout=timeout) as sock:
        reader = sock.makefile("rb")
        if password is not None:
            sock.sendall(_resp("AUTH", password))
            reply = reader.readline().decode(errors="replace").strip()
            if not reply.startswith("+"):
                return reply
        sock.sendall(_resp(*args))
        return reader.readline().decode(errors="replace").strip()


def _redis_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class RedisServer:
    """A throw-away redis-server without persistence, optionally password-protected."""

    def __init__(self, base_dir: Path, password: str | None = None, *, port: int | None = None):
        self.base_dir = Path(base_dir).resolve()
        self.password = password
        self.port = port or 0
        self.process: Process | None = None

    def _write_config(self) -> Path:
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            'save ""',
            "appendonly no",
            "daemonize no",
            'logfile ""',
            f"dir {_redis_quote(str(self.base_dir))}",
        ]
        if self.password is not None:
            lines.append(f"requirepass {_redis_quote(self.password)}")
        path = self.base_dir / "redis.conf"
        # Config file, not argv: the password must not show in /proc/<pid>/cmdline.
        _write_secret_file(path, "\n".join(lines) + "\n")
        return path

    def start(self) -> "RedisServer":
        binary = require_binary("redis-server")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        config = self._write_config()
        self.process = spawn("redis-server", [binary, str(config)], self.port,
                             self.base_dir / "redis.log", cwd=self.base_dir)
        deadline = time.monotonic() + START_TIMEOUT
        if not _wait_until(self._pong, deadline, self.process):
            state = "exited" if not self.process.alive() else "did not answer PING"
            raise _start_failed(self.process, f"redis-server on port {self.port} {state}")
        return self

    def _pong(self) -> bool:
        try:
            return redis_command(self.port, "PING", password=self.password, timeout=0.5) == "+PONG"
        except OSError:
            return False

    def url(self) -> str:
        return f"redis://{LOCALHOST}:{self.port}/0"

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            self.process.stop(timeout)

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------
# Prometheus and exporters
# --------------------------------------------------------------------------


class PrometheusServer:
    """A Prometheus scraping fixed targets: job name -> ["127.0.0.1:port", ...]."""

    def __init__(self, base_dir: Path, targets: dict[str, list[str]], scrape_interval: str = "1s",
                 *, port: int | None = None):
        self.base_dir = Path(base_dir).resolve()
        self.targets = targets
        self.scrape_interval = scrape_interval
        self.port = port or 0
        self.process: Process | None = None

    def _write_config(self) -> Path:
        # JSON is valid YAML, so no YAML library is needed.
        config = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
                # Must not exceed the interval; Prometheus' 10s default would.
                "scrape_timeout": self.scrape_interval,
            },
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": list(addrs)}]}
                for job, addrs in self.targets.items()
            ],
        }
        path = self.base_dir / "prometheus.yml"
        path.write_text(json.dumps(config, indent=2) + "\n")
        return path

    def start(self) -> "PrometheusServer":
        binary = require_binary("prometheus")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        argv = [binary, f"--config.file={self._write_config()}",
                f"--storage.tsdb.path={self.base_dir / 'prometheus-data'}",
                f"--web.listen-address={LOCALHOST}:{self.port}"]
        self.process = spawn("prometheus", argv, self.port, self.base_dir / "prometheus.log",
                             cwd=self.base_dir)
        wait_http(self.process, f"{self.url()}/-/ready", ok=lambda status: status == 200)
        return self

    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def query(self, promql: str, timeout: float = 5.0) -> list[dict]:
        """Instant query via the HTTP API; returns data.result."""
        url = f"{self.url()}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = json.load(resp)
        if body.get("status") != "success":
            raise ServerError(f"prometheus query {promql!r} failed: {body.get('error')}")
        return body["data"]["result"]

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            self.process.stop(timeout)

    def __enter__(self) -> "PrometheusServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class ExporterProcess:
    """Any binary serving HTTP on a port; "{port}" in args is replaced by the port.

    Secrets belong in env (only root and the owner can read /proc/<pid>/environ).
    """

    def __init__(self, name: str, binary: str, base_dir: Path, args: list[str],
                 env: dict[str, str] | None = None, *, port: int | None = None,
                 ready_path: str = "/"):
        self.name = name
        self.binary = binary
        self.base_dir = Path(base_dir).resolve()
        self.args = args
        self.env = env or {}
        self.port = port or 0
        self.ready_path = ready_path
        self.process: Process | None = None

    def start(self) -> Process:
        binary = require_binary(self.binary)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        argv = [binary, *(arg.replace("{port}", str(self.port)) for arg in self.args)]
        self.process = spawn(self.name, argv, self.port, self.base_dir / f"{self.name}.log",
                             env=self.env, cwd=self.base_dir)
        wait_http(self.process, f"{self.url()}{self.ready_path}")
        return self.process

    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            self.process.stop(timeout)


def start_postgres_exporter(base_dir: Path, dsn_with_password: str, *, port: int | None = None) -> Process:
    """prometheus-postgres-exporter; the DSN (with its password) goes through env."""
    if "sslmode=" not in dsn_with_password:
        # Lab servers have no TLS; lib/pq would otherwise insist on it.
        dsn_with_password += ("&" if "?" in dsn_with_password else "?") + "sslmode=disable"
    exporter = ExporterProcess(
        "postgres-exporter", "prometheus-postgres-exporter", base_dir,
        [f"--web.listen-address={LOCALHOST}:{{port}}"],
        env={"DATA_SOURCE_NAME": dsn_with_password}, port=port)
    return exporter.start()


def start_redis_exporter(base_dir: Path, redis_url: str, password: str | None = None,
                         *, port: int | None = None) -> Process:
    """prometheus-redis-exporter; the password goes through REDIS_PASSWORD, not argv."""
    env = {"REDIS_PASSWORD": password} if password is not None else {}
    exporter = ExporterProcess(
        "redis-exporter", "prometheus-redis-exporter", base_dir,
        [f"--web.listen-address={LOCALHOST}:{{port}}", f"--redis.addr={redis_url}"],
        env=env, port=port)
    return exporter.start()

"""Start, wait for and stop one server process; find the binaries it needs.

Every lab server is a `Process`: spawned in its own session with an allow-listed
environment, logging to a file, identified and stopped by its PID. The
server-specific modules build on these pieces, so the rules (fresh free port,
never a default port, errors as one line with the log's telling end) live once.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

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


class ServerError(Exception):
    """A lab server could not be found, started or queried (one-line message)."""


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


@dataclass(frozen=True)
class Launch:
    """How a process was started, so that it can be started again the same way (no secret:
    argv, cwd and these environment additions are all readable through /proc anyway)."""

    argv: tuple[str, ...]
    cwd: str | None = None
    user: str | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Process:
    """One started server, identified and stopped by its PID."""

    name: str
    pid: int
    port: int
    log_path: Path
    stop_signal: int = signal.SIGTERM
    popen: subprocess.Popen | None = field(default=None, repr=False, compare=False)
    launch: Launch | None = field(default=None, repr=False, compare=False)

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


class OneProcessServer:
    """A server that is one process (Redis, Prometheus, an exporter): stop by its PID,
    and `with Server(...) as server:` starts it and stops it."""

    process: Process | None = None

    def start(self):
        raise NotImplementedError

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            self.process.stop(timeout)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def stop_all(processes: list[Process], timeout: float = 10.0) -> None:
    """Stop several processes in parallel: signal all first, then wait."""
    for proc in processes:
        proc.request_stop()
    deadline = time.monotonic() + timeout
    for proc in processes:
        if not proc.wait_gone(deadline - time.monotonic()):
            proc.kill()


# What a lab process sees of ours: what a program needs to run, and the interpreter's path
# for the lab's own Python processes. Never a copy of the whole: an on-call shell holds
# cloud credentials and tokens (RELIABILITY.md case 35), and inherited PG*/REDIS*
# variables would silently redirect clients and servers. The product's allow-list
# (dashboard/suites/environment.py) is out of the lab's reach (it does not import the
# product), hence this small one; what a server needs beyond it (an exporter's DSN)
# comes as `extra`.
PASSED_THROUGH = frozenset({"PATH", "HOME", "USER", "LOGNAME", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV"})


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in PASSED_THROUGH}
    env.update({"LC_ALL": "C", "LANG": "C"})     # server messages the lab parses, in one language
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
    return Process(name=name, pid=popen.pid, port=port, log_path=log_path, stop_signal=stop_signal, popen=popen,
                   launch=Launch(tuple(argv), None if cwd is None else str(cwd), user, dict(env or {})))


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

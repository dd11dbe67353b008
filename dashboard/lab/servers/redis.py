"""A throw-away Redis server and a raw-socket client for one command at a time."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from dashboard.lab.servers.process import (
    LOCALHOST,
    OneProcessServer,
    START_TIMEOUT,
    Process,
    _start_failed,
    _wait_until,
    free_port,
    require_binary,
    spawn,
)


def _write_secret_file(path: Path, text: str) -> None:
    # O_CREAT with 0600 so the secret is never readable, even for an instant.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(text)


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


class RedisServer(OneProcessServer):
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

"""Prometheus exporters (and any binary serving HTTP on a port) for the lab servers."""

from __future__ import annotations

from pathlib import Path

from dashboard.lab.servers.process import (
    LOCALHOST,
    OneProcessServer,
    Process,
    free_port,
    require_binary,
    spawn,
    wait_http,
)


class ExporterProcess(OneProcessServer):
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

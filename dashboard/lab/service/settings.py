"""Settings of the lab's service processes, read from a private JSON file.

Secrets (database and Redis passwords, the admin token) live only in that file: argv
is world-readable through /proc/<pid>/cmdline, so a file the lab writes with mode
0600 is the one channel.  A file that others can read is refused rather than
trusted, as for `file:` secret references in the dashboard's own config.
"""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dashboard.redact import register_secret


MAX_BATCH_WINDOW_MS = 10_000


class SettingsError(Exception):
    """The settings file is missing, unreadable, too open or invalid (one-line message)."""


def read_private_json(path: str | Path) -> dict[str, Any]:
    """Load a JSON object from a file only its owner can read.

    Raises SettingsError when the file is missing, group/world-readable or not a
    JSON object.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise SettingsError(f"cannot read settings {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SettingsError(f"settings {path} is readable by others (mode {stat.S_IMODE(mode):o}); use 0600")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"settings {path} is not valid JSON: line {getattr(exc, 'lineno', '?')}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"settings {path} must hold a JSON object")
    return data


def _require(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise SettingsError(f"settings key {key!r} must be a {kind.__name__}")
    return value


@dataclass(frozen=True)
class ServiceSettings:
    """What the service needs to run; secrets are kept out of repr()."""

    port: int
    primary_dsn: str
    replicas: dict[str, str]
    redis_url: str
    upstream_url: str
    pg_password: str | None = field(default=None, repr=False)
    redis_password: str | None = field(default=None, repr=False)
    admin_token: str = field(default="", repr=False)
    max_replica_lag_bytes: int = 1_048_576
    batch_window_ms: int = 100

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ServiceSettings":
        replicas = _require(data, "replicas", dict)
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in replicas.items()):
            raise SettingsError("settings key 'replicas' must map names to DSN strings")
        if "primary" in replicas:
            raise SettingsError("a replica may not be named 'primary' (that label is the primary's)")
        settings = cls(
            port=_require(data, "port", int),
            primary_dsn=_require(data, "primary_dsn", str),
            replicas=dict(replicas),
            redis_url=_require(data, "redis_url", str),
            upstream_url=_require(data, "upstream_url", str).rstrip("/"),
            pg_password=data.get("pg_password"),
            redis_password=data.get("redis_password"),
            admin_token=_require(data, "admin_token", str),
            max_replica_lag_bytes=int(data.get("max_replica_lag_bytes", 1_048_576)),
            batch_window_ms=int(data.get("batch_window_ms", 100)),
        )
        if len(settings.admin_token) < 8:
            raise SettingsError("settings key 'admin_token' must be at least 8 characters")
        if not 0 <= settings.batch_window_ms <= MAX_BATCH_WINDOW_MS:
            raise SettingsError(f"settings key 'batch_window_ms' must be within 0..{MAX_BATCH_WINDOW_MS} "
                                "(0: no batching)")
        return settings

    @classmethod
    def load(cls, path: str | Path) -> "ServiceSettings":
        settings = cls.from_dict(read_private_json(path))
        # Registered so that redact() masks them in any log line, whatever its origin.
        for secret in (settings.pg_password, settings.redis_password, settings.admin_token):
            register_secret(secret)
        return settings

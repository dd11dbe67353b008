"""Start and stop real local servers on 127.0.0.1 for tests and the local lab.

This package owns the lifecycle of throw-away server processes: a PostgreSQL
primary with streaming replicas, Redis, Prometheus and HTTP exporters.  Each
server gets a fresh free port, lives under a caller-supplied directory, logs to
a file there, runs in its own session and is stopped by its PID -- never through
system services, never on a default port.  Secrets travel through files with
mode 0600, stdin or environment variables, never through argv (argv is world
readable via /proc/<pid>/cmdline).

One module per concern: `process` (spawning, waiting, stopping, finding
binaries), then one per server kind (`postgres`, `redis`, `prometheus`,
`exporters`). Callers import from the package, which re-exports every name.

Only the standard library is used so the lab can run anywhere the Debian
packages (postgresql, redis-server, prometheus, prometheus-postgres-exporter,
prometheus-redis-exporter) are installed.
"""

from __future__ import annotations

# Names in __all__ are the documented API; the `X as X` ones are the other public names the
# single servers.py offered (stack.py and the bench use some), re-exported explicitly.
from dashboard.lab.servers.exporters import (
    ExporterProcess,
    start_postgres_exporter,
    start_redis_exporter,
)
from dashboard.lab.servers.postgres import MAX_SOCKET_DIR_LEN as MAX_SOCKET_DIR_LEN
from dashboard.lab.servers.postgres import PG_USER as PG_USER
from dashboard.lab.servers.postgres import PostgresCluster
from dashboard.lab.servers.process import DEFAULT_PORTS as DEFAULT_PORTS
from dashboard.lab.servers.process import LOCALHOST as LOCALHOST
from dashboard.lab.servers.process import PACKAGES as PACKAGES
from dashboard.lab.servers.process import START_TIMEOUT as START_TIMEOUT
from dashboard.lab.servers.process import (
    Launch,
    Process,
    ServerError,
    find_binary,
    find_pg_bin,
    free_port,
    require_binary,
    stop_all,
    with_password,
)
from dashboard.lab.servers.process import log_tail as log_tail
from dashboard.lab.servers.process import port_in_use as port_in_use
from dashboard.lab.servers.process import spawn as spawn
from dashboard.lab.servers.process import wait_http as wait_http
from dashboard.lab.servers.prometheus import PrometheusServer
from dashboard.lab.servers.redis import RedisServer, redis_command

__all__ = [
    "ExporterProcess",
    "Launch",
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

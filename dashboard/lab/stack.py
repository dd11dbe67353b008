"""The lab as a whole: bring the stack up, record it, show it, take it down.

`up` starts every process of the lab on free loopback ports and records each one
(PID, port, log, start time, and how it was started) in `<dir>/lab.json` as soon as it
runs, so `down` can stop everything by PID from another process, also after a crash
halfway through `up` or of one of the servers, and `restart` can start a dead one
again the same way, on the same port. Secrets are generated per lab, live in `<dir>/secrets/`
(mode 0600) and reach processes through files or the environment, never argv; the
config the lab writes refers to them with `file:` references.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from dashboard.lab import servers
from dashboard.lab.servers import PostgresCluster, Process, ServerError

REPLICAS = ("replica-1", "replica-2")
NODES = ("primary", *REPLICAS)
# Commits that ask for it (the service's canary writes) wait until one standby, any,
# has them; everything else keeps synchronous_commit off.
SYNCHRONOUS_STANDBYS = "ANY 1 (*)"
# Environment variables lab.json may hold: none of them is a secret.
RECORDABLE_ENV = frozenset({"PYTHONUNBUFFERED"})
STATE_FILE = "lab.json"
# Stop order: clients of a server go before the server they use.
STOP_ORDER = ("traffic", "prometheus", "postgres-exporter", "redis-exporter", "service", "upstream",
              "redis-server", *(f"postgres-{name}" for name in REPLICAS), "postgres-primary")


@dataclass
class Entry:
    """One lab process as recorded in lab.json; argv, cwd, user and env say how to start it
    again (absent in the lab.json of an older version)."""

    name: str
    pid: int
    port: int
    log: str
    stop_signal: int
    start_ticks: int | None
    argv: list[str] | None = None
    cwd: str | None = None
    user: str | None = None
    env: dict[str, str] | None = None
    env_withheld: list[str] | None = None

    @classmethod
    def of(cls, proc: Process) -> "Entry":
        launch = proc.launch
        if launch is None:
            return cls(proc.name, proc.pid, proc.port, str(proc.log_path), int(proc.stop_signal),
                       _start_ticks(proc.pid))
        # The exporters get their DSN and password through the environment: lab.json keeps
        # only the names of such variables, and such a process cannot be restarted from it.
        withheld = sorted(set(launch.env) - RECORDABLE_ENV)
        return cls(proc.name, proc.pid, proc.port, str(proc.log_path), int(proc.stop_signal),
                   _start_ticks(proc.pid), list(launch.argv), launch.cwd, launch.user,
                   {k: v for k, v in launch.env.items() if k in RECORDABLE_ENV}, withheld or None)

    def process(self) -> Process:
        return Process(self.name, self.pid, self.port, Path(self.log), self.stop_signal)

    def alive(self) -> bool:
        """Running, and still the process we started (not a recycled PID)."""
        return _start_ticks(self.pid) == self.start_ticks and self.process().alive()


def _start_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def default_dir() -> Path:
    return Path(os.environ.get("SCALEDASH_LAB_DIR") or ".lab").resolve()


class Lab:
    """A lab directory and the processes recorded in it."""

    def __init__(self, directory: Path | None = None):
        self.dir = Path(directory).resolve() if directory else default_dir()
        self.state_path = self.dir / STATE_FILE
        self.config_path = self.dir / "scaledash.toml"

    # ------------------------------------------------------------ state file

    def entries(self) -> list[Entry]:
        try:
            data = json.loads(self.state_path.read_text())
            return [Entry(**e) for e in data.get("processes", [])]
        except FileNotFoundError:
            return []
        except (ValueError, TypeError, KeyError) as exc:
            raise ServerError(f"{self.state_path}: unreadable lab state ({type(exc).__name__}); "
                              f"remove it after checking no lab process runs") from None

    def _state(self) -> dict:
        try:
            return json.loads(self.state_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _record(self, proc: Process, **extra) -> None:
        state = self._state() or {"dir": str(self.dir), "started_at": time.time(), "processes": []}
        state["processes"].append(asdict(Entry.of(proc)))
        state.update(extra)
        self._write_state(state)

    def replace(self, proc: Process) -> None:
        """Record `proc` in place of the entry of the same name (a restarted process)."""
        state = self._state()
        entries = state.get("processes", [])
        index = next((i for i, e in enumerate(entries) if e.get("name") == proc.name), None)
        if index is None:
            raise ServerError(f"{proc.name} is not a process of the lab in {self.dir}")
        entries[index] = asdict(Entry.of(proc))
        self._write_state(state)

    def entry(self, name: str) -> Entry:
        """The recorded process `name`; ServerError naming the known ones if there is none."""
        entries = self.entries()
        if not entries:
            raise ServerError(f"no lab is running in {self.dir}")
        found = next((e for e in entries if e.name == name), None)
        if found is None:
            raise ServerError(f"no lab process named {name!r}; known: {', '.join(e.name for e in entries)}")
        return found

    def cluster(self) -> PostgresCluster:
        """The lab's PostgreSQL nodes as recorded (each postmaster runs in its data dir)."""
        nodes = {}
        for name in NODES:
            entry = self.entry(f"postgres-{name}")
            if not entry.cwd:
                raise ServerError(f"{entry.name}: lab.json does not record its data dir (a lab started by "
                                  "an older version); take it down and up again")
            nodes[name] = (entry.process(), Path(entry.cwd))
        return PostgresCluster.attach(self.dir, nodes)

    def _write_state(self, state: dict) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_path)

    def running(self) -> list[Entry]:
        return [e for e in self.entries() if e.alive()]

    # ------------------------------------------------------------ down / status

    def down(self, timeout: float = 10.0) -> list[str]:
        """Stop every recorded process by PID; return what was stopped."""
        entries = self.entries()
        order = {name: i for i, name in enumerate(STOP_ORDER)}
        entries.sort(key=lambda e: order.get(e.name, -1))
        stopped = []
        for entry in entries:
            if entry.alive():
                entry.process().stop(timeout)
                stopped.append(entry.name)
        self._remove_data()
        if self.state_path.exists():
            self.state_path.unlink()
        return stopped

    def _remove_data(self) -> None:
        """Database files are lab state, not worth keeping: each `up` starts afresh."""
        scratch = self._state().get("scratch")
        if scratch and Path(scratch).name.startswith("lab-pg-"):
            shutil.rmtree(scratch, ignore_errors=True)
        data = self.dir / "pg"
        if data.is_symlink():
            data.unlink()
        elif data.is_dir():
            shutil.rmtree(data, ignore_errors=True)

    def status(self) -> list[tuple[Entry, bool]]:
        return [(e, e.alive()) for e in self.entries()]

    # ------------------------------------------------------------ up

    def up(self, log=print) -> str:
        """Start the lab unless it runs; return "started" or "running"."""
        if self.running():
            return "running"
        if self.entries():
            self.down()      # leftovers of a crashed lab: clear them before starting afresh
        self.dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            self._up(log)
        except BaseException:
            self.down()
            raise
        log(f"lab up in {time.monotonic() - started:.1f}s: {self.dir}")
        return "started"

    def _secret(self, name: str) -> Path:
        folder = self.dir / "secrets"
        folder.mkdir(mode=0o700, exist_ok=True)
        path = folder / name
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(18))
        return path

    def _settings(self, name: str, data: dict) -> Path:
        path = self.dir / f"{name}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
        return path

    def _up(self, log) -> None:
        from dashboard.lab import config_writer

        pg_password = self._secret("pg_password").read_text()
        redis_password = self._secret("redis_password").read_text()
        admin_token = self._secret("admin_token").read_text()
        self._write_state({"dir": str(self.dir), "started_at": time.time(), "processes": []})

        cluster = servers.PostgresCluster(self.dir, replica_names=list(REPLICAS), password=pg_password,
                                          synchronous_standby_names=SYNCHRONOUS_STANDBYS)
        try:
            cluster.start()
        finally:
            scratch = str(cluster.scratch_dir) if cluster.scratch_dir else None
            for proc in cluster.processes:
                self._record(proc, scratch=scratch)
        cluster.psql(cluster.primary, f"CREATE ROLE app LOGIN PASSWORD '{pg_password}'")
        cluster.psql(cluster.primary, "CREATE DATABASE app OWNER app")
        # The scaling suite pauses replay on a replica through the config's DSNs (the
        # health and lag checks); in the lab, the monitor role may do that.
        # The failover drill promotes with pg_promote() through the monitor role's DSN.
        cluster.psql(cluster.primary, "GRANT EXECUTE ON FUNCTION pg_wal_replay_pause(), pg_wal_replay_resume(), "
                                      "pg_promote(boolean, integer) TO monitor")
        log(f"postgres: primary :{cluster.primary.port}, "
            + ", ".join(f"{p.name} :{p.port}" for p in cluster.replicas))

        redis = servers.RedisServer(self.dir / "redis", password=redis_password).start()
        self._record(redis.process)

        upstream_port, service_port, traffic_port = (servers.free_port() for _ in range(3))
        upstream = self._python("upstream", "dashboard.lab.upstream", upstream_port, {
            "port": upstream_port, "admin_token": admin_token, "failure_rate": 0.0, "latency_ms": 5})
        servers.wait_http(upstream, f"http://127.0.0.1:{upstream_port}/quote")
        service = self._python("service", "dashboard.lab.service", service_port, {
            "port": service_port,
            "primary_dsn": f"postgresql://app@127.0.0.1:{cluster.primary.port}/app",
            "replicas": {name: f"postgresql://app@127.0.0.1:{p.port}/app"
                         for name, p in zip(REPLICAS, cluster.replicas)},
            "pg_password": pg_password, "redis_url": redis.url(), "redis_password": redis_password,
            "upstream_url": f"http://127.0.0.1:{upstream_port}", "admin_token": admin_token,
            "max_replica_lag_bytes": 1048576, "batch_window_ms": 100,
        })
        servers.wait_http(service, f"http://127.0.0.1:{service_port}/healthz", ok=lambda s: s == 200)
        log(f"service :{service_port} (upstream :{upstream_port}), redis :{redis.port}")

        exporters = self._exporters(cluster, redis, pg_password, redis_password, log)
        prometheus_url = self._prometheus(service_port, traffic_port, exporters, log)

        traffic = self._python("traffic", "dashboard.lab.traffic", traffic_port, {
            "service_url": f"http://127.0.0.1:{service_port}", "metrics_port": traffic_port,
            "rate": 40, "subscribers": 3, "write_share": 0.05})
        servers.wait_http(traffic, f"http://127.0.0.1:{traffic_port}/metrics")

        self.config_path.write_text(config_writer.render(
            lab_dir=self.dir, primary_port=cluster.primary.port,
            replica_ports={name: p.port for name, p in zip(REPLICAS, cluster.replicas)}, redis_url=redis.url(),
            service_port=service_port, traffic_port=traffic_port, prometheus_url=prometheus_url,
            exporter_jobs=tuple(exporters)))
        log(f"config: {self.config_path}")

    def _python(self, name: str, module: str, port: int, settings: dict) -> Process:
        path = self._settings(name, settings)
        proc = servers.spawn(name, [sys.executable, "-m", module, str(path)], port, self.dir / f"{name}.log",
                             cwd=self.dir, env={"PYTHONUNBUFFERED": "1"})
        self._record(proc)
        return proc

    def _exporters(self, cluster, redis, pg_password: str, redis_password: str, log) -> dict[str, int]:
        """The Debian exporters, when installed, so the Prometheus presets see real ones."""
        found: dict[str, int] = {}
        if servers.find_binary("prometheus-postgres-exporter"):
            dsn = servers.with_password(cluster.dsn(cluster.primary), pg_password)
            proc = servers.start_postgres_exporter(self.dir / "exporters", dsn)
            self._record(proc)
            found["postgres"] = proc.port
        if servers.find_binary("prometheus-redis-exporter"):
            proc = servers.start_redis_exporter(self.dir / "exporters", redis.url(), redis_password)
            self._record(proc)
            found["redis"] = proc.port
        if found:
            log("exporters: " + ", ".join(f"{k} :{v}" for k, v in found.items()))
        return found

    def _prometheus(self, service_port: int, traffic_port: int, exporters: dict[str, int], log) -> str | None:
        if not servers.find_binary("prometheus"):
            log("prometheus: not installed (apt-get install prometheus); the lab uses direct scrapes")
            return None
        targets = {"service": [f"127.0.0.1:{service_port}"], "traffic": [f"127.0.0.1:{traffic_port}"]}
        targets.update({job: [f"127.0.0.1:{port}"] for job, port in exporters.items()})
        prom = servers.PrometheusServer(self.dir / "prometheus", targets, scrape_interval="1s").start()
        self._record(prom.process)
        log(f"prometheus :{prom.port}")
        return prom.url()


def stop_signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)

"""The values a validated config is made of: targets, thresholds, secrets and errors.

Separate from the loader and the schema checker so both, and every probe and kind
that only needs a target type, can import them without importing each other.
Secrets are references (`env:NAME`, `file:/path`); their values live in `Secret`
objects whose repr and str never show them, and are registered with the redaction
chokepoint the moment they are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dashboard import redact


class ConfigError(Exception):
    """The config cannot be used; `problems` lists every reason, one line each."""

    def __init__(self, path: str, problems: list[str]):
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))

    def lines(self) -> list[str]:
        return [report_line("config error", self.path, p) for p in self.problems]


def report_line(kind: str, path: str, problem: str) -> str:
    """`<kind>: <path>: <key path>: <message>`, with the key path and message redacted apart.

    Redacted as one line, `replica[0].password: environment variable ...` reads as a
    `password: <value>` pair and loses the first word of its message.
    """
    key_path, sep, message = problem.partition(": ")
    text = f"{kind}: {redact.redact(path)}: {redact.redact(key_path)}{sep}{redact.redact(message)}"
    return redact.sanitize(text, 1000)


class Secret:
    """A secret value that never shows itself in repr, str, logs or tracebacks."""

    __slots__ = ("_value", "origin")

    def __init__(self, value: str, origin: str):
        self._value = value
        self.origin = origin          # "env:NAME", "file:/path" or "inline": safe to show
        redact.register_secret(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.origin}, ***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self.origin)


@dataclass(frozen=True)
class Thresholds:
    replica_lag_bytes: int = 16 * 1024 * 1024
    replica_lag_seconds: float = 5.0
    cache_hit_rate: float = 0.80
    error_rate: float = 0.01
    # A row DEGRADED by a threshold is OK again only once its figure is back past the
    # threshold by this fraction of the room to its best value (hit rate 80 % -> 82 %,
    # lag 5 s -> 4.5 s) and has stayed there this long: a figure sitting on a threshold
    # changes the row's state once, not every second (dashboard/hysteresis.py).
    recovery_band: float = 0.10
    recovery_hold_s: float = 5.0


@dataclass(frozen=True)
class ReplicaTarget:
    name: str
    dsn: str                       # without its password
    password: Secret | None = None
    max_lag_bytes: int | None = None        # overrides thresholds.replica_lag_bytes for this node
    max_lag_seconds: float | None = None    # overrides thresholds.replica_lag_seconds for this node


@dataclass(frozen=True)
class CacheTarget:
    name: str
    url: str                       # without its password
    password: Secret | None = None
    insecure: bool = False
    min_hit_rate: float | None = None     # overrides thresholds.cache_hit_rate for this Redis


@dataclass(frozen=True)
class SourceTarget:
    name: str
    preset: str
    scrape: str | None = None
    prometheus: str | None = None
    username: str | None = None
    password: Secret | None = None
    rate_window: str = "1m"
    job: str | None = None
    insecure: bool = False
    min_hit_rate: float | None = None     # floor for the cache rows found in this source
    max_series: int = 10_000              # more in one answer is an ERROR, not 10k+ rows (DEFAULT_MAX_SERIES)


# The JSON types a contract's `body` may name; a table is an object with those keys,
# a one-item array (`["number"]`) an array whose every item has that shape.
SHAPE_TYPES = ("string", "number", "integer", "boolean", "null", "object", "array", "any")


@dataclass(frozen=True)
class EdgeContract:
    """What the shipped `edge` suite checks in each answer of one function (`[edge.contract]`).

    `body` and `request_body` are plain TOML values (tables, arrays, strings), left out of
    the hash so the target stays hashable.
    """

    content_type: str | None = None         # media type, parameters (charset) ignored
    body: Any = field(default=None, hash=False)           # a shape: type word, table or [shape]
    latency_ms: float | None = None          # p95 budget over `samples` calls; None: the config's timeout
    samples: int = 5
    request_body: Any = field(default=None, hash=False)   # JSON sent with POST or PUT


@dataclass(frozen=True)
class EdgeTarget:
    name: str
    url: str
    method: str = "GET"
    expect_status: int = 200
    headers: tuple[tuple[str, str | Secret], ...] = ()
    insecure: bool = False
    contract: EdgeContract | None = None     # None: the edge suite checks status and latency only


@dataclass(frozen=True)
class CdnTarget:
    name: str
    url: str
    headers: tuple[tuple[str, str | Secret], ...] = ()
    insecure: bool = False


@dataclass(frozen=True)
class SuiteTarget:
    name: str
    command: tuple[str, ...]
    cwd: str | None = None


@dataclass(frozen=True)
class ServiceTarget:
    """The stack's own service: what suites (and drills) drive, not a polled target."""

    url: str
    admin_token: Secret | None = None     # bearer token of its /admin/ endpoints, when it has them


@dataclass(frozen=True)
class DrillsSettings:
    """`[drills]`: the targets drills may act on, and where their records live."""

    allow: tuple[str, ...] = ()
    state_dir: str | None = None        # journal, reports, audit, locks (default ~/.local/state/scaledash)
    processes: str | None = None        # a process table (name -> pid) for `signal` steps, e.g. a lab's


@dataclass(frozen=True)
class DrillConfig:
    """One `[[drill]]`: a built-in (`use`) with its options, or steps of the user's own."""

    name: str
    use: str
    target: str | None = None
    description: str = ""
    steady_state: tuple[str, ...] = ()
    steps: tuple[dict, ...] = ()
    rollback: tuple[dict, ...] = ()
    commands: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    path: str = ""


@dataclass(frozen=True)
class Config:
    path: str
    name: str
    interval: float
    timeout: float
    thresholds: Thresholds = Thresholds()
    replicas: tuple[ReplicaTarget, ...] = ()
    caches: tuple[CacheTarget, ...] = ()
    sources: tuple[SourceTarget, ...] = ()
    edges: tuple[EdgeTarget, ...] = ()
    cdns: tuple[CdnTarget, ...] = ()
    suites: tuple[SuiteTarget, ...] = ()
    drills: tuple[DrillConfig, ...] = ()
    drill_settings: DrillsSettings = DrillsSettings()
    service: ServiceTarget | None = None
    warnings: tuple[str, ...] = ()
    # Per-target poll intervals (`interval` in a target's table); a target never polls
    # faster than the global interval. Slow sources (Prometheus, CDNs) need not be hit
    # every second.
    intervals: dict = field(default_factory=dict)

    @property
    def drill_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.drills)

    @property
    def target_names(self) -> set[str]:
        """Every configured target a drill may name (the [service] is "service")."""
        names = {t.name for t in (*self.replicas, *self.caches, *self.sources, *self.edges, *self.cdns)}
        return names | ({"service"} if self.service else set())

    @property
    def target_count(self) -> int:
        return sum(len(t) for t in (self.replicas, self.caches, self.sources, self.edges, self.cdns))

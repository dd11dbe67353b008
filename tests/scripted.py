"""A scripted fleet on a fixed-clock engine, for the TUI's layout tests only.

Snapshot tests pin pixels, so their figures must not move: these probes return the
same readings every round, and the engine's clocks stand still. Everything about
live behaviour is tested against real servers elsewhere (test_tui_live.py).
"""

from __future__ import annotations

from dataclasses import replace

from dashboard.config import validate
from dashboard.engine import Engine
from dashboard.model import Failure, Kind, Reading, State
from dashboard.probes.base import ProbeError
from fakes import Clock, ScriptedProbe

WALL = 1_790_000_000.0        # a fixed wall clock: 2026-09-21 13:33:20 UTC


def replica(name: str, role: str, lag: int = 0, paused: bool = False) -> Reading:
    return Reading(Kind.REPLICA, name, {"role": role, "writable": role == "primary", "lag_bytes": lag,
                                        "lag_seconds": 0.0 if not lag else 2.5, "replay_paused": paused,
                                        "latency_ms": 1.2, "xact_total": 100})


def fleet_probes(hostile: str | None = None) -> list[ScriptedProbe]:
    service = [
        Reading(Kind.BREAKER, "upstream", {"state": 1.0, "success_total": 300.0, "failure_total": 100.0,
                                           "rejected_total": 50.0}),
        Reading(Kind.BREAKER, "database", {"state": 0.0, "success_total": 1000.0, "failure_total": 0.0}),
        Reading(Kind.CACHE, "items", {"layer": "memory", "hits_total": 800.0, "misses_total": 200.0},
                detail="memory"),
        Reading(Kind.CACHE, "items", {"layer": "redis", "hits_total": 150.0, "misses_total": 50.0},
                detail="redis"),
        Reading(Kind.BATCHER, "realtime", {"messages_total": 2000.0, "frames_total": 200.0, "subscribers": 3.0}),
        Reading(Kind.EDGE, "hello", {"invocations_total": 500.0, "errors_total": 0.0}),
    ]
    if hostile:
        service.append(Reading(Kind.BREAKER, hostile, {"state": float("nan")}))
    return [
        ScriptedProbe("primary", "postgres", [replica("primary", "primary")], Kind.REPLICA),
        ScriptedProbe("replica-1", "postgres", [replica("replica-1", "replica", lag=2048)], Kind.REPLICA),
        ScriptedProbe("replica-2", "postgres", [replica("replica-2", "replica", lag=4_500_000, paused=True)],
                      Kind.REPLICA),
        ScriptedProbe("replica-3", "postgres", [], Kind.REPLICA,
                      failure=ProbeError(Failure.DOWN, "connection refused")),
        ScriptedProbe("redis", "redis", [Reading(Kind.CACHE, "redis", {"layer": "redis", "hits_total": 10.0,
                                                                        "misses_total": 1.0, "ops_total": 50.0,
                                                                        "evictions_total": 0,
                                                                        "memory_bytes": 1_500_000})], Kind.CACHE),
        ScriptedProbe("service", "scrape", service),
        ScriptedProbe("static", "http", [Reading(Kind.CDN, "static", {"cache_status": "HIT", "latency_ms": 3.0,
                                                                   "probe_hits": 9, "probes_with_status": 10})],
                      Kind.CDN),
    ]


def scripted_engine(hostile: str | None = None, extra_replicas: int = 0,
                    probes: list[ScriptedProbe] | None = None) -> Engine:
    """The scripted fleet (or `probes` instead), on a clock that moves only when told."""
    config = validate({"name": "drill-rehearsal", "interval": "1s", "timeout": "800ms"}, "lab.toml")
    probes = fleet_probes(hostile) if probes is None else probes
    probes += [ScriptedProbe(f"r{i:02d}", "postgres", [replica(f"r{i:02d}", "replica")], Kind.REPLICA)
               for i in range(extra_replicas)]
    return Engine(config, probes, clock=Clock(), wall=lambda: WALL)


def healthy_fleet() -> list[ScriptedProbe]:
    """The scripted fleet without its dead replica: every target answers."""
    return [p for p in fleet_probes() if p.failure is None]


def probe_of(engine: Engine, target: str) -> ScriptedProbe:
    return next(t.probe for t in engine.targets if t.probe.target == target)


def with_warnings(engine: Engine, warnings: dict[str, str]) -> None:
    """Make the engine's snapshots carry `Component.warning` for the rows named in
    `warnings`, as a Prometheus answer with warnings would."""
    take = engine.snapshot

    def snapshot():
        snap = take()
        return replace(snap, components=tuple(replace(c, warning=warnings[c.name]) if c.name in warnings else c
                                              for c in snap.components))

    engine.snapshot = snapshot


async def advance(engine: Engine, rounds: int = 2, step: float = 1.0) -> None:
    """Run `rounds` poll rounds, moving the fixed clock `step` seconds between them."""
    for i in range(rounds):
        if i:
            engine.clock.now += step
        await engine.poll_round()


__all__ = ["ScriptedProbe", "scripted_engine", "healthy_fleet", "probe_of", "with_warnings", "advance", "State",
           "WALL"]

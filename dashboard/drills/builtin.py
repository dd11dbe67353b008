"""The built-in drills, resolved against the stack as the engine sees it now.

Each built-in turns its `[[drill]]` options and the current snapshot into a `Plan`:
which node is the primary, which replica is the candidate, which commands run. The
lab's written config configures all five with its own `scaledash lab ...` verbs; a
real stack configures the same drills with its own commands (README, "Drills").
What cannot be resolved (no single primary, a candidate too far behind, a command
not configured) goes into `Plan.problems`: the run is refused with those reasons.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from dashboard.config_types import Config, DrillConfig
from dashboard.drills.model import Drill, Plan, Step
from dashboard.model import Component, Kind, Snapshot, State

MIB = 1024 * 1024
DEFAULTS = {"writes_per_s": 50, "max_candidate_lag_bytes": MIB, "failure_rate": 1.0}
DURATIONS = {"failover": 2.0, "redis-outage": 5.0, "upstream-fault": 8.0, "replica-lag": 8.0, "rejoin": 0.0}
# Commands each built-in needs from the config (`commands = { promote = [...] }`).
NEEDS = {"failover": ("repoint",), "rejoin": ("rejoin",), "redis-outage": ("restart",),
         "upstream-fault": (), "replica-lag": ()}
IRREVERSIBLE = {"failover", "rejoin"}
DESCRIPTIONS = {
    "failover": "crash the primary (SIGKILL), promote the most caught-up replica, repoint the others; "
                "measure failover time, failed and lost writes",
    "rejoin": "rebuild the old primary as a streaming replica of the new one (pg_rewind or a base backup)",
    "redis-outage": "stop Redis; the cache falls back to the database; restart it; time to recover",
    "upstream-fault": "make the upstream fail; the breaker opens, the fallback serves; remove the fault; "
                      "time to open and to close",
    "replica-lag": "pause replay on a replica; lag grows and reads move away; resume; lag back to 0",
}


def _nodes(snap: Snapshot) -> list[Component]:
    """Direct PostgreSQL rows (one per node), not rows read through an exporter."""
    return [c for c in snap.components if c.kind is Kind.REPLICA and c.source == "postgres"]


def _by_role(snap: Snapshot, role: str) -> list[Component]:
    return [c for c in _nodes(snap) if c.metrics.get("role") == role and c.state not in (State.DOWN, State.ERROR)]


def topology(snap: Snapshot | None) -> tuple[str, ...]:
    if snap is None:
        return ("no snapshot yet",)
    lines = []
    for c in _nodes(snap):
        lag = c.metrics.get("lag_bytes")
        lag_text = f", lag {int(lag)} B" if isinstance(lag, (int, float)) and c.metrics.get("role") == "replica" else ""
        lines.append(f"{c.name}: {c.metrics.get('role') or '?'} {c.state.value}{lag_text}")
    return tuple(lines) or ("no PostgreSQL node on screen",)


def _argv(cfg: DrillConfig, key: str, **values: str) -> tuple[str, ...]:
    return tuple(part.format_map(_Keep(values)) for part in cfg.commands.get(key, ()))


class _Keep(dict):
    """`{name}` placeholders the step does not know stay as written (and show in the plan)."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _failover(cfg: DrillConfig, config: Config, snap: Snapshot) -> Plan:
    """The candidate is chosen at the promotion, not now: the standby that has received the
    most WAL once the primary is dead is the one holding every acknowledged write (canary
    commits wait for ANY one standby, not a given one). Steps after it name it
    `{candidate}`, filled in at run time; the plan shows who it would be now."""
    problems = []
    primaries = _by_role(snap, "primary")
    if len(primaries) != 1:
        problems.append(f"needs exactly one primary answering; the engine sees {len(primaries)}")
    primary = primaries[0].name if len(primaries) == 1 else (cfg.target or "?")
    if cfg.target and cfg.target != primary and len(primaries) == 1:
        problems.append(f"the configured target {cfg.target} is not the primary now ({primary} is)")
    replicas = sorted(_by_role(snap, "replica"), key=lambda c: (c.metrics.get("lag_bytes") is None,
                                                                  c.metrics.get("lag_bytes") or 0, c.name))
    names = [c.name for c in replicas]
    max_lag = float(cfg.options.get("max_candidate_lag_bytes", DEFAULTS["max_candidate_lag_bytes"]))
    likely = names[0] if names else "?"
    if not names:
        problems.append("no replica answering to promote")
    # A node that does not answer now would be left following the old primary.
    answering = {c.name for c in (*primaries, *replicas)}
    problems += [f"{r.name} is not answering as a primary or a replica: a failover now would leave it behind"
                 for r in config.replicas if r.name not in answering]
    process = str(cfg.options.get("process", "postgres-{primary}")).format_map(_Keep({"primary": primary}))
    rate = cfg.options.get("writes_per_s", DEFAULTS["writes_per_s"])
    settle = cfg.options.get("duration", DURATIONS["failover"])
    promote = _argv(cfg, "promote", primary=primary) if "promote" in cfg.commands else None
    how = " ".join(promote) if promote else "SELECT pg_promote(true, 30)"
    method = [
        Step("canary_start", f"write canary rows through the service at {rate}/s", {"rate": rate}, name="canary"),
        Step("observe", f"watch {settle:g}s of writes acknowledged by {primary}", {"duration": settle}),
        _stop(cfg, "kill", f"crash the primary {primary}", process, "SIGKILL", node=primary, primary=primary),
        Step("promote", f"promote the replica that received the most WAL of {', '.join(names)} "
                        f"(now {likely}): {how}",
             {"nodes": names, "command": promote, "max_lag_bytes": max_lag}, name="promote", irreversible=True,
             timeout_s=35, verify="replica/{candidate}.role == primary"),
        Step("canary_wait", "wait for the first write acknowledged by {candidate}",
             {"node": "{candidate}", "deadline": 15.0}),
    ]
    for other in names:
        method.append(Step("shell", f"repoint {other} at {{candidate}}",
                           {"command": _argv(cfg, "repoint", node=other, replica=other, primary="{candidate}"),
                            "skip_node": other}, name=f"repoint-{other}", timeout_s=60))
    method += [
        Step("observe", f"watch {settle:g}s of writes on {{candidate}}", {"duration": settle}),
        Step("canary_stop", "stop the canary writes; count acknowledged rows missing on the new primary",
             name="canary-stop"),
    ]
    rollback = [Step("canary_stop", "stop the canary writes")]
    if "restart" in cfg.commands:
        rollback.append(Step("shell", f"restart {primary} (only before the promotion)",
                             {"command": _argv(cfg, "restart", node=primary, primary=primary, process=process)},
                             after="kill", timeout_s=60))
    return Plan(
        drill=_drill(cfg, config, (primary, *names)), target=primary,
        steady_state=(f"replica/{primary}.role == primary", f"replica/{primary}.state == OK",
                      *(f"replica/{name}.state <= DEGRADED" for name in names)),
        preflight=(f"replica/{likely}.lag_bytes <= {int(max_lag)}",),
        method=tuple(method), rollback=tuple(rollback),
        context={"primary": primary, "candidate": likely, "replicas": ",".join(names)},
        topology=topology(snap), problems=tuple(problems),
        verify=("replica/{candidate}.role == primary", *(f"replica/{name}.state == OK" for name in names)),
        limits={"failover_seconds": ("<", 1.0), "lost_writes": ("==", 0)})


def _stop(cfg: DrillConfig, key: str, what: str, process: str, signal: str, **values: str) -> Step:
    """The stack's own command (`commands.kill` / `commands.stop`: a host elsewhere, a
    systemd unit) when configured; else a signal to the process named in [drills] processes."""
    if key in cfg.commands:
        argv = _argv(cfg, key, process=process, **values)
        return Step("shell", f"{what}: {' '.join(argv)}", {"command": argv}, name=key, timeout_s=30)
    return Step("signal", f"{what}: {signal} to {process}", {"process": process, "signal": signal}, name=key)


def _rejoin(cfg: DrillConfig, config: Config, snap: Snapshot) -> Plan:
    problems = []
    primaries = _by_role(snap, "primary")
    if len(primaries) != 1:
        problems.append(f"needs exactly one primary answering; the engine sees {len(primaries)}")
    primary = primaries[0].name if primaries else "?"
    down = [c.name for c in _nodes(snap) if c.state is State.DOWN]
    node = cfg.target or (down[0] if down else "?")
    if not cfg.target and not down:
        problems.append("no PostgreSQL node is down: nothing to rejoin")
    argv = _argv(cfg, "rejoin", node=node, primary=primary)
    method = (
        Step("shell", f"rebuild {node} as a replica of {primary}: {' '.join(argv)}", {"command": argv},
             name="rejoin", irreversible=True, timeout_s=300),
        Step("wait", f"wait until {node} streams from {primary}", {"until": f"replica/{node}.role == replica",
                                                                   "deadline": 60.0, "figure": "stream_seconds"}),
    )
    return Plan(
        drill=_drill(cfg, config, (node, primary)), target=node,
        steady_state=(f"replica/{primary}.role == primary", f"replica/{primary}.state == OK"),
        preflight=(f"replica/{node}.state == DOWN",), method=method,
        context={"node": node, "primary": primary}, topology=topology(snap), problems=tuple(problems),
        verify=(f"replica/{node}.role == replica", f"replica/{node}.state == OK"))


def _redis_outage(cfg: DrillConfig, config: Config, snap: Snapshot) -> Plan:
    caches = [c.name for c in config.caches]
    target = cfg.target or (caches[0] if caches else "?")
    problems = [] if target in caches else [f"no [[cache]] named {target}"]
    process = str(cfg.options.get("process", "redis-server"))
    outage = cfg.options.get("duration", DURATIONS["redis-outage"])
    restart = _argv(cfg, "restart", node=target, process=process)
    method = (
        _stop(cfg, "stop", f"stop Redis {target}", process, "SIGTERM", node=target),
        Step("wait", f"wait until the engine sees {target} DOWN", {"until": f"cache/{target}.state == DOWN",
                                                                  "deadline": 10.0}),
        Step("observe", f"watch {outage:g}s of the outage: hit rate and error rate", {"duration": outage,
                                                                                      "record": "outage"}),
        Step("shell", f"restart Redis {target}: {' '.join(restart)}", {"command": restart}, name="restart",
             timeout_s=60),
        Step("wait", f"wait until {target} is OK again", {"until": f"cache/{target}.state == OK",
                                                         "deadline": 30.0, "figure": "recovery_seconds"}),
    )
    rollback = (Step("shell", f"restart Redis {target}", {"command": restart}, after="stop",
                     unless=f"cache/{target}.state == OK", timeout_s=60),)
    return Plan(
        drill=_drill(cfg, config, (target,)), target=target,
        steady_state=(f"cache/{target}.state == OK",),
        preflight=(), method=method, rollback=rollback, context={"cache": target, "process": process},
        topology=topology(snap), problems=tuple(problems),
        verify=(f"cache/{target}.state == OK",), limits={"outage_error_rate": ("<", 0.01)})


def _upstream_fault(cfg: DrillConfig, config: Config, snap: Snapshot) -> Plan:
    problems = [] if config.service and config.service.admin_token else [
        "needs [service] url and admin_token (the fault is set through /admin/faults)"]
    rate = cfg.options.get("failure_rate", DEFAULTS["failure_rate"])
    hold = cfg.options.get("duration", DURATIONS["upstream-fault"])
    breaker = "breaker/upstream"
    fault = {"upstream": {"failure_rate": rate}}
    clear = {"upstream": {"failure_rate": 0.0}}
    method = (
        Step("http", f"make the upstream fail ({rate:.0%} of calls)", {"method": "POST", "path": "/admin/faults",
                                                                    "json": fault}, name="fault"),
        Step("wait", "wait until the breaker opens", {"until": f"{breaker}.state == open", "deadline": 30.0,
                                                      "figure": "open_seconds"}),
        Step("observe", f"watch {hold:g}s: the fallback serves, errors stay under 1 %",
             {"duration": hold, "record": "fault"}),
        Step("http", "remove the upstream fault", {"method": "POST", "path": "/admin/faults", "json": clear},
             name="clear"),
        Step("wait", "wait until the breaker closes", {"until": f"{breaker}.state == closed", "deadline": 60.0,
                                                       "figure": "close_seconds"}),
    )
    rollback = (Step("http", "remove the upstream fault", {"method": "POST", "path": "/admin/faults", "json": clear},
                     after="fault"),)
    return Plan(
        drill=_drill(cfg, config, ("service",)), target="service",
        steady_state=(f"{breaker}.state == closed",), preflight=(), method=method, rollback=rollback,
        context={}, topology=topology(snap), problems=tuple(problems),
        verify=(f"{breaker}.state == closed",), limits={"fault_error_rate": ("<", 0.01)})


def _replica_lag(cfg: DrillConfig, config: Config, snap: Snapshot) -> Plan:
    replicas = [c.name for c in _by_role(snap, "replica")]
    target = cfg.target or (replicas[0] if replicas else "?")
    problems = [] if target in replicas else [f"{target} is not a replica answering now"]
    hold = cfg.options.get("duration", DURATIONS["replica-lag"])
    resume = {"node": target, "sql": "SELECT pg_wal_replay_resume()"}
    method = (
        Step("sql", f"pause replay on {target}", {"node": target, "sql": "SELECT pg_wal_replay_pause()"},
             name="pause"),
        Step("wait", f"wait until the engine sees {target} paused", {"until": f"replica/{target}.replay_paused == true",
                                                                    "deadline": 10.0}),
        # Longer than the engine's 5 s rate window plus the service's 1 s health check,
        # so the read share measured at the end covers only time with the replica paused.
        Step("observe", f"watch {hold:g}s: lag grows, reads move away", {"duration": hold, "record": "paused",
                                                                          "node": target}),
        Step("sql", f"resume replay on {target}", resume, name="resume"),
        Step("wait", f"wait until {target}'s lag is back to 0", {"until": f"replica/{target}.lag_bytes == 0",
                                                                "deadline": 30.0, "figure": "catch_up_seconds"}),
    )
    rollback = (Step("sql", f"resume replay on {target}", resume, after="pause"),)
    return Plan(
        drill=_drill(cfg, config, (target,)), target=target,
        steady_state=(f"replica/{target}.state == OK", f"replica/{target}.replay_paused == false"),
        preflight=(), method=method, rollback=rollback, context={"replica": target},
        topology=topology(snap), problems=tuple(problems),
        verify=(f"replica/{target}.replay_paused == false", f"replica/{target}.state == OK"),
        limits={"paused_read_share": ("<=", 0.01), "catch_up_seconds": ("<", 30.0)})


def _drill(cfg: DrillConfig, config: Config, targets: tuple[str, ...]) -> Drill:
    return Drill(name=cfg.name, use=cfg.use, description=cfg.description or DESCRIPTIONS.get(cfg.use, ""),
                 targets=tuple(t for t in targets if t and t != "?"), options=dict(cfg.options),
                 irreversible=cfg.use in IRREVERSIBLE)


PLANNERS: dict[str, Callable[[DrillConfig, Config, Snapshot], Plan]] = {
    "failover": _failover, "rejoin": _rejoin, "redis-outage": _redis_outage,
    "upstream-fault": _upstream_fault, "replica-lag": _replica_lag,
}


def with_config_steady_state(plan: Plan, cfg: DrillConfig) -> Plan:
    """A `steady_state` the operator configured is checked on top of the built-in one."""
    return replace(plan, steady_state=plan.steady_state + tuple(cfg.steady_state)) if cfg.steady_state else plan

"""Which drills this config has, which may run, and each one's plan for the stack as it is.

A drill runs only where the config allows it (`[drills] allow`, per target) and
never under --readonly. A drill that names a target without that permission, a
built-in missing a command it needs, or a condition that does not read, disables
itself with one notice; the config still loads and the dashboard still starts
(RELIABILITY.md case 16).
"""

from __future__ import annotations

from dataclasses import replace

from dashboard.config_types import Config, DrillConfig
from dashboard.drills import builtin
from dashboard.drills.conditions import Condition, ConditionError
from dashboard.drills.model import Drill, Plan, Step
from dashboard.model import Snapshot
from dashboard.redact import safe_message


class UnknownDrill(LookupError):
    """No drill of that name: the message lists the ones there are."""


def _static_targets(cfg: DrillConfig, config: Config) -> tuple[str, ...]:
    """The targets a drill may act on, known before any snapshot."""
    if cfg.use in ("failover", "rejoin"):
        return tuple(r.name for r in config.replicas)          # any node may become the primary
    if cfg.use == "replica-lag":
        return (cfg.target,) if cfg.target else tuple(r.name for r in config.replicas)
    if cfg.use == "redis-outage":
        return (cfg.target,) if cfg.target else tuple(c.name for c in config.caches[:1])
    if cfg.use == "upstream-fault":
        return ("service",)
    nodes = tuple(str(s["node"]) for s in (*cfg.steps, *cfg.rollback) if s.get("node"))
    return tuple(dict.fromkeys(((cfg.target,) if cfg.target else ()) + nodes))


def _disabled(cfg: DrillConfig, config: Config) -> str | None:
    targets = _static_targets(cfg, config)
    if cfg.use == "custom" and not cfg.target:
        return "a drill of your own needs target = the configured target it acts on"
    unknown = [t for t in targets if t not in config.target_names]
    if unknown:
        return f"no target named {', '.join(unknown)}"
    if not targets:
        return "no target to act on in this config"
    denied = [t for t in targets if t not in config.drill_settings.allow]
    if denied:
        return (f"not allowed on {', '.join(denied)}: drills act only on targets listed in "
                f"[drills] allow")
    missing = [k for k in builtin.NEEDS.get(cfg.use, ()) if k not in cfg.commands]
    if missing:
        return f"needs commands.{', commands.'.join(missing)} (how this stack does it)"
    for text in (*cfg.steady_state, *(s.get(k) for s in (*cfg.steps, *cfg.rollback)
                                      for k in ("until", "verify", "unless") if s.get(k))):
        try:
            Condition.parse(text)
        except ConditionError as exc:
            return str(exc)
    signals = (cfg.use == "failover" and "kill" not in cfg.commands) \
        or (cfg.use == "redis-outage" and "stop" not in cfg.commands) \
        or any(s.get("do") == "signal" for s in (*cfg.steps, *cfg.rollback))
    if signals and not config.drill_settings.processes:
        return "needs [drills] processes (the process table its signal steps read PIDs from)"
    return None


def listed(config: Config) -> tuple[Drill, ...]:
    """Every configured drill, with `disabled` saying why one cannot run here."""
    out = []
    for cfg in config.drills:
        reason = _disabled(cfg, config)
        out.append(Drill(name=cfg.name, use=cfg.use,
                         description=cfg.description or builtin.DESCRIPTIONS.get(cfg.use, "steps of your own"),
                         targets=_static_targets(cfg, config), options=dict(cfg.options),
                         disabled=safe_message(reason, 300) if reason else None,
                         irreversible=cfg.use in builtin.IRREVERSIBLE or any(s.get("irreversible")
                                                                              for s in cfg.steps)))
    return tuple(out)


def notices(config: Config) -> list[str]:
    """One line per drill that disabled itself (printed once, at start-up)."""
    return [f"drill {d.name}: disabled: {d.disabled}" for d in listed(config) if d.disabled]


def find(config: Config, name: str) -> DrillConfig:
    for cfg in config.drills:
        if cfg.name == name:
            return cfg
    names = ", ".join(d.name for d in config.drills) or "none configured"
    raise UnknownDrill(f"no drill named {safe_message(name, 80)!s} (drills: {names})")


def plan(cfg: DrillConfig, config: Config, snap: Snapshot) -> Plan:
    """The drill resolved against `snap`; `problems` say why it must not run now."""
    planner = builtin.PLANNERS.get(cfg.use, _custom)
    resolved = builtin.with_config_steady_state(planner(cfg, config, snap), cfg)
    problems = list(resolved.problems)
    reason = _disabled(cfg, config)
    if reason:
        problems.insert(0, reason)
    denied = [t for t in resolved.drill.targets if t not in config.drill_settings.allow]
    if denied and not reason:
        problems.append(f"not allowed on {', '.join(denied)} ([drills] allow)")
    return replace(resolved, problems=tuple(problems))


def _step(raw: dict) -> Step:
    action = raw["do"]
    args = {k: v for k, v in raw.items()
            if k in ("node", "sql", "method", "path", "json", "process", "signal", "command", "until", "deadline",
                     "duration")}
    label = raw.get("label") or _default_label(action, args)
    return Step(action, str(label), args, name=str(raw.get("name", "")), irreversible=bool(raw.get("irreversible")),
                timeout_s=float(raw.get("timeout") or 30.0), after=raw.get("after"), verify=raw.get("verify"),
                unless=raw.get("unless"))


def _default_label(action: str, args: dict) -> str:
    if action == "sql":
        return f"SQL on {args.get('node')}: {args.get('sql')}"
    if action == "http":
        return f"{args.get('method', 'POST')} {args.get('path')}"
    if action == "signal":
        return f"{args.get('signal')} to {args.get('process')}"
    if action == "shell":
        return " ".join(args.get("command") or ())
    if action == "wait":
        return f"wait until {args.get('until')}"
    return f"watch {args.get('duration', 0):g}s"


def _custom(cfg: DrillConfig, config: Config, snap: Snapshot) -> Plan:
    targets = _static_targets(cfg, config)
    return Plan(
        drill=Drill(cfg.name, "custom", cfg.description or "steps of your own", targets,
                    irreversible=any(s.get("irreversible") for s in cfg.steps)),
        target=cfg.target or "?", steady_state=(), preflight=(),
        method=tuple(_step(s) for s in cfg.steps), rollback=tuple(_step(s) for s in cfg.rollback),
        topology=builtin.topology(snap))

"""The `[drills]` table and the `[[drill]]` tables of the config (structure only).

Permission is opt-in per target: `[drills] allow` names the targets drills may act
on, and a drill on any other target is disabled with one notice (RELIABILITY.md case
16) while the rest of the config still loads. What a step or a condition means is the
drill engine's business (dashboard/drills/); here only shapes, types, names and
durations are checked, so every mistake is reported at once with its key path.
"""

from __future__ import annotations

import re
from typing import Any

from dashboard.config_types import DrillConfig, DrillsSettings

BUILTINS = ("failover", "rejoin", "redis-outage", "upstream-fault", "replica-lag")
DRILLS_KEYS = {"allow", "state_dir", "processes"}
DRILL_KEYS = {"name", "use", "target", "description", "steady_state", "step", "rollback", "commands",
              "process", "duration", "writes_per_s", "max_candidate_lag_bytes", "failure_rate"}
STEP_KEYS = {"do", "label", "name", "irreversible", "timeout", "after", "unless", "verify",
             "node", "sql", "method", "path", "json", "process", "signal", "command", "until", "deadline",
             "duration"}
# Keys that act on one side only: the runner reads `after` and `unless` of rollback steps
# alone, and `irreversible` of method steps alone (a rollback is never undone itself).
_ROLLBACK_ONLY = {"after": "names the method step whose start this rollback step undoes",
                  "unless": "skips this rollback step while its condition holds"}
_METHOD_ONLY = {"irreversible": "marks a method step that is never undone; a rollback step is not undone"}
_STRING_KEYS = {"label", "name", "after", "unless", "verify", "until", "node", "sql", "method", "path", "process",
                "signal"}
STEP_ACTIONS = ("sql", "http", "signal", "shell", "wait", "observe")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}")


def _argv(c, path: str, value: Any) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
        c.fail(path, "expected a non-empty array of strings (a command and its arguments)", value)
        return None
    return tuple(value)


def settings(c, doc: dict, target_names: set[str]) -> DrillsSettings:
    t = c.table("drills", doc.get("drills", {}), DRILLS_KEYS)
    allow = c.get(t, "drills", "allow", list, [])
    if not all(isinstance(a, str) for a in allow):
        c.fail("drills.allow", "expected an array of target names", allow)
        allow = []
    for name in allow:
        if name not in target_names:
            c.fail("drills.allow", f"no target named {name!r} (targets: {', '.join(sorted(target_names))})", name)
    return DrillsSettings(allow=tuple(allow), state_dir=c.get(t, "drills", "state_dir", str),
                          processes=c.get(t, "drills", "processes", str))


def drills(c, doc: dict) -> tuple[DrillConfig, ...]:
    entries = doc.get("drill", [])
    if not isinstance(entries, list) or not all(isinstance(d, dict) for d in entries):
        c.fail("drill", "expected an array of tables ([[drill]])", show_value=False)
        return ()
    out, seen = [], {}
    for i, entry in enumerate(entries):
        p = f"drill[{i}]"
        t = c.table(p, entry, DRILL_KEYS)
        name = c.get(t, p, "name", str, required=True)
        if isinstance(name, str):
            if not _NAME.fullmatch(name):
                c.fail(f"{p}.name", "use letters, digits, '_', '-', '.', ':' (max 63)", name)
            elif name in seen:
                c.fail(f"{p}.name", f"duplicate name (also {seen[name]})", name)
            seen[name] = p
        use = c.get(t, p, "use", str, "custom" if "step" in t else None)
        if use is None:
            c.fail(p, f"give use = one of {', '.join(BUILTINS)}, or [[{p}.step]] tables for a drill of your own",
                   show_value=False)
        elif use != "custom" and use not in BUILTINS:
            c.fail(f"{p}.use", f"unknown drill; expected one of {', '.join(BUILTINS)} (or steps of your own)", use)
        steps = _steps(c, f"{p}.step", t.get("step", []), _ROLLBACK_ONLY, "[[drill.rollback]]")
        rollback = _steps(c, f"{p}.rollback", t.get("rollback", []), _METHOD_ONLY, "[[drill.step]]")
        if use == "custom" and not steps:
            c.fail(f"{p}.step", "a drill of your own needs at least one [[drill.step]]", show_value=False)
        if use not in (None, "custom") and steps:
            c.fail(f"{p}.step", f"a built-in drill ({use}) has its own steps; configure it with its options",
                   show_value=False)
        states = c.get(t, p, "steady_state", list, [])
        if not all(isinstance(s, str) for s in states):
            c.fail(f"{p}.steady_state", "expected an array of conditions (strings)", states)
            states = []
        commands = c.get(t, p, "commands", dict, {})
        argvs = {k: _argv(c, f"{p}.commands.{k}", v) for k, v in commands.items()}
        options = {k: t[k] for k in ("process", "writes_per_s", "max_candidate_lag_bytes", "failure_rate")
                   if k in t}
        _check_options(c, p, options)
        duration = c.duration(t, f"{p}.", "duration", None)
        if isinstance(name, str) and use is not None:
            out.append(DrillConfig(
                name=name, use=use, target=c.get(t, p, "target", str),
                description=c.get(t, p, "description", str, ""), steady_state=tuple(states),
                steps=steps, rollback=rollback, commands={k: v for k, v in argvs.items() if v},
                options={**options, **({"duration": duration} if duration is not None else {})}, path=p))
    return tuple(out)


def _check_options(c, p: str, options: dict) -> None:
    numbers = {"writes_per_s": (1, 1000), "max_candidate_lag_bytes": (0, 2 ** 40), "failure_rate": (0, 1)}
    for key, (low, high) in numbers.items():
        value = options.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            c.fail(f"{p}.{key}", f"must be a number from {low} to {high}", value)
            options.pop(key)
    if "process" in options and not isinstance(options["process"], str):
        c.fail(f"{p}.process", "expected a process name (as the process table lists it)", options["process"])
        options.pop("process")


def _steps(c, path: str, value: Any, elsewhere: dict[str, str], side: str) -> tuple[dict, ...]:
    if not isinstance(value, list) or not all(isinstance(s, dict) for s in value):
        c.fail(path, "expected an array of tables", show_value=False)
        return ()
    out = []
    for i, raw in enumerate(value):
        p = f"{path}[{i}]"
        t = c.table(p, raw, STEP_KEYS)
        action = c.get(t, p, "do", str, required=True)
        if action is not None and action not in STEP_ACTIONS:
            c.fail(f"{p}.do", f"unknown action; expected one of {', '.join(STEP_ACTIONS)}", action)
            continue
        needs = {"sql": ("node", "sql"), "http": ("path",), "signal": ("process", "signal"),
                 "shell": ("command",), "wait": ("until",), "observe": ("duration",)}.get(action, ())
        for key in needs:
            if key not in t:
                c.fail(f"{p}.{key}", f"a {action} step needs {key}", show_value=False)
        step = dict(t)
        for key in [k for k in t if k in _STRING_KEYS]:
            if c.get(t, p, key, str) is None:
                step.pop(key)       # a condition or a label that is not text would crash the catalog
        if "json" in t and not isinstance(t["json"], (dict, list)):
            c.fail(f"{p}.json", "expected a table or an array (the request's JSON body)", t["json"])
        for key in ("timeout", "deadline", "duration"):
            if key in t:
                step[key] = c.duration(t, f"{p}.", key, None)
        if "command" in t:
            step["command"] = _argv(c, f"{p}.command", t["command"])
        if "irreversible" in t:
            c.get(t, p, "irreversible", bool)
        for key in (k for k in elsewhere if k in t):
            c.fail(f"{p}.{key}", f"only applies to a {side} step (it {elsewhere[key]})", t[key])
        out.append(step)
    return tuple(out)

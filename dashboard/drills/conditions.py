"""Conditions on the engine's own figures: `replica/replica-1.lag_bytes < 1MiB`.

A drill's steady state, its pre-flight and its wait-until steps are judged on the
figures the screen and `check --json` show, through one small grammar:

    <kind>/<name>.<field> <op> <value>     a component's state (OK, DEGRADED...) or one
                                           of its figures (`breaker/upstream.state == open`)
    kpi.<name> <op> <value>                a KPI's value; kpi.<name>.met == true
    overall <op> <state>                   the snapshot's worst state

`op` is one of == != < <= > >=; a value is a number (with an optional unit: B, KiB,
MiB, GiB, ms, s, %) or a word (a state, a role). Several components of one kind and
name (one per source) must all hold. A figure nobody reports makes the condition not
met, and says so: a condition is never met by default.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass

from dashboard.model import Snapshot, State

_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
        ">=": operator.ge}
_UNITS = {"b": 1, "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3, "ms": 0.001, "s": 1, "%": 0.01}
_GRAMMAR = re.compile(r"^\s*(?P<subject>[^\s<>=!]+)\s*(?P<op>==|!=|<=|>=|<|>)\s*(?P<value>\S+)\s*$")
# A target's name may hold dots ("db.eu"): the field is what follows the last one.
_SUBJECT = re.compile(r"^(?:(?P<kind>[a-z]+)/(?P<name>\S+)\.(?P<field>[A-Za-z0-9_]+)"
                      r"|kpi\.(?P<kpi>[a-z_]+)(?P<met>\.met)?|(?P<overall>overall))$")
_STATE_ORDER = {s.value: s.severity for s in State}


class ConditionError(ValueError):
    """A condition that does not parse: one line naming it."""


@dataclass(frozen=True)
class Condition:
    text: str
    subject: str
    op: str
    value: float | str | bool

    @classmethod
    def parse(cls, text: str) -> "Condition":
        match = _GRAMMAR.match(text or "")
        if not match or not _SUBJECT.match(match["subject"]):
            raise ConditionError(f"cannot read condition {text!r}: expected '<kind>/<name>.<field> <op> <value>', "
                                 "'kpi.<name> <op> <value>' or 'overall <op> <STATE>'")
        value = _value(match["value"])
        return cls(text.strip(), match["subject"], match["op"], value.upper() if _is_state(value) else value)

    def judge(self, snap: Snapshot | None) -> tuple[bool, str]:
        """(met, what was seen). Not met when the figure is missing or not comparable."""
        if snap is None:
            return False, "no snapshot yet"
        observed = _observe(self.subject, snap, row_state=_is_state(self.value))
        if isinstance(observed, str) and observed.startswith("?"):
            return False, observed[1:]
        values = observed if isinstance(observed, list) else [observed]
        seen = ", ".join(_show(v) for v in values)
        try:
            met = all(_compare(v, self.op, self.value) for v in values)
        except TypeError:
            return False, f"{seen} is not comparable with {self.value!r}"
        return met, seen


def _value(text: str) -> float | str | bool:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    match = re.fullmatch(r"(-?\d+(?:\.\d+)?(?:e-?\d+)?)([a-z%]*)", low)
    if match and (not match[2] or match[2] in _UNITS):
        return float(match[1]) * _UNITS.get(match[2] or "b", 1)
    return text


def _is_state(value) -> bool:
    return isinstance(value, str) and value.upper() in _STATE_ORDER


def _observe(subject: str, snap: Snapshot, row_state: bool = True):
    m = _SUBJECT.match(subject)
    if m["overall"]:
        return snap.overall.value
    if m["kpi"]:
        kpi = next((k for k in snap.kpis if k.name == m["kpi"]), None)
        if kpi is None:
            return f"?no KPI named {m['kpi']}"
        if m["met"]:
            return f"?KPI {kpi.name} unknown" if kpi.met is None else kpi.met
        return f"?KPI {kpi.name} has no value ({kpi.detail or 'unknown'})" if kpi.value is None else kpi.value
    rows = [c for c in snap.components if c.kind.value == m["kind"] and c.name == m["name"]]
    if not rows:
        return f"?no {m['kind']} named {m['name']} on screen"
    values = []
    for row in rows:
        # `.state == OK` is the row's state; `.state == open` a breaker's own state figure.
        value = row.state.value if m["field"] == "state" and row_state else row.metrics.get(m["field"])
        if value is None:
            return f"?{m['kind']}/{m['name']} has no figure {m['field']} ({row.state.value})"
        values.append(value)
    return values


def compare(seen, op: str, wanted) -> bool:
    """One comparison as conditions make it (a non-finite figure never meets anything)."""
    try:
        return _compare(seen, op, wanted)
    except TypeError:
        return False


def _compare(seen, op: str, wanted) -> bool:
    if isinstance(seen, float) and not math.isfinite(seen):
        return False          # a non-finite figure never meets anything
    if isinstance(wanted, str) and isinstance(seen, str) and seen in _STATE_ORDER and wanted.upper() in _STATE_ORDER:
        if op in ("==", "!="):
            return _OPS[op](seen, wanted.upper())
        return _OPS[op](_STATE_ORDER[seen], _STATE_ORDER[wanted.upper()])   # by severity
    if isinstance(wanted, bool) or isinstance(seen, bool):
        return _OPS[op](bool(seen), bool(wanted)) if op in ("==", "!=") else False
    if isinstance(wanted, float) and isinstance(seen, (int, float)):
        return _OPS[op](float(seen), wanted)
    if op in ("==", "!="):
        return _OPS[op](str(seen), str(wanted))
    raise TypeError


def _show(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)

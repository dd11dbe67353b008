"""Snapshots as plain data, and the deltas between two of them.

A recording stores what the engine built, not what a screen drew: `encode()` turns a
`Snapshot` into JSON-ready dicts and lists (enums by value), `decode()` builds the
same `Snapshot` back, so a replay feeds the very widgets a live dashboard feeds.

Every string passes through `redact()` on the way in: the recording is one more place
a secret must never reach, and the engine's messages are redacted already, so this is
the backstop, not the rule.

`diff(a, b)` and `patch(a, d)` are a structural delta on that plain data: between two
snapshots of one fleet only figures and ages move, so a delta is a few hundred bytes
where a snapshot is tens of kilobytes. `patch(a, diff(a, b)) == b` for any two values
(tests/test_recording_codec.py checks it with hypothesis).
"""

from __future__ import annotations

from typing import Any, Mapping

from ..model import Alarm, Component, Event, Kind, Kpi, Snapshot, SourceStatus, State
from ..redact import redact

# Delta markers. A dict delta names changed keys; one of its own keys starting with "$"
# is escaped so that a figure named "$set" can never be read as a marker.
_DEL = "$del"       # keys removed
_LIST = "$list"     # a list of the same length changed at some positions: {index: delta}
_SET = "$set"       # a whole new value (a list whose length changed, a type that changed)


def encode(snap: Snapshot) -> dict:
    """The snapshot as plain data; histories are left out (a recording is its own history)."""
    return {
        "generated_at": snap.generated_at,
        "starting": snap.starting,
        "components": [_component(c) for c in snap.components],
        "service": [_component(c) for c in snap.service],
        "sources": [{
            "target": _text(s.target), "source": s.source, "state": s.state.value, "reason": _text(s.reason),
            "age_s": s.age_s, "latency_ms": s.latency_ms, "consecutive_failures": s.consecutive_failures,
            "next_probe_in_s": s.next_probe_in_s, "warning": _text(s.warning),
            "rows_omitted": dict(s.rows_omitted), "insecure": s.insecure,
        } for s in snap.sources],
        "kpis": [{"name": k.name, "label": k.label, "value": k.value, "target": k.target, "met": k.met,
                  "detail": _text(k.detail)} for k in snap.kpis],
        "events": [{"at": e.at, "target": _text(e.target), "message": _text(e.message),
                    "state": e.state.value if e.state else None} for e in snap.events],
        "alarms": [{"text": _text(a.text), "state": a.state.value} for a in snap.alarms],
    }


def decode(data: Mapping[str, Any]) -> Snapshot:
    """The `Snapshot` that `encode()` was given (without histories). Raises KeyError,
    ValueError or TypeError on data that no `encode()` wrote."""
    return Snapshot(
        generated_at=float(data["generated_at"]),
        starting=bool(data.get("starting", False)),
        components=tuple(_decode_component(c) for c in data["components"]),
        service=tuple(_decode_component(c) for c in data.get("service", ())),
        sources=tuple(SourceStatus(
            target=s["target"], source=s["source"], state=State(s["state"]), reason=s["reason"],
            age_s=s["age_s"], latency_ms=s["latency_ms"], consecutive_failures=int(s["consecutive_failures"]),
            next_probe_in_s=s["next_probe_in_s"], warning=s.get("warning"),
            rows_omitted=dict(s.get("rows_omitted") or {}), insecure=bool(s.get("insecure", False)),
        ) for s in data["sources"]),
        kpis=tuple(Kpi(name=k["name"], label=k["label"], value=k["value"], target=k["target"], met=k["met"],
                       detail=k.get("detail")) for k in data["kpis"]),
        events=tuple(Event(at=float(e["at"]), target=e["target"], message=e["message"],
                           state=State(e["state"]) if e.get("state") else None) for e in data.get("events", ())),
        alarms=tuple(Alarm(text=a["text"], state=State(a["state"])) for a in data.get("alarms", ())),
    )


def _component(c: Component) -> dict:
    return {
        "kind": c.kind.value, "name": _text(c.name), "state": c.state.value, "reason": _text(c.reason),
        "source": c.source, "target": _text(c.target), "age_s": c.age_s, "metrics": _figures(c.metrics),
        "detail": _text(c.detail), "since_s": c.since_s, "last_error": _text(c.last_error),
        "next_probe_in_s": c.next_probe_in_s, "warning": _text(c.warning),
    }


def _decode_component(c: Mapping[str, Any]) -> Component:
    return Component(
        kind=Kind(c["kind"]), name=c["name"], state=State(c["state"]), reason=c["reason"], source=c["source"],
        target=c["target"], age_s=c["age_s"], metrics=dict(c["metrics"]), detail=c.get("detail"),
        since_s=c.get("since_s"), last_error=c.get("last_error"), next_probe_in_s=c.get("next_probe_in_s"),
        warning=c.get("warning"),
    )


def _figures(metrics: Mapping[str, Any]) -> dict:
    """Figures are numbers, booleans, None or words (a role, a breaker state)."""
    return {str(k): _text(v) if isinstance(v, str) else v for k, v in metrics.items()}


def _text(value: str | None) -> str | None:
    return None if value is None else redact(value)


def diff(old: Any, new: Any) -> Any:
    """A delta that `patch(old, ...)` turns into `new`. Call only when old != new."""
    if isinstance(old, dict) and isinstance(new, dict):
        changed = {_escape(k): diff(old[k], v) if k in old else {_SET: v}
                   for k, v in new.items() if k not in old or not _same(old[k], v)}
        removed = [k for k in old if k not in new]
        if removed:
            changed[_DEL] = removed
        return changed
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return {_LIST: {str(i): diff(a, b) for i, (a, b) in enumerate(zip(old, new)) if not _same(a, b)}}
    return {_SET: new}


def patch(old: Any, delta: Any) -> Any:
    """`old` with `delta` (from `diff`) applied; `old` itself is left as it was."""
    if _SET in delta:
        return delta[_SET]
    if _LIST in delta:
        out = list(old)
        for index, sub in delta[_LIST].items():
            out[int(index)] = patch(out[int(index)], sub)
        return out
    out = {k: v for k, v in old.items() if k not in delta.get(_DEL, ())}
    for key, sub in delta.items():
        if key != _DEL:
            key = _unescape(key)
            out[key] = patch(out.get(key), sub)
    return out


def _same(a: Any, b: Any) -> bool:
    """Equal, and of one type (1 == 1.0 == True in Python, not in a recording); NaN is
    the same as NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    if isinstance(a, (dict, list)):
        return _same_items(a, b)
    return a == b


def _same_items(a: dict | list, b: dict | list) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))


def _escape(key: str) -> str:
    return "$" + key if key.startswith("$") else key


def _unescape(key: str) -> str:
    return key[1:] if key.startswith("$$") else key

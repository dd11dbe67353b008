"""The registry of component kinds: each maps to its figures, derivation and thresholds.

Adding a kind means one module here and one line in KINDS. A kind module has:
METRIC_KEYS (its `check --json` contract keys), HISTORY (figures kept as history),
derive(cur, prev, dt) -> figures, assess(figures, thresholds) -> (State, reason),
brief(figures) -> one line for `check`'s table; optionally limits(figures,
thresholds) -> the figures it judges against a threshold (dashboard/hysteresis.py:
assess returns `crossed(limits(...))` after its hard facts, and the engine holds a
tripped limit DEGRADED until it has recovered), relate(components, thresholds, memory,
now) -> components (judgements across rows, e.g. a cache's layers, a replica's lag
behind its primary; `memory(row)` is
the row's threshold memory, None to judge without one) and banners(components) ->
fleet-wide `Alarm`s (e.g.
split-brain), each with the state it stands for in `Snapshot.overall`.
"""

from __future__ import annotations

from types import ModuleType

from dashboard.kinds import batcher, breaker, cache, cdn, edge, replica, service
from dashboard.model import Alarm, Kind

KINDS: dict[Kind, ModuleType] = {
    Kind.REPLICA: replica,
    Kind.BREAKER: breaker,
    Kind.CACHE: cache,
    Kind.BATCHER: batcher,
    Kind.EDGE: edge,
    Kind.CDN: cdn,
    Kind.SERVICE: service,
}


def relate_all(components: list, thresholds, memory=None, now: float = 0.0) -> list:
    """Every kind's cross-row judgement, in registry order; rows keep their order."""
    for module in KINDS.values():
        relate = getattr(module, "relate", None)
        if relate is not None:
            components = relate(components, thresholds, memory, now)
    return components


def banners_of(components: list) -> tuple[Alarm, ...]:
    out: tuple[Alarm, ...] = ()
    for module in KINDS.values():
        banners = getattr(module, "banners", None)
        if banners is not None:
            out += banners(components)
    return out


def history_figures(kind: Kind) -> tuple[str, ...]:
    return KINDS[kind].HISTORY


def contract_metrics(kind: Kind, metrics: dict) -> dict:
    """The metrics of `check --json` for a kind: every contract key present (None if unknown)."""
    keys = KINDS[kind].METRIC_KEYS
    out = {key: metrics.get(key) for key in keys}
    out.update({k: v for k, v in metrics.items() if k not in out and not k.startswith("_")})
    return out

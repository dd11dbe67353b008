"""The registry of component kinds: each maps to its figures, derivation and thresholds.

Adding a kind means one module here with METRIC_KEYS, derive() and assess(), and one
line in KINDS.
"""

from __future__ import annotations

from types import ModuleType

from dashboard.kinds import batcher, breaker, cache, cdn, edge, replica, service
from dashboard.model import Kind

KINDS: dict[Kind, ModuleType] = {
    Kind.REPLICA: replica,
    Kind.BREAKER: breaker,
    Kind.CACHE: cache,
    Kind.BATCHER: batcher,
    Kind.EDGE: edge,
    Kind.CDN: cdn,
    Kind.SERVICE: service,
}


def contract_metrics(kind: Kind, metrics: dict) -> dict:
    """The metrics of `check --json` for a kind: every contract key present (None if unknown)."""
    keys = KINDS[kind].METRIC_KEYS
    out = {key: metrics.get(key) for key in keys}
    out.update({k: v for k, v in metrics.items() if k not in out and not k.startswith("_")})
    return out

"""What scaledash judged, as Prometheus metrics: `scaledash daemon --metrics ADDR`.

Alertmanager and Grafana can then use the states and KPIs scaledash already worked out
(thresholds, hysteresis, split-brain) instead of every team rewriting them in PromQL.
The exposition is prometheus-client's (already a dependency, for parsing /metrics): a
custom collector reads the latest snapshot at scrape time, and the library's threaded
WSGI server answers, so the poller's event loop never serves a scrape.

    scaledash_component_state{kind,name,target,detail,state}   1 for the row's state, 0 for the others
    scaledash_source_state{target,source,state}                 the same for each probe target
    scaledash_kpi{name}                                         the KPI's measured value (absent when unknown)
    scaledash_kpi_met{name}                                     1 met, 0 missed (absent when unknown)
    scaledash_overall_state{state}                              the fleet's overall state, as check's exit code reads it
    scaledash_snapshot_timestamp_seconds                        when the snapshot was made (epoch seconds)

One series per state, as kube-state-metrics does for a pod's phase, so a rule reads
`scaledash_component_state{state="DOWN"} == 1` without knowing a numbering.
"""

from __future__ import annotations

import math
import threading
from typing import Iterator

from dashboard.model import Snapshot, State
from dashboard.redact import safe_message

STATES = [s.value for s in State]


class SnapshotCollector:
    """A prometheus-client collector over the latest snapshot it was given."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snap: Snapshot | None = None

    def update(self, snap: Snapshot) -> None:
        with self._lock:
            self._snap = snap

    def collect(self) -> Iterator:
        from prometheus_client.core import GaugeMetricFamily

        with self._lock:
            snap = self._snap
        if snap is None:
            return
        rows = GaugeMetricFamily("scaledash_component_state", "A component's state: 1 for the state it is in",
                                 labels=["kind", "name", "target", "detail", "state"])
        seen: set[tuple[str, ...]] = set()
        for c in snap.components:
            key = (c.kind.value, _label(c.name), _label(c.target), _label(c.detail or ""))
            if key in seen:    # two rows the labels cannot tell apart: the first (the engine's order) wins
                continue
            seen.add(key)
            for state in STATES:
                rows.add_metric([*key, state], 1.0 if c.state.value == state else 0.0)
        yield rows
        sources = GaugeMetricFamily("scaledash_source_state", "A probe target's state: 1 for the state it is in",
                                    labels=["target", "source", "state"])
        for s in snap.sources:
            for state in STATES:
                sources.add_metric([_label(s.target), s.source, state], 1.0 if s.state.value == state else 0.0)
        yield sources
        kpi = GaugeMetricFamily("scaledash_kpi", "A KPI's measured value", labels=["name"])
        met = GaugeMetricFamily("scaledash_kpi_met", "1 when the KPI meets its target, 0 when it misses it",
                                labels=["name"])
        for k in snap.kpis:
            if k.value is not None and math.isfinite(k.value):
                kpi.add_metric([k.name], float(k.value))
            if k.met is not None:
                met.add_metric([k.name], 1.0 if k.met else 0.0)
        yield kpi
        yield met
        overall = GaugeMetricFamily("scaledash_overall_state", "The fleet's overall state: 1 for the state it is in",
                                    labels=["state"])
        for state in STATES:
            overall.add_metric([state], 1.0 if snap.overall.value == state else 0.0)
        yield overall
        yield GaugeMetricFamily("scaledash_snapshot_timestamp_seconds", "When the snapshot was made",
                                value=snap.generated_at)


def _label(text: str) -> str:
    return safe_message(text, 120)


def serve(collector: SnapshotCollector, host: str, port: int):
    """Answer /metrics on host:port from a daemon thread; returns the server (shutdown() stops it).
    Raises OSError when the address cannot be bound."""
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    server, _thread = start_http_server(port, host, registry)
    return server


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or "localhost": an address only this machine reaches."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_address(text: str) -> tuple[str, int]:
    """host:port, or a bare port (on 127.0.0.1); raises ValueError."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port or a port, e.g. 127.0.0.1:9465 (got {text!r})")
    return host, int(port)

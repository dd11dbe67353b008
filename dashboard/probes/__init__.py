"""The registry of probes: one module per source, built from the config's sections.

Adding a source means its module here and one line in `build_probes`.
"""

from __future__ import annotations

from dashboard.config import Config
from dashboard.probes.base import Probe


def build_probes(config: Config) -> list[Probe]:
    """One probe per configured target, each with the config's per-probe deadline.

    A driver is imported only when its kind is configured (redis-py alone is ~7 MB of
    resident memory, httpx ~2 MB): a dashboard on PostgreSQL only never loads them.
    """
    d = config.timeout
    probes: list[Probe] = []
    if config.replicas:
        from dashboard.probes.postgres import PostgresProbe
        probes += [PostgresProbe(t, d) for t in config.replicas]
    if config.caches:
        from dashboard.probes.redis import RedisProbe
        probes += [RedisProbe(t, d) for t in config.caches]
    for source in config.sources:
        if source.prometheus:
            from dashboard.probes.prometheus import PrometheusProbe
            probes.append(PrometheusProbe(source, d))
        else:
            from dashboard.probes.scrape import ScrapeProbe
            probes.append(ScrapeProbe(source, d))
    if config.edges:
        from dashboard.probes.edge import EdgeProbe
        probes += [EdgeProbe(t, d) for t in config.edges]
    if config.cdns:
        from dashboard.probes.cdn import CdnProbe
        probes += [CdnProbe(t, d) for t in config.cdns]
    for probe in probes:
        probe.interval = config.intervals.get(probe.target)
    return probes

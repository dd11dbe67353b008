"""The registry of probes: one module per source, built from the config's sections.

Adding a source means its module here and one line in `build_probes`.
"""

from __future__ import annotations

from dashboard.config import Config
from dashboard.probes.base import Probe


def build_probes(config: Config) -> list[Probe]:
    """One probe per configured target, each with the config's per-probe deadline."""
    from dashboard.probes.cdn import CdnProbe
    from dashboard.probes.edge import EdgeProbe
    from dashboard.probes.postgres import PostgresProbe
    from dashboard.probes.redis import RedisProbe

    d = config.timeout
    probes: list[Probe] = [PostgresProbe(t, d) for t in config.replicas]
    probes += [RedisProbe(t, d) for t in config.caches]
    for source in config.sources:
        if source.prometheus:
            from dashboard.probes.prometheus import PrometheusProbe
            probes.append(PrometheusProbe(source, d))
        else:
            from dashboard.probes.scrape import ScrapeProbe
            probes.append(ScrapeProbe(source, d))
    probes += [EdgeProbe(t, d) for t in config.edges]
    probes += [CdnProbe(t, d) for t in config.cdns]
    for probe in probes:
        probe.interval = config.intervals.get(probe.target)
    return probes

"""Where the load goes and what it asks for: read from the dashboard's config, nothing else.

A load test pointed at the wrong host is an incident of its own, so there is no default
host: the service is the `[service] url` of the config in `$SCALEDASH_CONFIG` (the
dashboard's lookup order otherwise), and without one the suite refuses to start. Edge
function calls go to the config's `[[edge]]` URLs with their methods and headers, else
to the service's `/functions/v1/hello`.

Pure Python with no Locust import, so tests can read it without gevent's patching.
"""

from __future__ import annotations

import bisect
import itertools
import os
import random
from dataclasses import dataclass

from dashboard import config as config_module
from dashboard.config_types import ConfigError, Secret
from dashboard.redact import safe_message

ITEM_COUNT = 1000          # the keys browsed and written (the lab seeds items 1..1000)
ZIPF_EXPONENT = 1.1


class NoTarget(Exception):
    """The config names no service to load: the one-line reason the suite refuses to start."""


@dataclass(frozen=True)
class EdgeCall:
    name: str
    url: str
    method: str
    headers: tuple[tuple[str, str], ...] = ()
    expect_status: int = 200


@dataclass(frozen=True)
class LoadTarget:
    config_path: str
    service_url: str
    edges: tuple[EdgeCall, ...]

    @property
    def realtime_url(self) -> str:
        """The service's /realtime WebSocket: ws(s):// for http(s)://."""
        return "ws" + self.service_url[len("http"):] + "/realtime"


def _revealed(value: str | Secret) -> str:
    return value.reveal() if isinstance(value, Secret) else value


def load_target(explicit: str | None = None) -> LoadTarget:
    """The stack to load, from the config; raises NoTarget (a one-line reason) when there is none."""
    path = config_module.find_config(explicit or os.environ.get("SCALEDASH_CONFIG"))
    try:
        config = config_module.load(str(path))
    except ConfigError as exc:
        raise NoTarget(f"cannot read the config: {safe_message(str(exc), 200)}") from None
    if config.service is None or not config.service.url:
        raise NoTarget(f"{safe_message(str(path), 200)} has no [service] url: refusing to send load "
                       "anywhere else (set [service] url to the stack to load)")
    service = config.service.url.rstrip("/")
    if not service.startswith(("http://", "https://")):
        raise NoTarget(f"[service] url must be http:// or https://, not {safe_message(service, 80)}")
    edges = tuple(EdgeCall(e.name, e.url, e.method.upper(), tuple((k, _revealed(v)) for k, v in e.headers),
                           e.expect_status) for e in config.edges)
    return LoadTarget(str(path), service, edges or (EdgeCall("hello", f"{service}/functions/v1/hello", "POST"),))


class ZipfKeys:
    """Item ids 1..n drawn with P(k) proportional to 1/k^s: a few hot keys take most reads."""

    def __init__(self, n: int = ITEM_COUNT, s: float = ZIPF_EXPONENT, seed: int = 7) -> None:
        self._cumulative = list(itertools.accumulate(1 / k ** s for k in range(1, n + 1)))
        # Hot keys scattered over the id space (the lab's traffic warms the same ones).
        self._ids = random.Random(seed).sample(range(1, n + 1), n)

    def draw(self) -> int:
        x = random.random() * self._cumulative[-1]
        return self._ids[min(bisect.bisect_left(self._cumulative, x), len(self._ids) - 1)]

"""A Prometheus server scraping fixed targets, queried over its HTTP API."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

from dashboard.lab.servers.process import (
    LOCALHOST,
    OneProcessServer,
    Process,
    ServerError,
    free_port,
    require_binary,
    spawn,
    wait_http,
)


class PrometheusServer(OneProcessServer):
    """A Prometheus scraping fixed targets: job name -> ["127.0.0.1:port", ...]."""

    def __init__(self, base_dir: Path, targets: dict[str, list[str]], scrape_interval: str = "1s",
                 *, port: int | None = None):
        self.base_dir = Path(base_dir).resolve()
        self.targets = targets
        self.scrape_interval = scrape_interval
        self.port = port or 0
        self.process: Process | None = None

    def _write_config(self) -> Path:
        # JSON is valid YAML, so no YAML library is needed.
        config = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
                # Must not exceed the interval; Prometheus' 10s default would.
                "scrape_timeout": self.scrape_interval,
            },
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": list(addrs)}]}
                for job, addrs in self.targets.items()
            ],
        }
        path = self.base_dir / "prometheus.yml"
        path.write_text(json.dumps(config, indent=2) + "\n")
        return path

    def start(self) -> "PrometheusServer":
        binary = require_binary("prometheus")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        argv = [binary, f"--config.file={self._write_config()}",
                f"--storage.tsdb.path={self.base_dir / 'prometheus-data'}",
                f"--web.listen-address={LOCALHOST}:{self.port}"]
        self.process = spawn("prometheus", argv, self.port, self.base_dir / "prometheus.log",
                             cwd=self.base_dir)
        wait_http(self.process, f"{self.url()}/-/ready", ok=lambda status: status == 200)
        return self

    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def query(self, promql: str, timeout: float = 5.0) -> list[dict]:
        """Instant query via the HTTP API; returns data.result."""
        url = f"{self.url()}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = json.load(resp)
        if body.get("status") != "success":
            raise ServerError(f"prometheus query {promql!r} failed: {body.get('error')}")
        return body["data"]["result"]

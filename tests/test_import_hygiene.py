"""The core is reachable without the TUI: config, model, probes, engine, lab, check.

Each headless module is imported in a fresh interpreter, which then reports whether
`textual` or `widgets` got loaded (STYLE.md habit 15). prometheus_api_client is
checked too: it costs ~130 ms and must load only when a Prometheus source is used.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEADLESS = [
    "dashboard.config", "dashboard.model", "dashboard.redact", "dashboard.engine", "dashboard.kpi",
    "dashboard.output", "dashboard.cli", "dashboard.probes.postgres", "dashboard.probes.redis",
    "dashboard.probes.scrape", "dashboard.probes.prometheus", "dashboard.lab.servers",
    "dashboard.lab.stack", "dashboard.crash",
]


@pytest.mark.parametrize("module", HEADLESS)
def test_headless_module_does_not_import_textual(module):
    code = (f"import sys, importlib; importlib.import_module({module!r}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('textual', 'widgets', 'prometheus_api_client')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"{module} imported {out.stdout.strip()}"


def test_drivers_load_only_for_the_kinds_configured(tmp_path):
    """A config with PostgreSQL only never loads redis-py, httpx or prometheus-api-client."""
    config = tmp_path / "scaledash.toml"
    config.write_text('[[replica]]\nname = "primary"\ndsn = "postgresql://monitor@127.0.0.1:1/postgres"\n')
    code = ("import sys; from dashboard.config import load; from dashboard.engine import Engine; "
            f"Engine(load({str(config)!r})); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'asyncpg', 'redis', 'httpx', 'prometheus_api_client', 'requests'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['asyncpg']"

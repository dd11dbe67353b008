"""The core is reachable without the TUI: config, model, probes, engine, lab, check.

Each headless module is imported in a fresh interpreter, which then reports whether
`textual` or `widgets` got loaded (STYLE.md habit 15). prometheus_api_client is
checked too: it costs ~130 ms and must load only when a Prometheus source is used.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path


# The modules that draw: everything else under dashboard/ is the headless core.
TUI_MODULES = {"dashboard.app", "dashboard.screens", "dashboard.suites_screen", "dashboard.drills_screen",
               "dashboard.replay_app", "dashboard.serve"}


def headless_modules() -> list[str]:
    """Every module of the dashboard package but the TUI's, found by walking it, so a new
    module is checked the day it lands. `__main__` modules and locustfiles run when
    imported (a locustfile imports Locust, which gevent-patches the process): skipped."""
    import dashboard

    found = []
    for info in pkgutil.walk_packages(dashboard.__path__, "dashboard."):
        if info.name in TUI_MODULES or info.name.endswith((".__main__", ".locustfile")):
            continue
        found.append(info.name)
    return sorted(found)


def test_the_walk_finds_the_core():
    modules = headless_modules()
    assert {"dashboard.engine", "dashboard.probes.postgres", "dashboard.lab.stack", "dashboard.cli"} <= set(modules)
    assert not TUI_MODULES & set(modules)


def test_headless_modules_do_not_import_textual():
    """All headless modules imported together load none of them, so none does alone."""
    modules = headless_modules()
    code = ("import sys, importlib\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('textual', 'widgets', 'prometheus_api_client')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"the core imported {out.stdout.strip()}"


def test_import_contracts_hold():
    """import-linter's contracts in pyproject.toml: core without TUI, widgets without I/O,
    lab and product apart, no cycles between sibling modules."""
    lint = Path(sys.executable).with_name("lint-imports")
    assert lint.exists(), "import-linter is missing: pip install -e '.[test]'"
    out = subprocess.run([str(lint)], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 0, out.stdout[-3000:]


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

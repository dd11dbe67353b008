"""Which suites exist: the shipped ones, found by convention, and the configured ones.

A shipped suite is a directory `dashboard/suites/shipped/<name>/` holding
`conftest.py` and `test_*.py` (pytest) or `locustfile.py` (Locust), described by a
`SUITE` dict in its `__init__.py`:

    SUITE = {"kind": "pytest", "description": "...", "generates_load": False, "timeout_s": 600}

`SUITE` is read with `ast`, never imported, so listing suites runs no suite code and a
directory outside the package (a test's tmp dir) is read the same way. A configured
`[[suite]]` is pytest when its command runs pytest, else a command judged by its exit
code. A configured suite named like a shipped one replaces it.
"""

from __future__ import annotations

import ast
import math
import os
from dataclasses import dataclass
from pathlib import Path

from dashboard.config_types import Config, SuiteTarget
from dashboard.redact import safe_message
from dashboard.suites.results import SuiteKind

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
DEFAULT_TIMEOUT_S = 600.0
# Locust runs for its run time; the rest is start-up and the final stats write.
LOCUST_DEFAULTS = {"users": 2, "spawn_rate": 2, "run_time_s": 30}
_LOCUST_SLACK_S = 60.0


class UnknownSuite(LookupError):
    """No suite of that name: the message lists the ones there are."""


@dataclass(frozen=True)
class SuiteSpec:
    """One runnable suite, as `suite list` shows it and the runner starts it."""

    name: str
    kind: SuiteKind
    source: str                          # "shipped" | "configured"
    description: str = ""
    directory: Path | None = None        # shipped: the suite's directory
    command: tuple[str, ...] = ()        # configured: the command as written
    cwd: str | None = None               # configured: where it runs
    generates_load: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    users: int | None = None             # Locust only
    spawn_rate: float | None = None
    run_time_s: float | None = None
    host: str | None = None
    plugins: tuple[str, ...] = ()        # shipped pytest: plugins loaded with -p (autoload is off)


def _suite_literal(init: Path) -> tuple[dict, str]:
    """The `SUITE` dict and the module docstring of a suite's __init__.py (either may be empty)."""
    try:
        tree = ast.parse(init.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return {}, ""
    doc = ast.get_docstring(tree) or ""
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) and node.value else []
        if any(isinstance(t, ast.Name) and t.id == "SUITE" for t in targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return {}, doc
            return (value if isinstance(value, dict) else {}), doc
    return {}, doc


def _number(value: object, default: float | None) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    return default


def is_shipped_dir(directory: Path) -> bool:
    return directory.is_dir() and ((directory / "locustfile.py").is_file()
                                   or any(directory.glob("test_*.py")))


def read_shipped(directory: Path) -> SuiteSpec:
    """A SuiteSpec from a shipped-style directory (the package's, or any other)."""
    directory = directory.resolve()
    meta, doc = _suite_literal(directory / "__init__.py")
    default_kind = SuiteKind.LOCUST if (directory / "locustfile.py").is_file() else SuiteKind.PYTEST
    try:
        kind = SuiteKind(meta.get("kind", default_kind.value))
    except ValueError:
        kind = default_kind
    if kind is SuiteKind.COMMAND:
        kind = default_kind
    description = meta.get("description") if isinstance(meta.get("description"), str) else \
        (doc.strip().splitlines() or [""])[0]
    locust = kind is SuiteKind.LOCUST
    run_time = _number(meta.get("run_time_s"), LOCUST_DEFAULTS["run_time_s"]) if locust else None
    default_timeout = (run_time + _LOCUST_SLACK_S) if run_time else DEFAULT_TIMEOUT_S
    plugins = meta.get("plugins", ())
    return SuiteSpec(
        name=directory.name, kind=kind, source="shipped", description=safe_message(description, 120),
        directory=directory, generates_load=bool(meta.get("generates_load", locust)),
        timeout_s=_number(meta.get("timeout_s"), default_timeout),
        users=int(_number(meta.get("users"), LOCUST_DEFAULTS["users"])) if locust else None,
        spawn_rate=_number(meta.get("spawn_rate"), LOCUST_DEFAULTS["spawn_rate"]) if locust else None,
        run_time_s=run_time, host=meta.get("host") if isinstance(meta.get("host"), str) else None,
        plugins=tuple(p for p in plugins if isinstance(p, str)) if isinstance(plugins, (list, tuple)) else (),
    )


def shipped_suites(root: Path = SHIPPED_DIR) -> tuple[SuiteSpec, ...]:
    if not root.is_dir():
        return ()
    return tuple(read_shipped(d) for d in sorted(root.iterdir())
                 if not d.name.startswith(("_", ".")) and is_shipped_dir(d))


def runs_pytest(command: tuple[str, ...]) -> bool:
    """`pytest ...`, `py.test ...`, `python -m pytest ...` (any python), `.venv/bin/pytest ...`."""
    if not command:
        return False
    first = os.path.basename(command[0])
    if first in ("pytest", "py.test"):
        return True
    return first.startswith("python") and len(command) > 2 and command[1] == "-m" and command[2] == "pytest"


def configured_suite(target: SuiteTarget) -> SuiteSpec:
    kind = SuiteKind.PYTEST if runs_pytest(target.command) else SuiteKind.COMMAND
    shown = safe_message(" ".join(target.command), 120)
    return SuiteSpec(name=target.name, kind=kind, source="configured", description=shown,
                     command=target.command, cwd=target.cwd)


def all_suites(config: Config | None, shipped_root: Path = SHIPPED_DIR) -> tuple[SuiteSpec, ...]:
    """Shipped suites (unless a configured one takes the name), then the configured ones."""
    configured = tuple(configured_suite(t) for t in (config.suites if config else ()))
    taken = {s.name for s in configured}
    return tuple(s for s in shipped_suites(shipped_root) if s.name not in taken) + configured


def find_suite(name: str, config: Config | None, shipped_root: Path = SHIPPED_DIR) -> SuiteSpec:
    suites = all_suites(config, shipped_root)
    for spec in suites:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in suites) or "none"
    raise UnknownSuite(f"no suite named {safe_message(name, 80)!r} (suites: {known})")

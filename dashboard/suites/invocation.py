"""How a suite is started: its argv, working directory, extra environment and report files.

Kept apart from the runner (which supervises whatever it is given) so the command a
suite gets is plain data a test can read. Shipped pytest suites run isolated from the
user's and the repository's pytest setup: their own (or an empty) pytest.ini, no cache,
no plugin autoload (a plugin installed for something else, such as looptime, can break
every test), and only the plugins the suite names in `SUITE["plugins"]`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from dashboard.redact import safe_message
from dashboard.suites.catalog import SuiteSpec
from dashboard.suites.results import SuiteKind

PROGRESS_PLUGIN = "scaledash_pytest_progress"
PROGRESS_FD_VARIABLE = "SCALEDASH_PROGRESS_FD"
INSTALL_HINT = "pip install 'scaledash[suites]'"


class SuiteUnavailable(Exception):
    """The suite cannot be started (missing tool, missing command or directory): exit 3."""


@dataclass(frozen=True)
class Invocation:
    argv: tuple[str, ...]
    cwd: str
    env: dict[str, str] = field(default_factory=dict)   # set by the runner, on top of the allow-list
    junit_path: Path | None = None
    locust_csv_prefix: Path | None = None


def _require_module(module: str, what: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise SuiteUnavailable(f"{what} is not installed: {INSTALL_HINT}")


def _progress_env(workdir: Path) -> dict[str, str]:
    """The progress plugin, copied under its own module name, first on PYTHONPATH."""
    shutil.copyfile(Path(__file__).with_name("pytest_progress.py"), workdir / f"{PROGRESS_PLUGIN}.py")
    rest = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": str(workdir) + (os.pathsep + rest if rest else "")}


def _shipped_pytest(spec: SuiteSpec, workdir: Path, junit: Path) -> Invocation:
    _require_module("pytest", "pytest")
    directory = spec.directory
    ini = directory / "pytest.ini"
    if not ini.is_file():
        ini = workdir / "pytest.ini"
        ini.write_text("[pytest]\n")
    argv = [sys.executable, "-m", "pytest", str(directory), "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
            "--rootdir", str(directory), "-c", str(ini), "--junitxml", str(junit), "-p", PROGRESS_PLUGIN]
    for plugin in spec.plugins:
        argv += ["-p", plugin]
    env = {**_progress_env(workdir), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    return Invocation(tuple(argv), str(workdir), env, junit_path=junit)


def _shipped_locust(spec: SuiteSpec, workdir: Path) -> Invocation:
    _require_module("locust", "Locust (the load-test tool)")
    prefix = workdir / "locust"
    argv = [sys.executable, "-m", "locust", "-f", str(spec.directory / "locustfile.py"), "--headless",
            "-u", str(spec.users), "-r", f"{spec.spawn_rate:g}", "-t", f"{spec.run_time_s:g}s",
            "--csv", str(prefix)]
    if spec.host:
        argv += ["--host", spec.host]
    # cwd is the empty workdir so a locust.conf or pyproject.toml where the user stands is not read.
    return Invocation(tuple(argv), str(workdir), {"PYTHONUNBUFFERED": "1"}, locust_csv_prefix=prefix)


def _configured(spec: SuiteSpec, workdir: Path, junit: Path) -> Invocation:
    cwd = os.path.expanduser(spec.cwd) if spec.cwd else os.getcwd()
    if not os.path.isdir(cwd):
        raise SuiteUnavailable(f"suite {spec.name}: cwd {safe_message(cwd, 120)} is not a directory")
    if spec.kind is not SuiteKind.PYTEST:
        return Invocation(spec.command, cwd)
    argv = spec.command + ("-p", PROGRESS_PLUGIN, "--junitxml", str(junit))
    return Invocation(argv, cwd, {**_progress_env(workdir), "PYTHONUNBUFFERED": "1"}, junit_path=junit)


def build_invocation(spec: SuiteSpec, workdir: Path, junit_path: Path | None = None) -> Invocation:
    """The command for `spec`, with its reports under `workdir` (or JUnit at `junit_path`).

    Raises SuiteUnavailable when the tool it needs is not installed.
    """
    junit = (junit_path or workdir / "junit.xml").resolve()
    if spec.source == "configured":
        return _configured(spec, workdir, junit)
    if spec.directory is None or not spec.directory.is_dir():
        raise SuiteUnavailable(f"suite {spec.name}: its directory is missing")
    if spec.kind is SuiteKind.LOCUST:
        return _shipped_locust(spec, workdir)
    return _shipped_pytest(spec, workdir, junit)

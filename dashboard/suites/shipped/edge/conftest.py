"""The functions under test: one test per configured `[[edge]]`, its id the function's name.

Only the config is read (`SCALEDASH_CONFIG`, dashboard/suites/stack.py): the edge suite
needs no `[service]`, database or Redis, so it checks any stack with edge functions.
Each function is called once per run (`samples` calls, kept for every test about it),
so three tests about one function do not triple the traffic it gets.
"""

from __future__ import annotations

import functools

import pytest

from dashboard import config as config_module
from dashboard.config_types import Config, ConfigError, EdgeTarget
from dashboard.suites.stack import config_path

from .contract import Answer, call_samples


@functools.cache
def _config() -> Config | ConfigError:
    try:
        return config_module.load(config_path())
    except ConfigError as exc:
        return exc


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "edge" not in metafunc.fixturenames:
        return
    config = _config()
    if isinstance(config, ConfigError):
        # Collected all the same, so the run reports the config's problems as a failure.
        metafunc.parametrize("edge", [pytest.param(None, id="config")])
        return
    if not config.edges:
        reason = f"{config.path} has no [[edge]]: no edge function to check"
        metafunc.parametrize("edge", [pytest.param(None, id="no-edge", marks=pytest.mark.skip(reason=reason))])
        return
    metafunc.parametrize("edge", config.edges, ids=[target.name for target in config.edges])


@pytest.fixture(scope="session")
def config() -> Config:
    loaded = _config()
    if isinstance(loaded, ConfigError):
        pytest.fail("cannot read the stack's config: " + "; ".join(loaded.lines()), pytrace=False)
    return loaded


@pytest.fixture(scope="session")
def _answers_by_function() -> dict[str, list[Answer]]:
    return {}


@pytest.fixture
def answers(edge: EdgeTarget, config: Config, _answers_by_function) -> list[Answer]:
    """The function's answers to its `samples` timed calls (made once per run)."""
    if edge.name not in _answers_by_function:
        _answers_by_function[edge.name] = call_samples(edge, config.timeout)
    return _answers_by_function[edge.name]

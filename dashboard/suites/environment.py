"""The environment a suite process gets: an allow-list, never a copy of ours.

An on-call shell holds cloud credentials, tokens and kubeconfigs; a suite (or a
dependency it imports) must not see them. A suite gets what a program needs to run
(PATH, HOME, locale, terminal, temp dir, the venv and PYTHONPATH when set), the config
path in `SCALEDASH_CONFIG`, and the variables the config's own `env:NAME` references
name, because that is how the config's secrets reach the suite: through the
environment, never argv. Those values are registered with the redaction chokepoint, so
a suite that prints one shows `***`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping

from dashboard import redact
from dashboard.config_types import Config, Secret

PASSED_THROUGH = ("PATH", "HOME", "LANG", "TERM", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")
PASSED_PREFIXES = ("LC_",)


def referenced_env_names(config: Config | None) -> tuple[str, ...]:
    """Every NAME of an `env:NAME` secret reference anywhere in the config."""
    names: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, Secret):
            if value.origin.startswith("env:"):
                names.append(value.origin[4:])
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                walk(getattr(value, f.name))
        elif isinstance(value, (tuple, list)):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(config)
    return tuple(dict.fromkeys(names))


def child_environment(config_path: str | None, env_names: Iterable[str] = (),
                      extra: Mapping[str, str] | None = None,
                      parent: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allow-listed environment for a suite process.

    `env_names` are the config's `env:` references (passed through when set, their
    values registered as secrets); `extra` is what the runner itself sets (progress
    pipe, pytest plugin switches) and wins over everything.
    """
    parent = os.environ if parent is None else parent
    env = {k: v for k, v in parent.items() if k in PASSED_THROUGH or k.startswith(PASSED_PREFIXES)}
    for name in env_names:
        if name in parent:
            env[name] = parent[name]
            redact.register_secret(parent[name])
    if config_path:
        env["SCALEDASH_CONFIG"] = config_path
    env.update(extra or {})
    return env

"""Registry of presets: the name used in `[[source]] preset = ...` -> its module."""

from __future__ import annotations

import importlib
from types import ModuleType

NAMES = ("scaledash", "resilience4j", "postgres_exporter", "redis_exporter", "supabase")


def get(name: str) -> ModuleType:
    """The preset module for `name` (validated by config before it gets here)."""
    if name not in NAMES:
        raise KeyError(name)
    return importlib.import_module(f"dashboard.presets.{name}")

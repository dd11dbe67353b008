"""The stack under test, from the dashboard's config (`SCALEDASH_CONFIG`, dashboard/suites/stack.py)."""

from __future__ import annotations

import pytest

from dashboard.config_types import ConfigError
from dashboard.suites.stack import load_stack


@pytest.fixture(scope="session")
def stack():
    try:
        the_stack = load_stack()
    except ConfigError as exc:
        pytest.fail("cannot read the stack's config: " + "; ".join(exc.lines()), pytrace=False)
    try:
        yield the_stack
    finally:
        the_stack.close()


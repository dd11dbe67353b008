"""The stack under test, from the dashboard's config (`SCALEDASH_CONFIG`, dashboard/suites/stack.py)."""

from __future__ import annotations

import pytest

from dashboard.suites.stack import session_stack


stack = pytest.fixture(scope="session", name="stack")(session_stack)


"""The stack under test, and the figures every test reports.

A figure goes three ways: printed in the test (so a failing test's captured output has
it), into the JUnit XML as a property (`record_property`, for CI), and into a
"performance figures" section at the end of the run, which the suite runner's live
output shows whether the tests passed or failed.
"""

from __future__ import annotations

import pytest

from dashboard.suites.stack import session_stack

SECTION = "performance figures"
_LINES: list[str] = []


stack = pytest.fixture(scope="session", name="stack")(session_stack)


class Figures:
    """One test's figures: `report(text, key=value, ...)` records the values, prints the text."""

    def __init__(self, record_property) -> None:
        self._record = record_property

    def report(self, text: str, **values: float) -> None:
        for key, value in values.items():
            self._record(key, round(value, 6))
        print(text)
        _LINES.append(text)


@pytest.fixture
def figures(record_property) -> Figures:
    return Figures(record_property)


def pytest_terminal_summary(terminalreporter) -> None:
    if _LINES:
        terminalreporter.write_sep("-", SECTION)
        for line in _LINES:
            terminalreporter.write_line(line)

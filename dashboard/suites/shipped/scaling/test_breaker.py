"""The upstream's breaker opens after failures, the fallback answers while it is open,
and after its timeout it lets one trial call through (half-open) and closes on success.

Faults come from the service's admin endpoint (`{"upstream": {"failure_rate": 1.0}}`);
the breaker's state is read from /metrics (`circuit_breaker_state`: 0 closed, 1 open,
2 half-open) and its calls by outcome (`circuit_breaker_calls_total`). A half-open
breaker that succeeds closes within the same call, so half-open shows as the trial
call's success after the timeout, with the state back to closed.
"""

from __future__ import annotations

from dashboard.suites.stack import require, wait_until

BREAKER = "upstream"
CLOSED, OPEN = 0, 1
OPEN_WITHIN_CALLS = 40


def _state(stack) -> float:
    return stack.metrics().value("circuit_breaker_state", breaker=BREAKER)


def _calls(stack, outcome: str) -> float:
    return stack.metrics().value("circuit_breaker_calls_total", breaker=BREAKER, outcome=outcome)


def _quote(stack):
    return stack.service.get("/quote")


def _open_breaker(stack) -> list[tuple[int, object]]:
    """Call /quote while the upstream fails until the breaker is open; the answers seen."""
    answers = []
    for _ in range(OPEN_WITHIN_CALLS):
        response = _quote(stack)
        answers.append((response.status_code, response.json().get("stale")))
        if _state(stack) == OPEN:
            return answers
    raise AssertionError(f"breaker {BREAKER!r} not open after {OPEN_WITHIN_CALLS} calls to a failing "
                         f"upstream (state {_state(stack)}); answers (status, stale): {answers[-5:]}")


def _good_quote_first(stack) -> None:
    """Before one good quote there is nothing to fall back to."""
    wait_until("a fresh quote from the healthy upstream", lambda: _quote(stack),
               lambda r: r.status_code == 200 and r.json().get("stale") is False)


def _has_breaker(stack) -> None:
    names = stack.metrics().label_values("circuit_breaker_state", "breaker")
    require(BREAKER in names, f"the service exports no circuit_breaker_state{{breaker={BREAKER!r}}} "
                              f"(it has {sorted(names)})")


def test_fallback_answers_while_the_breaker_is_open(stack):
    admin = stack.admin
    _has_breaker(stack)
    _good_quote_first(stack)
    with admin.upstream_fault(failure_rate=1.0):
        answers = _open_breaker(stack)
        rejected = _calls(stack, "rejected")
        response = _quote(stack)
        body = response.json()
        assert response.status_code == 200 and body.get("stale") is True, \
            f"GET /quote with the breaker open answered {response.status_code} {body}; expected the " \
            f"stale fallback (answers while opening, status/stale: {answers})"
        assert _calls(stack, "rejected") > rejected, "the open breaker let the call through to the upstream"
        assert all(status == 200 for status, _ in answers), \
            f"while the upstream failed and the breaker opened, /quote answered {answers} (status, stale)"


def test_breaker_half_opens_and_closes_after_its_timeout_once_the_fault_is_gone(stack):
    admin = stack.admin
    _has_breaker(stack)
    _good_quote_first(stack)
    with admin.upstream_fault(failure_rate=1.0):
        _open_breaker(stack)
    # The fault is gone, but the breaker stays open until its timeout: no call goes through.
    rejected = _calls(stack, "rejected")
    early = _quote(stack)
    assert _calls(stack, "rejected") > rejected and _state(stack) == OPEN, \
        f"right after the fault was removed the breaker was not open (state {_state(stack)}, " \
        f"answer {early.status_code} {early.json()})"
    successes = _calls(stack, "success")
    response = wait_until(f"breaker {BREAKER!r} half-opens after its timeout and a fresh quote closes it",
                          lambda: _quote(stack),
                          lambda r: r.status_code == 200 and r.json().get("stale") is False, timeout=30)
    assert _state(stack) == CLOSED and _calls(stack, "success") > successes, \
        f"a fresh quote came through ({response.json()}) but the breaker reads state {_state(stack)}"

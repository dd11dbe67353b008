"""Error rate of /quote while its upstream fails every call, with the breaker and without.

The upstream is made to fail through the service's admin endpoint
(`{"upstream": {"failure_rate": 1.0}}`, put back after). The "on" side is the stack
as it runs (breaker + stale fallback); the "off" side is the same requests with
`breaker_bypass` (no breaker, no fallback) or, on a service without that switch,
`quote_fallback` off (the breaker fails fast, nothing answers for it).
"""

from __future__ import annotations

from dashboard.suites.stack import require, wait_until

from .workload import BREAKER_OFF, LIVE_ONLY, pct

REQUESTS = 200
TARGET = 0.01


def _error_rate(stack) -> float:
    """Share of REQUESTS to /quote answered with a server error."""
    errors = sum(stack.service.get("/quote").status_code >= 500 for _ in range(REQUESTS))
    return errors / REQUESTS


def _off_switch(stack) -> tuple:
    admin, reason = stack.find_admin()
    require(admin, f"no A/B for the breakers: {reason}; {LIVE_ONLY}")
    switches = admin.state().get("switches") or {}
    name = next((n for n in BREAKER_OFF if n in switches), None)
    require(name, f"no A/B for the breakers: the service's /admin/state has none of {sorted(BREAKER_OFF)} "
                  f"(it has {sorted(switches)}); {LIVE_ONLY}")
    return admin, name


def test_breakers_keep_the_error_rate_under_1_percent_while_the_upstream_fails(stack, figures):
    admin, name = _off_switch(stack)
    # Before one good quote there is nothing to fall back to; an open breaker closes within its timeout.
    wait_until("a fresh quote from the healthy upstream", lambda: stack.service.get("/quote"),
               lambda r: r.status_code == 200 and r.json().get("stale") is False, timeout=30)
    with admin.upstream_fault(failure_rate=1.0):
        with_breakers = _error_rate(stack)
        with admin.switched(**{name: BREAKER_OFF[name]}):
            without = _error_rate(stack)
    figures.report(f"breakers: error rate {pct(with_breakers)} with breakers vs {pct(without)} without "
                   f"({name}={BREAKER_OFF[name]}), {REQUESTS} requests a side while the upstream fails every "
                   f"call (target < {pct(TARGET)})",
                   breakers_error_rate_on=with_breakers, breakers_error_rate_off=without)
    assert without >= 0.5, \
        f"without breakers ({name}={BREAKER_OFF[name]}) only {pct(without)} of requests failed while the " \
        "upstream failed every call: the fault did not take, so the A/B measured nothing"
    assert with_breakers < TARGET, \
        f"while the upstream failed every call, {pct(with_breakers)} of {REQUESTS} requests failed with " \
        f"breakers ({pct(without)} without); target < {pct(TARGET)}"

"""Errors are answers: a bad request gets a clear 4xx, a dead dependency the fallback or a
clean 503, and nothing hangs (every call here has a bounded client timeout)."""

from __future__ import annotations

import httpx
import pytest

from dashboard.redact import safe_message

from .moves import missing_ids

BAD_REQUESTS = [
    ("GET", "/items/not-a-number", None, 400),
    ("GET", "/items/0", None, 400),
    ("PUT", "/items/1000001", b"{not json", 400),
    ("PUT", "/items/1000001", b'{"price": "cheap"}', 400),
    ("PUT", "/items/1000001", b'[1, 2]', 400),
    ("POST", "/items/prices", b'{"prices": {}}', 400),
]


@pytest.mark.parametrize("method,path,body,status", BAD_REQUESTS,
                         ids=[f"{m} {p} {b!r}" for m, p, b, _ in BAD_REQUESTS])
def test_bad_request_gets_a_clear_4xx(stack, method, path, body, status):
    response = stack.service.request(method, path, content=body,
                                     headers={"Content-Type": "application/json"})
    assert response.status_code == status, \
        f"{method} {path} {body!r} answered {response.status_code}: {safe_message(response.text)}"
    error = response.json().get("error")
    assert isinstance(error, str) and error, f"{method} {path}: no error message in {safe_message(response.text)}"


def test_missing_item_and_unknown_route_get_404(stack):
    item = stack.service.get(f"/items/{missing_ids(1)[0]}")
    assert item.status_code == 404 and item.json().get("error"), f"{item.status_code} {safe_message(item.text)}"
    route = stack.service.get("/no/such/route")
    assert route.status_code == 404, f"GET /no/such/route answered {route.status_code}"


def test_hanging_upstream_gets_the_fallback_or_503_never_a_hang(stack):
    admin = stack.admin
    with admin.upstream_fault(latency_ms=20_000):
        for _ in range(3):
            try:
                response = stack.service.get("/quote", timeout=httpx.Timeout(5.0, connect=2.0))
            except httpx.TimeoutException:
                pytest.fail("GET /quote hung for 5 s behind an upstream that answers after 20 s", pytrace=False)
            body = response.json()
            assert (response.status_code == 200 and body.get("stale") is True) or \
                (response.status_code == 503 and body.get("error")), \
                f"GET /quote behind a hanging upstream answered {response.status_code} {body}"

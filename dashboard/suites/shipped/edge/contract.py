"""Calling one edge function as its config says, and judging its answers against its contract.

A function is called `samples` times on one kept-alive connection, after a first call
that opens the connection and is judged but not timed (a TLS handshake to a far region
would otherwise be most of a five-call p95). Each call uses the function's method and
headers (`env:`/`file:` references resolved here, their values never shown) and its
contract's `request_body`.

A body shape (dashboard/config_types.py, `[edge.contract] body`) is a type word, a
table of required keys (more keys are fine: adding a field is not breaking a client),
or a one-item array `[shape]` for an array whose every item has that shape. Problems
name the JSON path and the types found, never the values: a body may hold user data.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from typing import Any

import httpx

from dashboard.config_types import EdgeContract, EdgeTarget
from dashboard.probes.http import USER_AGENT, resolved_headers, tls_context
from dashboard.redact import describe_error, safe_message

DEFAULT_SAMPLES = 5
MAX_BODY_BYTES = 1024 * 1024
# A call may take this many budgets before it is cut (a slow function still answers,
# and its p95 is then measured, not guessed), within these bounds.
TIMEOUT_BUDGETS = 5
TIMEOUT_BOUNDS_S = (5.0, 60.0)
SHOWN_PROBLEMS = 5
NOT_JSON = object()


@dataclass(frozen=True)
class Answer:
    """One call's outcome: the status (None when nothing came back, `error` says why)."""

    status: int | None
    media_type: str = ""        # Content-Type without parameters, lower case
    body: Any = NOT_JSON        # the parsed JSON body
    text: str = ""              # the body's start, redacted, for messages
    elapsed_ms: float = 0.0
    timed: bool = True
    error: str = ""


def budget_ms(target: EdgeTarget, config_timeout_s: float) -> float:
    """The contract's `latency_ms`, else the config's per-probe deadline (what the dashboard allows)."""
    contract = target.contract
    if contract is not None and contract.latency_ms is not None:
        return contract.latency_ms
    return config_timeout_s * 1000.0


def call_samples(target: EdgeTarget, config_timeout_s: float) -> list[Answer]:
    """One untimed call that opens the connection, then `samples` timed calls."""
    contract = target.contract or EdgeContract()
    budget_s = budget_ms(target, config_timeout_s) / 1000.0
    timeout = min(max(TIMEOUT_BUDGETS * budget_s, TIMEOUT_BOUNDS_S[0]), TIMEOUT_BOUNDS_S[1])
    with httpx.Client(timeout=httpx.Timeout(timeout), verify=tls_context(target.insecure), follow_redirects=False,
                      trust_env=False, headers={"User-Agent": USER_AGENT}) as client:
        first = _call(client, target, contract)
        return [replace(first, timed=False)] + \
            [_call(client, target, contract) for _ in range(contract.samples)]


def _call(client: httpx.Client, target: EdgeTarget, contract: EdgeContract) -> Answer:
    body = {} if contract.request_body is None else {"json": contract.request_body}
    started = time.perf_counter()
    try:
        with client.stream(target.method, target.url, headers=resolved_headers(target.headers), **body) as response:
            raw = _read_capped(response)
    except httpx.HTTPError as exc:
        return Answer(None, elapsed_ms=(time.perf_counter() - started) * 1000.0,
                      error=describe_error(exc) or type(exc).__name__)
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return Answer(response.status_code, media_type, _json(raw), safe_message(raw[:400].decode("utf-8", "replace")),
                  elapsed_ms)


def _read_capped(response: httpx.Response) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            break
    return b"".join(chunks)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return NOT_JSON


# ------------------------------------------------------------------ judging

def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: a value that was measured, never an interpolation."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def json_type(value: Any) -> str:
    if value is NOT_JSON:
        return "no JSON"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    if isinstance(value, int):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


_IS = {
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "any": lambda v: v is not NOT_JSON,
}


def shape_problems(shape: Any, value: Any, path: str = "body") -> list[str]:
    """Where `value` (parsed JSON) departs from `shape`: one line per place, with the types."""
    if isinstance(shape, str):
        return [] if _IS[shape](value) else [f"{path}: expected {shape}, got {json_type(value)}"]
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {json_type(value)}"]
        problems: list[str] = []
        for key, inner in shape.items():
            if key not in value:
                keys = ", ".join(sorted(value)[:10]) or "none"
                problems.append(f"{path}.{key}: missing (keys there: {safe_message(keys, 120)})")
            else:
                problems += shape_problems(inner, value[key], f"{path}.{key}")
        return problems
    if not isinstance(value, list):
        return [f"{path}: expected an array, got {json_type(value)}"]
    return [p for i, item in enumerate(value) for p in shape_problems(shape[0], item, f"{path}[{i}]")]


def answer_problems(contract: EdgeContract, answer: Answer) -> list[str]:
    """What one answer got wrong against the contract's content type and body."""
    problems = []
    if contract.content_type and answer.media_type != contract.content_type:
        problems.append(f"content type {safe_message(answer.media_type, 80) or 'none'} "
                        f"(expected {contract.content_type})")
    if contract.body is not None:
        problems += shape_problems(contract.body, answer.body)
    return problems


def shown(problems: list[str]) -> str:
    more = f"; and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
    return "; ".join(problems[:SHOWN_PROBLEMS]) + more

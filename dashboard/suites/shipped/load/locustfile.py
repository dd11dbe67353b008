"""The `load` suite's Locust scenarios and thresholds, run headless by the suite runner.

What a real service sees, in proportion: read-heavy browsing on Zipf-distributed keys
(a few hot items take most reads, which is what a cache is for), writes that
invalidate those keys, edge function calls, and WebSocket subscribers holding a
/realtime subscription and counting the frames pushed to them. Traffic goes only to
the stack the config names (target.py); without one the suite refuses to start.

The thresholds are declared here, next to the scenarios, per request kind (the first
word of a request's name), and judged at the end from Locust's own stats: a missed one
is printed by name and makes Locust exit 1, which the runner reports as FAILED. The k6
script beside this file (load.k6.js) has the same scenarios and thresholds and runs
after Locust when k6 is installed.
"""

from __future__ import annotations

import json
import random
import sys
import time

import websocket
from locust import HttpUser, User, between, constant, events, task
from locust.stats import StatsEntry

from dashboard.suites.shipped.load.checks import (KindFigures, failed_line, figures_line, kind_of, missed,
                                                  skipped_line)
from dashboard.suites.shipped.load.k6 import run_k6
from dashboard.suites.shipped.load.target import ITEM_COUNT, NoTarget, ZipfKeys, load_target

# The scenarios (k6's `options.scenarios` has the same names) and the request kind each makes.
SCENARIOS = {
    "browse": "read",         # GET /items/<Zipf key>: 200, or 404 for an item the stack does not have
    "write": "write",         # PUT /items/<key> with a new price
    "edge": "edge",           # each configured [[edge]] function with its method, else /functions/v1/hello
    "subscribe": "subscribe",  # a /realtime WebSocket held for a few seconds, frames counted
}

# Per request kind: the highest failure ratio, the highest p95 (ms) and, for subscribers, the
# fewest frames the run must see. k6's `options.thresholds` declares the same limits.
THRESHOLDS = {
    "read": {"error_rate": 0.01, "p95_ms": 500},
    "write": {"error_rate": 0.01, "p95_ms": 1000},
    "edge": {"error_rate": 0.02, "p95_ms": 1000},
    "subscribe": {"error_rate": 0.01, "p95_ms": 1000, "min_frames": 1},
}

SUBSCRIPTION_HOLD_S = 5.0
WS_TIMEOUT_S = 5.0

try:
    TARGET = load_target()
except NoTarget as refusal:
    print(f"load suite: {refusal}", file=sys.stderr, flush=True)
    sys.exit(2)

KEYS = ZipfKeys()
_frames = {"frames": 0, "events": 0}


class BrowseUser(HttpUser):
    host = TARGET.service_url
    weight = 5
    wait_time = between(0.05, 0.2)

    @task
    def read(self) -> None:
        with self.client.get(f"/items/{KEYS.draw()}", name="read /items/[id]", catch_response=True) as resp:
            if resp.status_code in (200, 404):
                resp.success()
            else:
                resp.failure(f"status {resp.status_code}")


class WriteUser(HttpUser):
    host = TARGET.service_url
    weight = 1
    wait_time = between(0.2, 0.6)

    @task
    def write(self) -> None:
        body = {"price": round(random.uniform(1, 100), 2)}
        with self.client.put(f"/items/{random.randint(1, ITEM_COUNT)}", json=body, name="write /items/[id]",
                             catch_response=True) as resp:
            if resp.status_code == 200:
                resp.success()
            else:
                resp.failure(f"status {resp.status_code}")


class EdgeUser(HttpUser):
    host = TARGET.service_url
    weight = 2
    wait_time = between(0.1, 0.4)

    @task
    def call(self) -> None:
        edge = random.choice(TARGET.edges)
        body = {"name": "load"} if edge.method in ("POST", "PUT", "PATCH") else None
        with self.client.request(edge.method, edge.url, json=body, headers=dict(edge.headers),
                                 name=f"edge {edge.name}", catch_response=True) as resp:
            if resp.status_code == edge.expect_status:
                resp.success()
            else:
                resp.failure(f"status {resp.status_code}, expected {edge.expect_status}")


class SubscribeUser(User):
    """Holds a /realtime subscription, counts the frames pushed to it, and subscribes again.

    One request per subscription: its time is the WebSocket handshake, a failure is a
    connection that could not be opened or broke before the hold ended.
    """

    weight = 2
    wait_time = constant(0.5)

    @task
    def subscribe(self) -> None:
        started = time.perf_counter()
        connect_ms, frames, error, ws = 0.0, 0, None, None
        try:
            ws = websocket.create_connection(TARGET.realtime_url, timeout=WS_TIMEOUT_S)
            connect_ms = (time.perf_counter() - started) * 1000
            frames = self._hold(ws)
        except (websocket.WebSocketException, OSError) as exc:
            connect_ms = connect_ms or (time.perf_counter() - started) * 1000
            error = exc
        finally:
            if ws is not None:
                _hang_up(ws)
        events.request.fire(request_type="WS", name="subscribe /realtime", response_time=connect_ms,
                            response_length=frames, exception=error, context={})

    @staticmethod
    def _hold(ws: websocket.WebSocket) -> int:
        frames = 0
        ws.settimeout(0.5)
        until = time.monotonic() + SUBSCRIPTION_HOLD_S
        while time.monotonic() < until:
            try:
                message = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            frames += 1
            _frames["frames"] += 1
            try:
                _frames["events"] += len(json.loads(message))
            except (TypeError, ValueError):
                pass
        return frames


def _hang_up(ws: websocket.WebSocket) -> None:
    """Send the close frame and drop the socket, without waiting for the server's answer.

    Not `ws.close()`: it waits for the answer inside a bare `except: pass`, which swallows
    the GreenletExit Locust stops a user with at the end of the run; that user then runs
    on and Locust waits for it forever (the runner ends it as a TIMEOUT).
    """
    try:
        ws.send_close()
    except (websocket.WebSocketException, OSError):
        pass
    ws.shutdown()


def kind_figures(stats) -> dict[str, KindFigures]:
    """Locust's rows merged per request kind (percentiles over the merged response times)."""
    merged: dict[str, StatsEntry] = {}
    for (name, _method), entry in stats.entries.items():
        kind = kind_of(name)
        merged.setdefault(kind, StatsEntry(stats, kind, "", use_response_times_cache=False)).extend(entry)
    return {kind: KindFigures(kind, e.num_requests, e.num_failures,
                              float(e.get_response_time_percentile(0.95)) if e.num_requests else None,
                              frames=_frames["frames"] if kind == "subscribe" else None)
            for kind, e in merged.items()}


def _say(line: str) -> None:
    print(line, flush=True)


@events.quitting.add_listener
def judge_thresholds(environment, **_kwargs) -> None:
    figures = kind_figures(environment.stats)
    for kind in THRESHOLDS:
        if kind in figures:
            _say(figures_line(figures[kind]))
    if "subscribe" in figures:
        _say(f"load figures: subscribe: {_frames['events']} change events in {_frames['frames']} frames")
    problems = missed(THRESHOLDS, figures)
    for name, detail in problems:
        _say(failed_line(name, detail))
    options = environment.parsed_options
    k6 = run_k6(TARGET, getattr(options, "num_users", 1) or 1, float(getattr(options, "run_time", 0) or 30), _say)
    if k6 is not None:
        outcome, why = k6
        _say((failed_line if outcome == "failed" else skipped_line)("k6", why))
    failed = bool(problems) or (k6 is not None and k6[0] == "failed")
    _say("load thresholds: " + ("MISSED" if failed else "all met"))
    environment.process_exit_code = 1 if failed else 0

"""A Prometheus server as a metric source, through prometheus-api-client.

The client is synchronous (requests), so every round runs in a worker thread with an
explicit timeout and no hidden retries (its default retries 3 times with backoff). A
round the engine cuts at its deadline is ended in its thread too (abortable.py): a
trickling answer must not keep the thread and its socket past the deadline.
A response hook caps the decompressed body, keeps Prometheus' `warnings`, and turns
error envelopes into their errorType before the client sees them. Counters are
queried as rate() over `rate_window`, so figures stay meaningful however often
Prometheus scrapes; `up` tells a target that is down from one that is silent.

Sample times (RELIABILITY.md 23): an instant-vector result carries [t, value], where t
is the evaluation time (Prometheus' own clock, or a caching proxy's answer from long
ago); a gauge's last sample may be up to Prometheus' lookback (5 min) older than that,
and older still with `honor_timestamps` on an exporter that stamps its lines. So each
gauge is also queried through timestamp(), and every series carries the time of its
sample: the gauge's own, else the evaluation time. The engine ages rows from them.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading

from dashboard.config import SourceTarget
from dashboard.model import Failure, Reading, State
from dashboard.presets import get as get_preset
from dashboard.presets.base import Series, too_many_series
from dashboard.probes.abortable import AbortableAdapter, Call
from dashboard.probes.base import MID_RESPONSE, ProbeError, tls_verification_failure, with_hit_rate_floor
from dashboard.probes.body import ACCEPT_ENCODING, PIECE, CappedBody
from dashboard.probes.http import basic_auth
from dashboard.probes.offloop import OneThread
from dashboard.redact import sanitize


SAMPLED_AT = ":sampled_at"     # suffix of the series giving a gauge's sample time
TAG = "scaledash_metric"       # the label that keeps each metric's series apart in `or`


def round_query(preset, window: str, job: str | None) -> tuple[str, dict[str, bool]]:
    """One PromQL expression for a whole round, and which series names come rated.

    Every metric of the preset, joined with `or`: counters and histogram buckets as
    rate(), gauges as they are and as timestamp() (tagged `<name>:sampled_at`), and
    `up`. One HTTP request per round instead of one per metric: the cost of a
    Prometheus source is mostly requests'. Rated series need no timestamp(): a counter
    with no sample inside the window has no rate, and its row goes stale by itself.

    `or` matches series by their labels *without* the metric name, so two metrics with
    the same label set (redis_exporter's redis_up and redis_keyspace_hits_total, a gauge
    and its timestamp()) would keep only the first: each part is tagged with its name
    in the label TAG, which also names the series that rate() and timestamp() leave
    nameless.
    """
    selector = f'{{job="{job}"}}' if job else ""
    parts, rated = [], {}

    def tagged(expr: str, name: str) -> str:
        return f'label_replace({expr}, "{TAG}", "{name}", "", "")'

    for spec in preset.METRICS:
        if spec.type in ("counter", "histogram"):
            name = spec.name if spec.type == "counter" else f"{spec.name}_bucket"
            parts.append(tagged(f"rate({name}{selector}[{window}])", name))
            rated[name] = True
        else:
            parts.append(tagged(f"{spec.name}{selector}", spec.name))
            parts.append(tagged(f"timestamp({spec.name}{selector})", spec.name + SAMPLED_AT))
            rated[spec.name] = False
    parts.append(f"up{selector}")
    return " or ".join(parts), rated


class _Envelope(threading.local):
    warnings: list[str]


class PrometheusProbe:
    source = "prometheus"
    timeout_failure = Failure.ERROR   # Prometheus silent: its source failed (DESIGN "States")

    def __init__(self, target: SourceTarget, deadline: float):
        self.target = target.name
        self.deadline = deadline
        # A gauge is normally up to one scrape interval old, and rate_window spans at
        # least two of them: older than this (or 2 poll intervals) is STALE (engine).
        self.sample_grace_s = window_seconds(target.rate_window)
        self._config = target
        self.insecure = target.insecure        # shown as a badge wherever this target is
        self._preset = get_preset(target.preset)
        self._query, self._rated = round_query(self._preset, target.rate_window, target.job)
        self._client = None
        self._envelope = _Envelope()
        self._worker = OneThread(f"prometheus:{self.target}", "previous Prometheus query still running (skipped)")
        self._call: Call | None = None        # the round in flight, for close() to end

    def _connect(self):
        # Imported here: it costs ~130 ms and most configs have no Prometheus source.
        import requests
        from prometheus_api_client import PrometheusConnect
        from urllib3.util.retry import Retry

        session = requests.Session()
        session.verify = not self._config.insecure
        if self._config.insecure:
            # The user turned checks off for this source: urllib3 would otherwise print a
            # warning per request, across the TUI's screen.
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        session.trust_env = False
        session.headers["Accept-Encoding"] = ACCEPT_ENCODING   # only what body.py decodes
        session.hooks["response"].append(self._inspect)
        auth = basic_auth(self._config)
        retry = Retry(total=0, connect=0, read=0, redirect=0, status=0)
        client = PrometheusConnect(url=self._config.prometheus, session=session, auth=auth,
                                   retry=retry, timeout=self.deadline)
        # In place of the plain adapter the client mounts for its URL: same retries, and
        # a round that `Call.abort()` can end.
        session.mount(client.url, AbortableAdapter(max_retries=retry))
        return client

    def _inspect(self, response, *args, **kwargs):
        """Cap the body and read the envelope before prometheus-api-client parses it."""
        body = _read_capped(response)
        response._content = body
        response._content_consumed = True
        try:
            envelope = json.loads(body)
        except (ValueError, RecursionError):
            snippet = sanitize(body.decode("utf-8", "replace").strip(), 60)
            raise ProbeError(Failure.ERROR, f"HTTP {response.status_code}, not JSON: {snippet}") from None
        if not isinstance(envelope, dict) or "status" not in envelope:
            raise ProbeError(Failure.ERROR, "unexpected JSON shape (no status)")
        if envelope.get("status") != "success":
            kind = sanitize(envelope.get("errorType", "error"), 30)
            raise ProbeError(Failure.ERROR, f"{kind}: {sanitize(envelope.get('error', ''), 60)}")
        data = envelope.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("result"), list):
            raise ProbeError(Failure.ERROR, "unexpected JSON shape (no data.result)")
        count = series_count(data["result"])
        if count > self._config.max_series:
            raise ProbeError(Failure.ERROR, too_many_series(count, self._config.max_series))
        for warning in envelope.get("warnings") or ():
            self._envelope.warnings.append(sanitize(warning, 80))
        return response

    def _round(self, call: Call) -> tuple[list[Series], list[float], list[str]]:
        """Runs in a worker thread: the round's one query (every metric of the preset, and `up`)."""
        if self._client is None:
            self._client = self._connect()
        self._envelope.warnings = []
        series: list[Series] = []
        up: list[float] = []
        times: dict[tuple, float] = {}
        try:
            with call:
                result = self._client.custom_query(self._query)
            for item in result:
                name = _name_of(item)
                if name == "up":
                    up.extend(s.value for s in _to_series(name, item, False))
                elif name in self._rated:
                    series.extend(_to_series(name, item, self._rated[name]))
                elif isinstance(name, str) and name.endswith(SAMPLED_AT):
                    for s in _to_series(name.removesuffix(SAMPLED_AT), item, False):
                        times[_key(s)] = s.value
        except Exception as exc:
            raise _round_failure(exc, call.aborted) from None
        return [_with_time(s, times) for s in series], up, list(self._envelope.warnings)

    async def collect(self) -> list[Reading]:
        # One round at a time, in a daemon thread (offloop.OneThread: a round cannot hold
        # the process open at exit); the engine's deadline aborts the request in it.
        call = self._call = Call()
        try:
            series, up, warnings = await self._worker.run(lambda: self._round(call))
        except asyncio.CancelledError:
            call.abort()           # the engine's deadline: end the request in its thread too
            raise
        finally:
            self._call = None
        self.warning = "; ".join(warnings)[:160] or None
        readings = with_hit_rate_floor(self._preset.interpret(series, self.target), self._config.min_hit_rate)
        if up and all(v == 0 for v in up):
            reason = "up == 0 (via prometheus)"
            if readings:
                return [Reading(r.kind, r.name, r.figures, State.DOWN, reason, r.detail) for r in readings]
            raise ProbeError(Failure.DOWN, reason)
        if not readings:
            raise ProbeError(Failure.NO_DATA, f"empty result for preset {self._config.preset}")
        return readings

    async def close(self) -> None:
        if self._call is not None:
            self._call.abort()
        client, self._client = self._client, None
        if client is not None:
            client.close()


def _round_failure(exc: Exception, aborted: bool) -> ProbeError:
    """What went wrong in a round, in the words every probe uses."""
    import requests

    if aborted:          # cut at the deadline: whatever broke after that, this is why
        return ProbeError(Failure.ERROR, "Prometheus timeout")
    if isinstance(exc, ProbeError):
        return exc
    if isinstance(exc, requests.Timeout):
        return ProbeError(Failure.ERROR, "Prometheus timeout")
    if isinstance(exc, requests.exceptions.SSLError):
        return tls_verification_failure(exc) or ProbeError(Failure.ERROR, "TLS handshake failed")
    if isinstance(exc, requests.ConnectionError):
        return ProbeError(Failure.ERROR, _connection_failure(exc))
    # PrometheusApiClientException, odd shapes: the source is broken
    return ProbeError(Failure.ERROR, f"Prometheus: {type(exc).__name__}")


def _connection_failure(exc) -> str:
    """Name a requests ConnectionError by its cause. With retries off, urllib3 wraps every
    failure in MaxRetryError and requests calls them all ConnectionError: a read timeout
    (a slow Prometheus) or a reset mid-answer said "cannot connect" (the fault matrix,
    tests/integration/test_fault_matrix.py cases 7 and 10)."""
    from urllib3.exceptions import ProtocolError, ReadTimeoutError

    cause = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(cause, ReadTimeoutError):
        return "Prometheus timeout"
    if isinstance(cause, ProtocolError):
        return f"Prometheus: {MID_RESPONSE}"
    reason = "connection refused" if "refused" in str(exc).lower() else "cannot connect"
    return f"Prometheus unreachable: {reason}"


def _read_capped(response) -> bytes:
    """The decoded body from the raw stream, capped as it inflates (body.py): urllib3's
    own decoding would inflate each chunk whole."""
    body = CappedBody(response.headers.get("Content-Encoding"))
    try:
        for chunk in response.raw.stream(PIECE, decode_content=False):
            body.feed(chunk)
    except Exception:      # too large, or the read broke (an abort): the connection is done
        response.close()
        raise
    return body.finish()


def series_count(result: list) -> int:
    """The series of an answer: its items but the timestamp() companions of gauges."""
    return sum(1 for item in result if not str(_name_of(item) or "").endswith(SAMPLED_AT))


def _name_of(item) -> str | None:
    metric = item.get("metric") if isinstance(item, dict) else None
    if not isinstance(metric, dict):
        return None
    return metric.get(TAG) or metric.get("__name__")


def _to_series(name: str, item: dict, rated: bool) -> list[Series]:
    """The series of one result item, stamped with the evaluation time it came with."""
    try:
        labels = {k: str(v) for k, v in item["metric"].items() if k not in ("__name__", TAG)}
        value, at = float(item["value"][1]), item["value"][0]
    except (KeyError, TypeError, ValueError, IndexError):
        return []
    try:
        stamp = float(at)
    except (TypeError, ValueError):
        stamp = None
    return [Series(name, labels, value, rated, stamp)]


def _key(s: Series) -> tuple:
    return (s.name, tuple(sorted(s.labels.items())))


def _with_time(s: Series, times: dict[tuple, float]) -> Series:
    """A gauge with the time of its own last sample, where timestamp() gave one."""
    sampled = times.get(_key(s))
    if sampled is None or s.rate:
        return s
    return Series(s.name, s.labels, s.value, s.rate, sampled)


def window_seconds(window: str) -> float:
    """Seconds of a PromQL range such as "90s", "1m" or "2h" (validated by config)."""
    match = re.fullmatch(r"(\d+)([smh])", window or "")
    if match is None:
        return 60.0
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]

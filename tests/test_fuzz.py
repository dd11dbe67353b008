"""Property-based fuzzing of the four places remote or user text enters (issue 11, case 15, 17-22).

The config loader, the /metrics text path (exposition parser and every preset), the
Prometheus JSON path (the answer hook, the client and the presets) and the remote-text
sanitiser. The property is the same everywhere: a clean result or the one error path
the caller expects (ConfigError, ExpositionError, ProbeError), never anything else.

Budgets are hypothesis profiles: "ci" (the default: 200 examples a test, derandomized
so a failure in CI is the same failure on a laptop) and "long" (`make fuzz`, 20,000
examples a test, random). SCALEDASH_FUZZ_PROFILE picks one.
"""

from __future__ import annotations

import asyncio
import io
import math
import os
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import CANARY
from dashboard import config, config_drills, config_schema, redact
from dashboard.config import ConfigError, read_document, validate
from dashboard.model import Reading
from dashboard.presets import NAMES as PRESET_NAMES, get as get_preset
from dashboard.presets.base import Series
from dashboard.presets import exposition
from dashboard.presets.exposition import ExpositionError, family_prefixes, parse_text, prefilter
from dashboard.probes.base import ProbeError

settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("long", max_examples=20_000, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("SCALEDASH_FUZZ_PROFILE", "ci"))


# ------------------------------------------------------------------ TOML text out of values

class Raw(str):
    """TOML written as is: numbers no Python value prints (5000 digits), nan, inf, dates."""


def toml_value(value) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return '"' + re.sub(r'[\\"\x00-\x1f\x7f]', lambda m: f"\\u{ord(m.group()):04x}", value) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def toml_document(doc: dict) -> str:
    return "".join(f"{toml_value(str(k))} = {toml_value(v)}\n" for k, v in doc.items())


def base_document() -> dict:
    """A valid config using every section, which each example then spoils in one place."""
    return {
        "name": "fuzz", "interval": "1s", "timeout": "500ms",
        "thresholds": {"replica_lag_bytes": 1024, "cache_hit_rate": 0.9},
        "replica": [{"name": "db", "dsn": "postgresql://monitor@127.0.0.1:5432/postgres",
                     "password": "env:SCALEDASH_TEST_PG_PASSWORD"}],
        "cache": [{"name": "sessions", "url": "rediss://127.0.0.1:6380/0", "insecure": True}],
        "source": [{"name": "app", "scrape": "http://127.0.0.1:8000/metrics", "preset": "resilience4j"},
                   {"name": "prom", "prometheus": "http://127.0.0.1:9090", "rate_window": "1m"}],
        "edge": [{"name": "hello", "url": "http://127.0.0.1:8000/functions/v1/hello", "method": "POST",
                  "headers": {"Authorization": "env:SCALEDASH_TEST_TOKEN"},
                  "contract": {"content_type": "application/json", "body": {"ok": "boolean"}}}],
        "cdn": [{"name": "assets", "url": "https://cdn.example.com/app.js"}],
        "suite": [{"name": "unit", "command": ["pytest", "-q"]}],
        "service": {"url": "http://127.0.0.1:8000"},
        "drills": {"allow": ["db"]},
        "drill": [{"name": "fo", "use": "failover", "target": "db"}],
    }


# Every key the schema accepts, as (section or None, nested table or None, key): the walk
# follows the schema, so a key added later is fuzzed without touching this file.
def schema_keys() -> list[tuple[str | None, str | None, str]]:
    keys: list[tuple[str | None, str | None, str]] = [(None, None, k) for k in sorted(config_schema._TOP_KEYS)]
    for section, allowed in sorted(config_schema._SECTION_KEYS.items()):
        keys += [(section, None, k) for k in sorted(allowed)]
    keys += [("edge", "contract", k) for k in sorted(config_schema._CONTRACT_KEYS)]
    keys += [("thresholds", None, k) for k in ("replica_lag_bytes", "replica_lag_seconds", "cache_hit_rate",
                                                "error_rate", "recovery_band", "recovery_hold")]
    keys += [("service", None, k) for k in sorted(config_schema._SERVICE_KEYS)]
    keys += [("drills", None, k) for k in sorted(config_drills.DRILLS_KEYS)]
    keys += [("drill", None, k) for k in sorted(config_drills.DRILL_KEYS)]
    keys += [("drill", steps, k) for steps in ("step", "rollback") for k in sorted(config_drills.STEP_KEYS)]
    return keys


def digits(n: int) -> Raw:
    return Raw("9" * n)


scalars = st.one_of(
    st.integers(), st.integers(min_value=-(2**64), max_value=2**64),
    st.integers(min_value=1, max_value=6000).map(digits),          # past int's 4300-digit str limit
    st.integers(min_value=300, max_value=4200).map(lambda n: Raw("-" + "9" * n)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([Raw("nan"), Raw("-nan"), Raw("inf"), Raw("-inf"), Raw("1e309"), Raw("-0.0"),
                     Raw("1979-05-27T07:32:00Z"), Raw("1979-05-27"), Raw("07:32:00"), Raw("0x7fffffffffffffff")]),
    st.booleans(),
    st.text(max_size=50), st.text(min_size=1000, max_size=20_000, alphabet="a\x1b[/]\u202e\n:@"),
    st.sampled_from(["", "0s", "0", "-1s", "1e400s", "nan", "inf", "env:", "file:", "env:SCALEDASH_UNSET_FUZZ",
                     "file:/nonexistent", "file:/dev/zero", "file:/", "postgresql://u:" + CANARY + "@h:99999/d",
                     "redis://:" + CANARY + "@[::1", "http://[", "https://x:-1/", "mysql://h/d", "\x00", "ᴇɴᴠ:X"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                      max_leaves=12)


def nested(depth: int, kind: str) -> Raw:
    """A deep array or inline table as text (a Python value that deep cannot be written)."""
    return Raw("[" * depth + "]" * depth if kind == "array" else "{a = " * depth + "1" + "}" * depth)


hostile = st.one_of(values, st.builds(nested, st.integers(min_value=1, max_value=3000), st.sampled_from(["array", "table"])))


def spoil(doc: dict, where: tuple[str | None, str | None, str], value) -> dict:
    section, table, key = where
    if section is None:
        doc[key] = value
        return doc
    holder = doc.setdefault(section, {} if section in ("thresholds", "service", "drills") else [{}])
    holder = holder[0] if isinstance(holder, list) else holder
    if table in ("step", "rollback"):                 # arrays of tables: a drill of one's own
        holder.pop("use", None)
        holder = holder.setdefault(table, [{"do": "observe", "duration": "1s"}])[0]
    elif table is not None:
        holder = holder.setdefault(table, {})
    holder[key] = value
    return doc


def loads_or_config_error(text: str, tmp_path) -> None:
    """The property: a Config or a ConfigError with lines, from the real loader; nothing else."""
    path = tmp_path / "fuzz.toml"
    path.write_text(text, encoding="utf-8")
    try:
        cfg = config.load(str(path))
    except ConfigError as exc:
        lines = exc.lines()
        assert lines and all(line.startswith(f"config error: {path}: ") for line in lines), lines
        assert all(CANARY not in line and "\x1b" not in line and "\n" not in line for line in lines), lines
        return
    if CANARY not in text:      # hypothesis also tries the literal itself, at keys that are no secret
        assert CANARY not in repr(cfg)


@pytest.fixture(scope="module")
def fuzz_dir():
    # Not tmp_path_factory: pytest deletes all but the newest 3 base temp dirs, so another
    # pytest started during a long `make fuzz` pulled the folder from under it.
    with tempfile.TemporaryDirectory(prefix="scaledash-fuzz-") as folder:
        yield Path(folder)


def test_the_base_document_is_a_valid_config(fuzz_dir):
    path = fuzz_dir / "base.toml"
    path.write_text(toml_document(base_document()))
    assert config.load(str(path)).target_count == 6


@given(where=st.sampled_from(schema_keys()), value=hostile)
@example(where=(None, None, "interval"), value=digits(5000))
@example(where=(None, None, "interval"), value=digits(4000))
@example(where=("thresholds", None, "replica_lag_seconds"), value=digits(400))
@example(where=("replica", None, "max_lag_seconds"), value=digits(400))
@example(where=("edge", "contract", "latency_ms"), value=digits(400))
def test_any_value_at_any_config_key_gives_a_config_or_config_error_lines(where, value, fuzz_dir):
    loads_or_config_error(toml_document(spoil(base_document(), where, value)), fuzz_dir)


@given(doc=st.dictionaries(st.sampled_from(sorted(config_schema._TOP_KEYS) + ["x"]), hostile, max_size=6))
def test_a_document_of_hostile_values_at_the_top_keys_gives_a_config_or_config_error_lines(doc, fuzz_dir):
    loads_or_config_error(toml_document(doc), fuzz_dir)


@given(data=st.binary(max_size=3000) | st.text(max_size=3000).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_bytes_as_a_config_file_give_a_config_or_config_error_lines(data, fuzz_dir):
    path = fuzz_dir / "bytes.toml"
    path.write_bytes(data)
    try:
        validate(read_document(path), str(path))
    except ConfigError as exc:
        assert exc.lines()


# ------------------------------------------------------------------ /metrics text and presets

metric_names = st.one_of(
    st.sampled_from(sorted({m.name for p in PRESET_NAMES for m in get_preset(p).METRICS} |
                           {m.name + s for p in PRESET_NAMES for m in get_preset(p).METRICS
                            for s in ("_bucket", "_count", "_sum", "_created")})),
    st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,30}", fullmatch=True),
)
label_names = st.sampled_from(["breaker", "cache", "layer", "result", "outcome", "batcher", "function", "status",
                               "name", "kind", "state", "le", "quantile", "node", "instance", "db", "application_name",
                               "slot_name", "server", "job", "cmd", "x"])
label_values = st.one_of(st.text(max_size=30), st.sampled_from(["hit", "miss", "success", "failure", "rejected",
                                                                  "read", "write", "closed", "open", "half_open",
                                                                  "+Inf", "0.5", "NaN", "[/bold]", "\x1b]52;c;aGk=\x07",
                                                                  "a" * 10_000]))
sample_values = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                          st.sampled_from(["NaN", "+Inf", "-Inf", "1e309", "-0", "0x10", "", "1_000", "nan()"]),
                          st.integers().map(str))


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@st.composite
def exposition_lines(draw) -> str:
    name = draw(metric_names)
    kind = draw(st.sampled_from(["sample", "sample", "sample", "type", "help", "raw"]))
    if kind == "type":
        return f"# TYPE {name} {draw(st.sampled_from(['counter', 'gauge', 'histogram', 'summary', 'untyped', 'x']))}"
    if kind == "help":
        return f"# HELP {name} {draw(st.text(max_size=40))}"
    if kind == "raw":
        return draw(st.text(max_size=80))
    labels = draw(st.dictionaries(label_names, label_values, max_size=4))
    block = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
    stamp = draw(st.one_of(st.just(""), st.integers(min_value=-(10**20), max_value=10**20).map(lambda t: f" {t}")))
    return f"{name}{{{block}}} {draw(sample_values)}{stamp}" if block or draw(st.booleans()) else \
        f"{name} {draw(sample_values)}{stamp}"


exposition_texts = st.one_of(st.lists(exposition_lines(), max_size=40).map("\n".join), st.text(max_size=2000))


def readings_of(preset_name: str, series: list[Series]) -> list[Reading]:
    readings = get_preset(preset_name).interpret(series, "fuzz")
    assert isinstance(readings, list) and all(isinstance(r, Reading) for r in readings)
    return readings


@given(text=exposition_texts, preset_name=st.sampled_from(PRESET_NAMES))
@example(text="{", preset_name="scaledash")          # was IndexError in the prefilter
def test_any_metrics_text_is_series_for_every_preset_or_an_exposition_error(text, preset_name):
    preset = get_preset(preset_name)
    try:
        series = parse_text(prefilter(text, family_prefixes(preset.METRICS)))
    except ExpositionError as exc:
        assert str(exc)
        return
    assert all(isinstance(s, Series) and isinstance(s.value, float) for s in series)
    readings_of(preset_name, series)


def reference_series(text: str) -> list[Series] | None:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        return [Series(s.name, dict(s.labels), float(s.value), timestamp=exposition._seconds(s.timestamp))
                for family in text_string_to_metric_families(text) for s in family.samples]
    except (Exception, RecursionError):
        return None


@given(text=exposition_texts)
def test_the_fast_path_reads_what_the_reference_parser_reads_or_hands_over(text):
    fast = exposition.fast_parse(text)
    if fast is None:
        return
    reference = reference_series(text)
    def shown(series: list[Series]) -> list[tuple]:      # NaN == NaN here; -0.0 == 0.0 anyway
        return [(s.name, s.labels, "nan" if math.isnan(s.value) else s.value, s.timestamp) for s in series]

    assert reference is None or shown(fast) == shown(reference), (fast, reference)


series_strategy = st.builds(
    Series, name=metric_names, labels=st.dictionaries(label_names, label_values, max_size=4),
    value=st.floats(allow_nan=True, allow_infinity=True), rate=st.booleans(),
    timestamp=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)))


@given(series=st.lists(series_strategy, max_size=30), preset_name=st.sampled_from(PRESET_NAMES))
def test_every_preset_reads_any_series_without_raising(series, preset_name):
    readings_of(preset_name, series)


# ------------------------------------------------------------------ Prometheus JSON answers

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                         st.text(max_size=20), st.sampled_from(["NaN", "+Inf", "-Inf", "1e309", "up", "success"]))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                  st.dictionaries(st.text(max_size=10), inner,
                                                                                  max_size=4)), max_leaves=15)


@st.composite
def result_items(draw, names) -> object:
    metric = draw(st.dictionaries(st.sampled_from(["__name__", "scaledash_metric", "breaker", "cache", "layer",
                                                   "result", "outcome", "function", "status", "le", "name", "job"]),
                                  st.one_of(names, label_values, json_scalars), max_size=5))
    value = draw(st.one_of(st.tuples(st.one_of(st.floats(), st.integers(), st.text(max_size=5)),
                                     st.one_of(sample_values, json_scalars)).map(list), json_values))
    item = {"metric": metric, "value": value}
    return draw(st.one_of(st.just(item), json_values)) if draw(st.integers(0, 9)) == 0 else item


@st.composite
def prometheus_bodies(draw) -> bytes:
    import json

    names = st.sampled_from(["up", "circuit_breaker_state", "circuit_breaker_calls_total",
                             "cache_requests_total", "batcher_messages_total", "edge_function_invocations_total",
                             "resilience4j_circuitbreaker_state", "pg_up", "redis_up",
                             "circuit_breaker_state:sampled_at"])
    shape = draw(st.integers(0, 9))
    if shape == 0:
        return draw(st.binary(max_size=500))
    if shape == 1:
        return json.dumps(draw(json_values)).encode()
    if shape == 2:
        return json.dumps({"status": "error", "errorType": draw(st.one_of(json_scalars, label_values)),
                           "error": draw(st.one_of(json_scalars, label_values))}).encode()
    if shape == 3:
        return b'{"status":"success","data":{"resultType":"vector","result":' + b"[" * 5000 + b"]" * 5000 + b"}}"
    data = {"resultType": draw(st.sampled_from(["vector", "matrix", "scalar", "string"])),
            "result": draw(st.lists(result_items(names), max_size=12))}
    envelope = {"status": "success", "data": data}
    if draw(st.booleans()):
        envelope["warnings"] = draw(st.one_of(st.lists(st.one_of(label_values, json_scalars), max_size=3),
                                              json_scalars))
    return json.dumps(envelope, allow_nan=draw(st.booleans()) or True).encode()


class CannedAdapter:
    """A requests transport that answers every request with one body (no server sends
    these shapes on purpose; the real-server tests cover the ones a server does send)."""

    def __init__(self, body: bytes, status: int):
        import requests.adapters

        self.body, self.status = body, status
        self._builder = requests.adapters.HTTPAdapter()

    def send(self, request, **kwargs):
        from urllib3 import HTTPResponse

        raw = HTTPResponse(body=io.BytesIO(self.body), status=self.status, preload_content=False,
                           headers={"Content-Type": "application/json"})
        return self._builder.build_response(request, raw)

    def close(self):
        pass


@pytest.fixture(scope="module")
def prometheus_probes():
    from dashboard.config import SourceTarget
    from dashboard.probes.prometheus import PrometheusProbe

    probes = {}
    for name in PRESET_NAMES:
        probe = PrometheusProbe(SourceTarget(name="prom", preset=name, prometheus="http://127.0.0.1:9"), 1.0)
        probe._client = probe._connect()
        probes[name] = probe
    return probes


@given(body=prometheus_bodies(), status=st.sampled_from([200, 200, 400, 422, 502, 503]),
       preset_name=st.sampled_from(PRESET_NAMES))
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
def test_any_prometheus_answer_is_readings_or_a_probe_error(body, status, preset_name, prometheus_probes):
    probe = prometheus_probes[preset_name]
    probe._client._session.mount("http://", CannedAdapter(body, status))
    try:
        readings = asyncio.run(probe.collect())
    except ProbeError as exc:
        message = redact.safe_message(str(exc), 160)
        assert message and "\x1b" not in message
        return
    assert all(isinstance(r, Reading) for r in readings)


# ------------------------------------------------------------------ the sanitiser

UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
hostile_text = st.one_of(
    st.text(), st.text(alphabet=st.characters(codec=None, categories=["Cc", "Cf", "Zl", "Zp", "Co"])),
    st.lists(st.sampled_from(["\x1b[31m", "\x1b]52;c;aGVsbG8=\x07", "\x1b]8;;http://x\x1b\\", "\x1b", "\x9b",
                              "\u202e", "\u2066", "\x00", "\r\n", "[/bold]", "…", "é", "\U0001f600", "a"]),
             max_size=200).map("".join))


@given(text=hostile_text, limit=st.integers(min_value=0, max_value=300))
@example(text="\x1b" * 5000, limit=10)
@example(text="abc", limit=0)                          # was "…", one character over the limit
def test_sanitised_text_has_no_control_or_bidi_character_and_keeps_its_limit(text, limit):
    out = redact.sanitize(text, limit)
    assert not UNSAFE.search(out), repr(out)
    assert "\x1b" not in out and "\n" not in out and "\r" not in out
    assert len(out) <= limit


@given(text=hostile_text, limit=st.integers(min_value=1, max_value=300))
def test_safe_message_never_shows_a_registered_secret(text, limit):
    redact.register_secret(CANARY)
    out = redact.safe_message(text[: len(text) // 2] + CANARY + text[len(text) // 2:], limit)
    assert CANARY not in out and not UNSAFE.search(out) and len(out) <= limit


@given(value=values)
def test_the_config_error_value_shown_is_one_safe_line(value):
    line = config_schema._show(value)
    assert len(line) <= 60 and not UNSAFE.search(line)

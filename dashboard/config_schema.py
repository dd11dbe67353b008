"""Check a parsed TOML document against the config schema and build a `Config`.

Validation collects every problem at once, each with its key path and the value it
saw, so a user fixes a file in one go. Each [[section]] has one builder that checks
its table and returns its target; `validate` runs them all and raises one
ConfigError listing every problem.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from dashboard import config_drills, redact
from dashboard.config_types import (
    SHAPE_TYPES,
    CacheTarget,
    CdnTarget,
    Config,
    ConfigError,
    EdgeContract,
    EdgeTarget,
    ReplicaTarget,
    Secret,
    ServiceTarget,
    SourceTarget,
    SuiteTarget,
    Thresholds,
)
from dashboard.presets import NAMES as PRESETS   # the one list of presets

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


def parse_duration(value: Any) -> float:
    """Seconds from 1, 0.5, "500ms", "2s" or "1m"; raises ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("expected a duration")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            number, unit = float(m.group(1)), m.group(2) or "s"
            return number * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]
    raise ValueError("expected a duration such as 1, \"500ms\" or \"2s\"")


class _Checker:
    """Collects problems with their key paths instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def fail(self, path: str, message: str, value: Any = None, show_value: bool = True) -> None:
        shown = f" (got {_show(value)})" if show_value else ""
        self.problems.append(f"{path}: {message}{shown}")

    def table(self, path: str, value: Any, allowed: set[str]) -> dict:
        if not isinstance(value, dict):
            self.fail(path, "expected a table", value)
            return {}
        for key in value:
            if key not in allowed:
                self.fail(_key_path(path, key), "unknown key", value[key], show_value=False)
        return value

    def get(self, table: dict, path: str, key: str, kind: type | tuple, default: Any = None,
            required: bool = False) -> Any:
        if key not in table:
            if required:
                self.fail(_key_path(path, key), "missing required key", show_value=False)
            return default
        value = table[key]
        if isinstance(value, bool) and kind is not bool and bool not in _tuple(kind):
            self.fail(_key_path(path, key), f"expected {_type_name(kind)}", value)
            return default
        if not isinstance(value, kind):
            self.fail(_key_path(path, key), f"expected {_type_name(kind)}", value)
            return default
        return value

    def duration(self, table: dict, path: str, key: str, default: float | None) -> float | None:
        if key not in table:
            return default
        try:
            seconds = parse_duration(table[key])
        except ValueError as exc:
            self.fail(f"{path}{key}", str(exc), table[key])
            return default
        if not 0.05 <= seconds <= 3600:
            self.fail(f"{path}{key}", "must be between 50ms and 1h", table[key])
            return default
        return seconds

    def secret(self, path: str, value: Any, is_password: bool = True) -> Secret | str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(path, "expected a string reference such as \"env:NAME\"", "***" if is_password else value)
            return None
        if value.startswith("env:"):
            name = value[4:]
            if name not in os.environ:
                self.fail(path, f"environment variable {name} is not set", show_value=False)
                return None
            return Secret(os.environ[name], value)
        if value.startswith("file:"):
            return self._secret_file(path, value)
        if not is_password:
            return value
        self.warnings.append(f"{path}: inline password in the config file; prefer \"env:NAME\" or \"file:/path\"")
        return Secret(value, "inline")

    def _secret_file(self, path: str, ref: str) -> Secret | None:
        file = Path(ref[5:]).expanduser()
        try:
            mode = file.stat().st_mode
            if not stat.S_ISREG(mode):
                self.fail(path, f"secret file {file} is not a regular file", show_value=False)
                return None
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                self.fail(path, f"secret file {file} is readable by group or others (chmod 600 {file})",
                          show_value=False)
                return None
            text = file.read_text(encoding="utf-8").strip()
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path, or not UTF-8
            self.fail(path, f"cannot read secret file {file}: {getattr(exc, 'strerror', None) or exc}",
                      show_value=False)
            return None
        return Secret(text, ref)


def _key_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _tuple(kind: type | tuple) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def _type_name(kind: type | tuple) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "an array", dict: "a table"}
    return " or ".join(names.get(k, k.__name__) for k in _tuple(kind))


def _show(value: Any) -> str:
    text = repr(value)
    return redact.safe_message(text, 60)


def _check_url(c: _Checker, path: str, value: Any, schemes: tuple[str, ...]) -> str | None:
    if not isinstance(value, str):
        c.fail(path, "expected a URL string", value)
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        # urlsplit quotes the text after the last ':', part of a password that holds an
        # unencoded '/', '?' or '#', so its message is not shown as is.
        reason = "port out of range 0-65535" if "range" in str(exc) else \
            "cannot parse host and port (percent-encode '/', '?', '#' or '@' in a password)"
        c.fail(path, f"bad URL: {reason}", value)
        return None
    expected = " or ".join(s + "://host" for s in schemes)
    if parts.scheme and "://" in value and parts.scheme not in schemes:
        # Named apart: "bad URL" alone sends a user looking for a typo in the host.
        c.fail(path, f"unsupported scheme {parts.scheme[:20]}://; expected {expected}", value)
        return None
    if parts.scheme not in schemes or not parts.hostname:
        c.fail(path, f"bad URL: expected {expected}", value)
        return None
    if parts.scheme in ("postgresql", "postgres"):
        _check_sslmode(c, path, value)
    return value


def _split_password(c: _Checker, path: str, url: str) -> tuple[str, Secret | None]:
    """Take an inline password (`user:pw@` or `?password=`) out of a URL so the stored
    URL can be shown; both drivers read either form, so both warn alike."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    in_query = [v for k, v in query if k == "password"]
    if parts.password is None and not in_query:
        return url, None
    c.warnings.append(f"{path}: inline password in the URL; prefer a password = \"env:NAME\" reference")
    secret = Secret(unquote(parts.password) if parts.password is not None else in_query[-1], "inline")
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}@{netloc.rsplit('@', 1)[1]}"
    if in_query:
        parts = parts._replace(query=urlencode([(k, v) for k, v in query if k != "password"]))
    return parts._replace(netloc=netloc).geturl(), secret


# asyncpg's values (libpq's, less `gss`-only ones): anything else fails at every connect.
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _check_sslmode(c: _Checker, path: str, dsn: str) -> None:
    for key, value in parse_qsl(urlsplit(dsn).query, keep_blank_values=True):
        if key == "sslmode" and value not in _SSLMODES:
            c.fail(path, f"sslmode must be one of {', '.join(_SSLMODES)}", value)


def _insecure(c: _Checker, p: str, t: dict, url: str | None, tls_schemes: tuple[str, ...]) -> bool:
    """`insecure` turns off certificate checks, which exist only on a TLS URL: on a plain
    one the key would be accepted and do nothing, so it is refused instead."""
    insecure = c.get(t, p, "insecure", bool, False)
    if insecure and url and urlsplit(url).scheme not in tls_schemes:
        c.fail(f"{p}.insecure", f"only applies to a {' or '.join(s + '://' for s in tls_schemes)} URL "
               "(no TLS, no certificate to check)", insecure)
    return insecure


_SECTION_KEYS = {
    "replica": {"name", "dsn", "password", "max_lag_bytes", "max_lag_seconds", "interval"},
    "cache": {"name", "url", "password", "insecure", "min_hit_rate", "interval"},
    "source": {"name", "scrape", "prometheus", "preset", "username", "password", "rate_window", "job",
               "insecure", "interval", "min_hit_rate", "max_series"},
    "edge": {"name", "url", "method", "expect_status", "headers", "insecure", "interval", "contract"},
    "cdn": {"name", "url", "headers", "insecure", "interval"},
    "suite": {"name", "command", "cwd"},
}
_SERVICE_KEYS = {"url", "admin_token"}
_CONTRACT_KEYS = {"content_type", "body", "latency_ms", "samples", "request_body"}
# Sub-tables of a section with keys of their own, by key path (the config-keys walk reads it).
_NESTED_KEYS = {"edge.contract": _CONTRACT_KEYS, "drills": config_drills.DRILLS_KEYS,
                "drill": config_drills.DRILL_KEYS - {"step", "rollback"}, "drill.step": config_drills.STEP_KEYS,
                "drill.rollback": config_drills.STEP_KEYS}
_TOP_KEYS = {"name", "interval", "timeout", "thresholds", "drill", "drills", "service", *_SECTION_KEYS}


def _replica(c: _Checker, p: str, t: dict) -> ReplicaTarget | None:
    dsn = _check_url(c, f"{p}.dsn", t["dsn"], ("postgresql", "postgres")) if "dsn" in t \
        else c.get(t, p, "dsn", str, required=True)
    password = c.secret(f"{p}.password", t.get("password"))
    max_bytes = c.get(t, p, "max_lag_bytes", int)
    max_seconds = c.get(t, p, "max_lag_seconds", (int, float))
    if max_bytes is not None and max_bytes < 0:
        c.fail(f"{p}.max_lag_bytes", "must be 0 or more", max_bytes)
        max_bytes = None
    if max_seconds is not None and not 0 <= max_seconds < float("inf"):  # also refuses NaN
        c.fail(f"{p}.max_lag_seconds", "must be a finite number of seconds, 0 or more", max_seconds)
        max_seconds = None
    if not dsn:
        return None
    dsn, inline = _split_password(c, f"{p}.dsn", dsn)
    return ReplicaTarget(name=t.get("name", ""), dsn=dsn, password=password or inline, max_lag_bytes=max_bytes,
                         max_lag_seconds=float(max_seconds) if max_seconds is not None else None)


def _cache(c: _Checker, p: str, t: dict) -> CacheTarget | None:
    url = _check_url(c, f"{p}.url", t.get("url"), ("redis", "rediss")) if "url" in t \
        else c.get(t, p, "url", str, required=True)
    password = c.secret(f"{p}.password", t.get("password"))
    insecure = _insecure(c, p, t, url, ("rediss",))
    floor = _hit_rate_floor(c, p, t)
    if not url:
        return None
    url, inline = _split_password(c, f"{p}.url", url)
    return CacheTarget(name=t.get("name", ""), url=url, password=password or inline, insecure=insecure,
                       min_hit_rate=floor)


def _hit_rate_floor(c: _Checker, p: str, t: dict) -> float | None:
    """`min_hit_rate`: a cache's own floor (a second layer only sees the misses above it)."""
    floor = c.get(t, p, "min_hit_rate", (int, float))
    if floor is not None and not 0 <= floor <= 1:
        c.fail(f"{p}.min_hit_rate", "must be a fraction between 0 and 1", floor)
        return None
    return float(floor) if floor is not None else None


def _source(c: _Checker, p: str, t: dict) -> SourceTarget | None:
    scrape, prom = t.get("scrape"), t.get("prometheus")
    if (scrape is None) == (prom is None):
        c.fail(p, "give exactly one of scrape = \"http://.../metrics\" or prometheus = \"http://...\"",
               show_value=False)
        return None
    key = "scrape" if scrape is not None else "prometheus"
    url = _check_url(c, f"{p}.{key}", t[key], ("http", "https"))
    preset = c.get(t, p, "preset", str, "scaledash")
    if preset not in PRESETS:
        c.fail(f"{p}.preset", f"unknown preset; expected one of {', '.join(PRESETS)}", preset)
    username = c.get(t, p, "username", str)
    password = c.secret(f"{p}.password", t.get("password"))
    rate_window = c.get(t, p, "rate_window", str, "1m")
    if rate_window and not re.fullmatch(r"\d+[smh]", rate_window):
        c.fail(f"{p}.rate_window", "expected a PromQL range such as \"1m\"", rate_window)
    for only_promql in ("rate_window", "job"):
        if scrape is not None and only_promql in t:
            # A scrape reads one endpoint's raw counters: no PromQL, no job label to select.
            c.fail(f"{p}.{only_promql}", "only applies to a prometheus = source, not to a scrape",
                   t[only_promql])
    insecure = _insecure(c, p, t, url, ("https",))
    floor = _hit_rate_floor(c, p, t)
    max_series = _max_series(c, p, t)
    if not url:
        return None
    return SourceTarget(name=t.get("name", ""), preset=preset, scrape=url if scrape else None,
                        prometheus=url if prom else None, username=username, password=password,
                        rate_window=rate_window, job=c.get(t, p, "job", str), insecure=insecure,
                        min_hit_rate=floor, max_series=max_series)


_MAX_SERIES_LIMIT = 100_000    # a 5 MB body holds ~100k short lines: more could never arrive


def _max_series(c: _Checker, p: str, t: dict) -> int:
    """`max_series`: the most series one answer of this source may carry (RELIABILITY.md 21)."""
    default = SourceTarget.max_series
    value = c.get(t, p, "max_series", int, default)
    if not 1 <= value <= _MAX_SERIES_LIMIT:
        c.fail(f"{p}.max_series", f"must be an integer between 1 and {_MAX_SERIES_LIMIT}", value)
        return default
    return value


def _headers(c: _Checker, p: str, t: dict) -> tuple[tuple[str, str | Secret], ...]:
    raw = c.get(t, p, "headers", dict, {})
    out = []
    for key, value in raw.items():
        if not isinstance(value, str):
            c.fail(f"{p}.headers.{key}", "expected a string", value)
            continue
        sensitive = key.lower() in ("authorization", "apikey", "x-api-key", "cookie")
        resolved = c.secret(f"{p}.headers.{key}", value, is_password=sensitive)
        if resolved is not None:
            out.append((key, resolved))
    return tuple(out)


def _edge(c: _Checker, p: str, t: dict) -> EdgeTarget | None:
    url = _check_url(c, f"{p}.url", t.get("url"), ("http", "https")) if "url" in t \
        else c.get(t, p, "url", str, required=True)
    method = c.get(t, p, "method", str, "GET").upper()
    if method not in ("GET", "POST", "HEAD", "PUT", "OPTIONS"):
        c.fail(f"{p}.method", "expected GET, POST, HEAD, PUT or OPTIONS", method)
    expect = c.get(t, p, "expect_status", int, 200)
    if isinstance(expect, int) and not 100 <= expect <= 599:
        c.fail(f"{p}.expect_status", "must be an HTTP status between 100 and 599", expect)
    headers = _headers(c, p, t)
    insecure = _insecure(c, p, t, url, ("https",))
    contract = _contract(c, f"{p}.contract", t, method)
    if not url:
        return None
    return EdgeTarget(name=t.get("name", ""), url=url, method=method, expect_status=expect,
                      headers=headers, insecure=insecure, contract=contract)


_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][\w!#$&^.+-]*/[A-Za-z0-9][\w!#$&^.+-]*")
_MAX_SAMPLES = 100
_MAX_BUDGET_MS = 60_000


def _contract(c: _Checker, p: str, edge: dict, method: str) -> EdgeContract | None:
    """`[edge.contract]`: what the shipped `edge` suite checks in each answer of the function."""
    if "contract" not in edge:
        return None
    t = c.table(p, edge["contract"], _CONTRACT_KEYS)
    content_type = c.get(t, p, "content_type", str)
    if content_type is not None and not _MEDIA_TYPE.fullmatch(content_type):
        c.fail(f"{p}.content_type", 'expected a media type such as "application/json" (no parameters)',
               content_type)
        content_type = None
    body = _shape(c, f"{p}.body", t["body"]) if "body" in t else None
    if body is not None and method == "HEAD":
        c.fail(f"{p}.body", "a HEAD answer has no body to check (use GET, or content_type alone)",
               show_value=False)
    latency = c.get(t, p, "latency_ms", (int, float))
    if latency is not None and not 0 < latency <= _MAX_BUDGET_MS:   # `not` also refuses NaN
        c.fail(f"{p}.latency_ms", f"must be more than 0 and at most {_MAX_BUDGET_MS} (a minute)", latency)
        latency = None
    samples = c.get(t, p, "samples", int, 5)
    if not 1 <= samples <= _MAX_SAMPLES:
        c.fail(f"{p}.samples", f"must be from 1 to {_MAX_SAMPLES}", samples)
        samples = 5
    request_body = t.get("request_body")
    if request_body is not None and method not in ("POST", "PUT"):
        c.fail(f"{p}.request_body", f"only applies to method POST or PUT ({method} sends no body)",
               show_value=False)
    elif request_body is not None and not _is_json(request_body):
        c.fail(f"{p}.request_body", "expected JSON: tables, arrays, strings, numbers, booleans (no dates)",
               show_value=False)
    return EdgeContract(content_type=content_type.lower() if content_type else None, body=body,
                        latency_ms=float(latency) if latency is not None else None, samples=samples,
                        request_body=request_body)


def _shape(c: _Checker, path: str, value: Any) -> Any:
    """A body shape: a type word, a table of required keys and their shapes, or `[shape]`."""
    if isinstance(value, str):
        if value not in SHAPE_TYPES:
            c.fail(path, f"unknown type; expected one of {', '.join(SHAPE_TYPES)}, a table or a one-item array",
                   value)
        return value
    if isinstance(value, dict):
        return {key: _shape(c, _key_path(path, key), inner) for key, inner in value.items()}
    if isinstance(value, list) and len(value) == 1:
        return [_shape(c, f"{path}[0]", value[0])]
    if isinstance(value, list):
        c.fail(path, 'an array shape names its items\' shape once, such as ["number"]', value)
        return value
    c.fail(path, "expected a type such as \"string\", a table of keys or a one-item array", value)
    return value


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _cdn(c: _Checker, p: str, t: dict) -> CdnTarget | None:
    url = _check_url(c, f"{p}.url", t.get("url"), ("http", "https")) if "url" in t \
        else c.get(t, p, "url", str, required=True)
    headers = _headers(c, p, t)
    insecure = _insecure(c, p, t, url, ("https",))
    if not url:
        return None
    return CdnTarget(name=t.get("name", ""), url=url, headers=headers, insecure=insecure)


def _suite(c: _Checker, p: str, t: dict) -> SuiteTarget | None:
    command = c.get(t, p, "command", list, required=True)
    if command is not None and (not command or not all(isinstance(a, str) for a in command)):
        c.fail(f"{p}.command", "expected a non-empty array of strings", command)
        command = None
    cwd = c.get(t, p, "cwd", str)
    if not command:
        return None
    return SuiteTarget(name=t.get("name", ""), command=tuple(command), cwd=cwd)


_BUILDERS: dict[str, Callable[[_Checker, str, dict], Any]] = {
    "replica": _replica, "cache": _cache, "source": _source, "edge": _edge, "cdn": _cdn, "suite": _suite,
}


def _sections(c: _Checker, doc: dict) -> dict[str, list]:
    built: dict[str, list] = {}
    names: dict[str, str] = {}
    for section, builder in _BUILDERS.items():
        entries = doc.get(section, [])
        if not isinstance(entries, list):
            c.fail(section, f"expected an array of tables ([[{section}]])", entries)
            entries = []
        built[section] = []
        for i, entry in enumerate(entries):
            path = f"{section}[{i}]"
            table = c.table(path, entry, _SECTION_KEYS[section])
            if not isinstance(entry, dict):
                continue
            name = c.get(table, path, "name", str, required=True)
            if isinstance(name, str):
                if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}", name):
                    c.fail(f"{path}.name", "use letters, digits, '_', '-', '.', ':' (max 63)", name)
                group = "suite" if section == "suite" else "target"
                if (group, name) in names:
                    c.fail(f"{path}.name", f"duplicate name (also {names[(group, name)]})", name)
                names[(group, name)] = path
            item = builder(c, path, table)
            if section != "suite" and "interval" in table:
                own = c.duration(table, f"{path}.", "interval", None)
                if own is not None and isinstance(name, str):
                    built.setdefault("intervals", {})[name] = own
                    built.setdefault("interval_paths", {})[name] = f"{path}.interval"
            if item is not None and isinstance(name, str):
                built[section].append(item)
    return built


def _service(c: _Checker, doc: dict) -> ServiceTarget | None:
    """`[service]`: the URL suites drive and the bearer token of its admin endpoints.

    The token opens endpoints that break the stack on purpose, so it is accepted only as
    a reference (`env:NAME`, `file:/path`), never written into the file itself.
    """
    if "service" not in doc:
        return None
    t = c.table("service", doc["service"], _SERVICE_KEYS)
    url = _check_url(c, "service.url", t["url"], ("http", "https")) if "url" in t \
        else c.get(t, "service", "url", str, required=True)
    token = t.get("admin_token")
    if isinstance(token, str) and not token.startswith(("env:", "file:")):
        c.fail("service.admin_token", "must be a reference such as \"env:NAME\" or \"file:/path\", "
               "never the token itself", show_value=False)
        token = None
    secret = c.secret("service.admin_token", token)
    if not url:
        return None
    return ServiceTarget(url=url.rstrip("/"), admin_token=secret if isinstance(secret, Secret) else None)


def _thresholds(c: _Checker, doc: dict) -> Thresholds:
    t = c.table("thresholds", doc.get("thresholds", {}),
                {"replica_lag_bytes", "replica_lag_seconds", "cache_hit_rate", "error_rate",
                 "recovery_band", "recovery_hold"})
    d = Thresholds()
    lag_bytes = c.get(t, "thresholds", "replica_lag_bytes", int, d.replica_lag_bytes)
    lag_seconds = c.get(t, "thresholds", "replica_lag_seconds", (int, float), d.replica_lag_seconds)
    hit = c.get(t, "thresholds", "cache_hit_rate", (int, float), d.cache_hit_rate)
    err = c.get(t, "thresholds", "error_rate", (int, float), d.error_rate)
    band = c.get(t, "thresholds", "recovery_band", (int, float), d.recovery_band)
    for key, value in (("cache_hit_rate", hit), ("error_rate", err), ("recovery_band", band)):
        if not 0 <= value <= 1:
            c.fail(f"thresholds.{key}", "must be a fraction between 0 and 1", value)
    if lag_bytes < 0 or not lag_seconds >= 0:  # `not >=` also refuses NaN
        c.fail("thresholds", "lag thresholds must not be negative", show_value=False)
    return Thresholds(lag_bytes, float(lag_seconds), float(hit), float(err), float(band),
                      _recovery_hold(c, t, d.recovery_hold_s))


def _recovery_hold(c: _Checker, t: dict, default: float) -> float:
    """Like any duration, but 0 is allowed: it turns the hold time off."""
    if "recovery_hold" not in t:
        return default
    try:
        seconds = parse_duration(t["recovery_hold"])
    except ValueError as exc:
        c.fail("thresholds.recovery_hold", str(exc), t["recovery_hold"])
        return default
    if not 0 <= seconds <= 3600:
        c.fail("thresholds.recovery_hold", "must be between 0s and 1h", t["recovery_hold"])
        return default
    return seconds


def _warn_slow_global(c: _Checker, interval: float, built: dict) -> None:
    """A target's own interval only slows it down (the engine never polls a target faster
    than the global interval): one below the global interval does nothing, so say so. A
    warning, not an error: --interval or the +/- keys may lower the global interval."""
    for name, own in built.get("intervals", {}).items():
        if own < interval:
            c.warnings.append(f"{built['interval_paths'][name]}: {own:g}s is below the global interval "
                              f"{interval:g}s, which this target follows instead")


_INT64 = range(-(2**63), 2**63)


def _without_huge_integers(c: _Checker, doc: dict) -> dict:
    """A copy of `doc` without integers beyond 64 bits, each reported with its key path.

    TOML integers are 64-bit, but tomllib returns any size, and `float()` of a 400-digit
    one raises OverflowError in whichever check meets it first: one walk here keeps
    every check below from having to remember. A table keeps its other keys; an array
    holding such a number is dropped whole (its problem names the item).
    """
    def huge_in(value: Any, at: str) -> str | None:
        stack = [(value, at)]
        while stack:                          # a loop, not recursion: arrays may nest deep
            node, where = stack.pop()
            if isinstance(node, int) and not isinstance(node, bool) and node not in _INT64:
                return where
            if isinstance(node, list):
                stack.extend((item, f"{where}[{i}]") for i, item in enumerate(node))
            elif isinstance(node, dict):
                stack.extend((item, _key_path(where, str(k))) for k, item in node.items())
        return None

    def clean(table: dict, at: str) -> dict:
        out = {}
        for key, value in table.items():
            where = _key_path(at, str(key))
            if isinstance(value, dict):
                out[key] = clean(value, where)
                continue
            if isinstance(value, list) and all(isinstance(item, dict) for item in value):
                out[key] = [clean(item, f"{where}[{i}]") for i, item in enumerate(value)]
                continue
            bad = huge_in(value, where)
            if bad is None:
                out[key] = value
            else:
                c.fail(bad, "integer out of range (TOML integers are 64-bit)", show_value=False)
        return out

    return clean(doc, "")


def validate(doc: dict, path: str = "<config>", overrides: dict | None = None) -> Config:
    """Build a Config from a parsed TOML document; raise ConfigError listing every problem."""
    c = _Checker()
    doc = c.table("", _without_huge_integers(c, doc), _TOP_KEYS) if isinstance(doc, dict) else {}
    merged = {**doc, **(overrides or {})}
    interval = c.duration(merged, "", "interval", 1.0)
    timeout = c.duration(merged, "", "timeout", None)
    if timeout is None:
        timeout = round(min(interval * 0.8, 10.0), 3)
    elif timeout > interval:
        c.fail("timeout", f"the per-probe deadline must be <= interval ({interval:g}s)", merged.get("timeout"))
    name = c.get(doc, "", "name", str, Path(path).stem if path != "<config>" else "scaledash")
    thresholds = _thresholds(c, doc)
    service = _service(c, doc)
    built = _sections(c, doc)
    drills = config_drills.drills(c, doc)
    drill_settings = config_drills.settings(
        c, doc, {t.name for s in ("replica", "cache", "source", "edge", "cdn") for t in built[s]}
        | ({"service"} if service else set()))
    _warn_slow_global(c, interval, built)
    if c.problems:
        raise ConfigError(path, c.problems)
    return Config(path=path, name=name, interval=interval, timeout=timeout, thresholds=thresholds,
                  replicas=tuple(built["replica"]), caches=tuple(built["cache"]),
                  sources=tuple(built["source"]), edges=tuple(built["edge"]), cdns=tuple(built["cdn"]),
                  suites=tuple(built["suite"]), drills=drills, drill_settings=drill_settings, service=service,
                  warnings=tuple(c.warnings),
                  intervals=dict(built.get("intervals", {})))

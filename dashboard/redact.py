"""The one place where secrets are masked and remote text is made safe to show.

Every message that leaves the engine, every line `check` prints, every log line and
every crash report passes through `redact()` (secrets) and `sanitize()` (remote text),
rather than each caller remembering its own redaction. Libraries echo credentials in
their errors (a malformed libpq DSN shows its password, an httpx URL shows
`user:pass@` and `?token=`), so pattern masking backs up the registry of known values.
"""

from __future__ import annotations

import re
import threading

MASK = "***"

_known: set[str] = set()
_known_lock = threading.Lock()

# Shortest value worth masking by exact match: masking "a" would shred every message.
_MIN_SECRET_LEN = 4

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host  ->  scheme://user:***@host (an unencoded '/' included)
    (re.compile(r"(?P<pre>[a-zA-Z][\w+.-]*://[^\s:/@]*:)[^\s@]+(?=@)"), r"\g<pre>" + MASK),
    # password=..., passwd: ..., pwd='a b', {'password': ...} (libpq keyword DSNs, reprs, JSON);
    # an "env:NAME" or "file:/path" reference is not a secret and stays readable
    (re.compile(r"(?i)(?P<pre>\b(?:password|passwd|pwd|secret|token|api[_-]?key|apikey)\b['\"]?\s*[=:]\s*)"
                r"(?!['\"]?(?:env|file):)(?:'[^'\n]*'|\"[^\"\n]*\"|['\"]?[^\s'\"&;,]+)"),
     r"\g<pre>" + MASK),
    # ?token=...&key=... in URLs
    (re.compile(r"(?i)(?P<pre>[?&](?:token|access_token|apikey|api_key|key|sig|signature|password)=)[^&\s#]+"),
     r"\g<pre>" + MASK),
    # Authorization: Bearer xyz / Basic xyz
    (re.compile(r"(?i)(?P<pre>\bauthorization\b['\"]?\s*[:=]\s*['\"]?(?:bearer|basic|token)?\s*)[^\s'\",}]+"),
     r"\g<pre>" + MASK),
    (re.compile(r"(?i)(?P<pre>\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\g<pre>" + MASK),
)

# C0/C1 controls (ESC, NUL, BEL...), DEL, and the bidi overrides that can reorder text.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")


def register_secret(value: str | None) -> None:
    """Remember a secret value so that it is masked wherever it appears later."""
    if value and len(value) >= _MIN_SECRET_LEN:
        with _known_lock:
            _known.add(value)


def forget_secrets() -> None:
    """Drop every registered value (tests use it to start clean)."""
    with _known_lock:
        _known.clear()


def redact(text: object) -> str:
    """Return `text` as a string with every known secret and secret-looking value masked."""
    out = text if isinstance(text, str) else str(text)
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in out:
            out = out.replace(value, MASK)
    for pattern, replacement in _PATTERNS:
        out = pattern.sub(replacement, out)
    return out


def sanitize(text: object, limit: int = 200) -> str:
    """Make remote text safe for a terminal: no escapes or controls, at most `limit` chars.

    ANSI/OSC sequences are removed whole; other control and bidi characters become
    U+FFFD; newlines and tabs become spaces so one message stays one line.
    """
    out = text if isinstance(text, str) else str(text)
    cut = len(out) > limit * 4
    if cut:
        out = out[: limit * 4]
    out = _ANSI.sub("", out)
    out = out.replace("\r\n", " ").replace("\n", " ").replace("\t", " ")
    out = _UNSAFE.sub("\ufffd", out)
    if len(out) > limit or cut:  # cut: escapes removed may have left it short, but it was cut
        out = out[: limit - 1] + "…" if limit > 0 else ""
    return out


def safe_message(text: object, limit: int = 200) -> str:
    """The chokepoint for messages that leave the engine: redacted, then sanitised."""
    return sanitize(redact(text), limit)


def describe_error(exc: BaseException, limit: int = 160) -> str:
    """A one-line, redacted description of an exception, without its traceback or locals."""
    message = str(exc).strip()
    name = type(exc).__name__
    if not message:
        return name
    return safe_message(f"{message}", limit)

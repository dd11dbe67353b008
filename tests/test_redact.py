"""The one chokepoint for secrets and remote text (RELIABILITY.md cases 22, 33, 34).

`redact()` masks known secret values and secret-looking patterns, `sanitize()` makes
remote text safe for a terminal, and `crash.report()` turns an unexpected exception
into one redacted line plus a private crash file without local variables.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys

import asyncpg
import pytest

from conftest import CANARY, ROOT
from dashboard import crash, redact
from dashboard.config import ReplicaTarget, Secret
from dashboard.redact import MASK, describe_error, safe_message, sanitize



def _has_control_or_bidi(text: str) -> bool:
    bidi = {"\u200e", "\u200f", "\u061c", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))}
    return any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or ch in bidi for ch in text)


# ------------------------------------------------------------ case 34: redact()

def test_registered_secret_value_is_masked_wherever_it_appears(isolated_secrets):
    value = "reg-Secret-4711"
    assert value in redact.redact(f"auth failed with {value}")      # not masked before it is known
    redact.register_secret(value)
    assert redact.redact(f"auth failed with {value} (again: x{value}y)") == \
        f"auth failed with {MASK} (again: x{MASK}y)"


def test_secret_object_registers_its_value_on_creation(isolated_secrets):
    Secret("obj-Secret-9001", "env:X")
    assert redact.redact("echo obj-Secret-9001") == f"echo {MASK}"


def test_very_short_values_are_not_registered_so_messages_stay_readable(isolated_secrets):
    redact.register_secret("abc")
    assert redact.redact("abc abcdef") == "abc abcdef"


@pytest.mark.parametrize("text, expected", [
    ("postgresql://u:pw-Plain-1@h/db", f"postgresql://u:{MASK}@h/db"),
    ("redis://:pw-Plain-2@127.0.0.1:6379/0", f"redis://:{MASK}@127.0.0.1:6379/0"),
    ("could not connect to https://user:pw-Plain-3@example.com/x: refused",
     f"could not connect to https://user:{MASK}@example.com/x: refused"),
    ("postgresql://u:pw/Plain-4@h/db", f"postgresql://u:{MASK}@h/db"),
], ids=["postgres", "redis-no-user", "in-a-sentence", "slash-in-password"])
def test_url_userinfo_password_is_masked(text, expected):
    assert redact.redact(text) == expected


@pytest.mark.parametrize("text, secret", [
    ("host=db port=5432 password=pw-Kw-1 user=monitor", "pw-Kw-1"),
    ("host=db password = pw-Kw-2", "pw-Kw-2"),
    ("host=db password='pw Kw 3' user=monitor", "pw Kw 3"),
    ('connect(password="pw-Kw-4")', "pw-Kw-4"),
    ("PASSWD: pw-Kw-5", "pw-Kw-5"),
    ("{'password': 'pw-Kw-6', 'user': 'monitor'}", "pw-Kw-6"),
    ('{"token": "pw-Kw-7"}', "pw-Kw-7"),
    ("api_key=pw-Kw-8", "pw-Kw-8"),
], ids=["keyword-dsn", "spaces", "quoted-with-spaces", "kwarg", "upper-colon", "dict-repr", "json", "api-key"])
def test_password_keywords_are_masked(text, secret):
    out = redact.redact(text)
    assert secret not in out and secret.split()[0] not in out, out
    assert MASK in out


def test_query_string_tokens_are_masked_and_other_parameters_kept():
    out = redact.redact("GET https://cdn.example.com/a.js?token=tk-1&v=3&key=tk-2&access_token=tk-3&sig=tk-4#x")
    assert out == f"GET https://cdn.example.com/a.js?token={MASK}&v=3&key={MASK}&access_token={MASK}&sig={MASK}#x"


@pytest.mark.parametrize("text, secret", [
    ("Authorization: Bearer ey.Auth-1.sig", "ey.Auth-1.sig"),
    ("authorization=Basic dXNlcjpBdXRoLTI=", "dXNlcjpBdXRoLTI="),
    ("headers={'Authorization': 'Bearer Auth-3-token'}", "Auth-3-token"),
    ("request failed: bearer Auth-4-abcdefgh", "Auth-4-abcdefgh"),
], ids=["header-line", "basic", "dict-repr", "bare-bearer"])
def test_authorization_values_are_masked(text, secret):
    out = redact.redact(text)
    assert secret not in out and MASK in out, out


@pytest.mark.parametrize("text", [
    "connection refused",
    'password authentication failed for user "monitor"',
    "http://127.0.0.1:8080/metrics",
    "postgresql://monitor@127.0.0.1:5432/postgres",
    "timeout after 0.8s (deadline 800ms)",
    "key rotation finished; 3 keys",
    "replica[0].dsn: inline password in the URL; prefer a password = \"env:NAME\" reference",
    "password = \"file:/etc/scaledash/pg\"",
    "[/bold] 100% <b>html</b> {json: 1}",
])
def test_harmless_text_is_left_alone(text):
    assert redact.redact(text) == text


def test_redact_accepts_non_strings():
    assert redact.redact(ValueError("postgresql://u:pw-Obj-1@h/db")) == f"postgresql://u:{MASK}@h/db"


# ------------------------------------------------------------ case 22: sanitize()

def test_markup_lookalike_is_kept_literally():
    assert sanitize("[/bold]") == "[/bold]"
    assert sanitize("[red]x[/red]") == "[red]x[/red]"


@pytest.mark.parametrize("text, kept", [
    ("\x1b[31mred\x1b[0m text", "red text"),
    ("\x1b[1;38;5;196mbold\x1b[m", "bold"),
    ("copy \x1b]52;c;cm0gLXJmIC8K\x07 me", "copy  me"),
    ("copy \x1b]52;c;cm0gLXJmIC8K\x1b\\ me", "copy  me"),
    ("title \x1b]0;pwned", "title "),
    ("c1 \x9b31mcsi", "c1 \ufffd31mcsi"),
    ("nul\x00byte", "nul\ufffdbyte"),
    ("bell\x07 back\x08space del\x7f", "bell\ufffd back\ufffdspace del\ufffd"),
    ("abc\u202edcba", "abc\ufffddcba"),
    ("iso\u2066late\u2069 rlm\u200f", "iso\ufffdlate\ufffd rlm\ufffd"),
    ("two\nlines\r\nand\ttab", "two lines and tab"),
], ids=["ansi-colour", "ansi-256", "osc52-bel", "osc52-st", "osc-unterminated", "c1-csi", "nul",
        "c0-controls", "bidi-override", "bidi-isolates", "newlines-tabs"])
def test_hostile_strings_lose_every_escape_control_and_bidi_character(text, kept):
    out = sanitize(text)
    assert out == kept
    assert "\x1b" not in out and not _has_control_or_bidi(out)


def test_ten_thousand_character_label_is_cut_to_the_limit_with_an_ellipsis():
    out = sanitize("x" * 10_000, limit=80)
    assert len(out) == 80 and out.endswith("…") and out[:-1] == "x" * 79
    assert sanitize("y" * 80, limit=80) == "y" * 80


def test_long_hostile_label_is_safe_after_truncation():
    label = ("\x1b]52;c;" + "A" * 50 + "\x07\u202e\x00[/bold]") * 700
    out = sanitize(label, limit=120)
    assert len(out) <= 120 and out.endswith("…")
    assert "\x1b" not in out and not _has_control_or_bidi(out)


def test_an_escape_sequence_split_by_truncation_leaves_no_raw_escape():
    out = sanitize("a" * 799 + "\x1b[31mred", limit=200)
    assert "\x1b" not in out and len(out) <= 200


def test_safe_message_redacts_before_sanitizing():
    out = safe_message("\x1b[31mpostgresql://u:pw-Safe-1@h/db\x1b[0m\n", 200)
    assert out == f"postgresql://u:{MASK}@h/db "


# ------------------------------------------------------------ case 33: secrets and crashes

def test_secret_repr_and_str_never_show_the_value():
    secret = Secret(CANARY, "env:SCALEDASH_TEST_PG_PASSWORD")
    target = ReplicaTarget(name="db", dsn="postgresql://monitor@db/app", password=secret)
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % secret, repr([secret]),
             repr({"pw": secret}), repr(target), str(target)]
    for text in shown:
        assert CANARY not in text and "env:SCALEDASH_TEST_PG_PASSWORD" in text, text
    assert secret.reveal() == CANARY


def _connect_with(dsn: str) -> None:
    local_note = "local-only-value-5150"
    attempt = {"dsn": dsn, "note": local_note}
    raise ConnectionError(f"could not connect to {attempt['dsn']} (password={CANARY})")


def _raise_holding_a_dsn() -> BaseException:
    try:
        _connect_with(f"postgresql://monitor:{CANARY}@127.0.0.1:1/postgres")
    except ConnectionError as exc:
        return exc
    raise AssertionError("no exception")


def test_crash_report_writes_one_redacted_line_and_a_private_file_without_locals(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    stream = io.StringIO()
    crash.report(_raise_holding_a_dsn(), stream)
    line = stream.getvalue()
    assert line.count("\n") == 1 and line.startswith("scaledash: unexpected error (ConnectionError: ")
    assert CANARY not in line and "Traceback" not in line
    files = list((tmp_path / "scaledash").iterdir())
    assert len(files) == 1 and str(files[0]) in line
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    report = files[0].read_text()
    assert "Traceback" in report and "_connect_with" in report       # the frames are there
    assert CANARY not in report
    assert "local-only-value-5150" not in report and "'note'" not in report  # locals are not


def test_crash_report_line_carries_no_escape_sequences_from_the_exception(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    stream = io.StringIO()
    crash.report(RuntimeError("remote said \x1b]52;c;cm0gLXJm\x07\x1b[31mred\u202e\nsecond line\x00"), stream)
    out = stream.getvalue()
    assert out.count("\n") == 1 and out.endswith("Please report it.\n")
    assert "\x1b" not in out and not _has_control_or_bidi(out.rstrip("\n"))


def test_unexpected_error_in_check_prints_one_redacted_line_and_a_private_crash_file(tmp_path):
    # No monkeypatching: stdout on /dev/full makes the table write fail with ENOSPC,
    # an error nothing in `check` expects, so it must reach the crash path.
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    config = tmp_path / "scaledash.toml"
    config.write_text(f'[[replica]]\nname = "dead"\ndsn = "postgresql://monitor:{CANARY}@127.0.0.1:1/postgres"\n')
    state = tmp_path / "state"
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "dashboard.cli", "check", "--config", str(config)],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=60, cwd=ROOT,
                              env={**os.environ, "XDG_STATE_HOME": str(state)})
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr and CANARY not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith(f"config warning: {config}: replica[0].dsn: inline password")
    assert len(lines) == 2 and lines[1].startswith("scaledash: unexpected error (OSError: ")
    files = list((state / "scaledash").iterdir())
    assert len(files) == 1 and str(files[0]) in lines[1]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    report = files[0].read_text()
    assert "No space left on device" in report and "cmd_check" in report
    assert CANARY not in report
    assert "postgresql://" not in report and "Namespace(" not in report   # no locals (cfg, args)


# ------------------------------------------------------------ describe_error

@pytest.mark.parametrize("exc", [
    asyncpg.exceptions.ClientConfigurationError(
        f'invalid DSN: "postgresql://monitor:{CANARY}@db:5432/app?sslmode=bogus"'),
    asyncpg.exceptions.InterfaceError(f"cannot connect to host=db port=5432 user=monitor password={CANARY}"),
    ValueError(f"invalid literal for int() with base 10: 'x' in postgresql://monitor:{CANARY}@db:x/app"),
], ids=["client-configuration-error", "interface-error-keyword-dsn", "value-error-url"])
def test_describe_error_masks_a_password_echoed_by_the_driver(exc):
    out = describe_error(exc)
    assert CANARY not in out and MASK in out and "\n" not in out, out


def test_describe_error_masks_a_registered_password_libpq_echoes_without_a_keyword(isolated_secrets):
    Secret("libpq-Echo-42", "file:/etc/scaledash/pg")
    out = describe_error(Exception('missing "=" after "libpq-Echo-42" in connection info string'))
    assert "libpq-Echo-42" not in out and MASK in out


def test_describe_error_is_one_sanitised_line_within_its_limit():
    out = describe_error(RuntimeError("\x1b[2J" + "boom\n" * 500), limit=160)
    assert len(out) <= 160 and out.endswith("…") and "\x1b" not in out and "\n" not in out
    assert describe_error(TimeoutError()) == "TimeoutError"

"""Config validation and the `config check` / `check` paths (RELIABILITY.md cases 13-15, 35).

A broken config is the first thing an on-call user meets: it must end in clean
`config error: <path>: <reason>` lines and exit code 3, report every problem at once
with its key path and value, survive hostile files quickly, and never show a secret.
"""

from __future__ import annotations

import os
import random
import time
import tomllib
from pathlib import Path

import pytest

from conftest import CANARY, run_cli
from dashboard import config
from dashboard.config import ConfigError, parse_duration, read_document, validate
from dashboard.output import EXIT_UNKNOWN

# RELIABILITY.md asks for < 1 s. The bound is on this process's CPU time, not wall time:
# a shared machine's load stretches wall time, a quadratic parse stretches CPU time.
PARSE_BUDGET_S = 5.0

COMMANDS = [pytest.param(("config", "check"), id="config-check"), pytest.param(("check",), id="check")]

VALID_CONFIG = """
name = "fuzz"
interval = "1s"
timeout = "500ms"

[thresholds]
replica_lag_bytes = 1024
cache_hit_rate = 0.9

[[replica]]
name = "db"
dsn = "postgresql://monitor@127.0.0.1:5432/postgres"
password = "env:SCALEDASH_TEST_PG_PASSWORD"

[[cache]]
name = "sessions"
url = "redis://127.0.0.1:6379/0"

[[source]]
name = "app"
scrape = "http://127.0.0.1:8000/metrics"
preset = "resilience4j"

[[edge]]
name = "hello"
url = "http://127.0.0.1:8000/functions/v1/hello"
method = "POST"
headers = { Authorization = "env:SCALEDASH_TEST_TOKEN" }

[[cdn]]
name = "assets"
url = "https://cdn.example.com/app.js"

[[suite]]
name = "unit"
command = ["pytest", "-q"]

[[drill]]
name = "lag"
use = "replica-lag"
target = "db"
"""



def _problems(text: str, overrides: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        validate(tomllib.loads(text), "scaledash.toml", overrides)
    return caught.value.problems


def _problem_at(problems: list[str], key_path: str) -> str:
    matches = [p for p in problems if p.startswith(f"{key_path}: ")]
    assert len(matches) == 1, (key_path, problems)
    return matches[0]


def _assert_one_config_error(result, path: Path | str, reason: str) -> None:
    assert result.code == EXIT_UNKNOWN, result.text
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith(f"config error: {path}: "), lines[0]
    assert reason in lines[0], lines[0]


def _replica(name: str, extra: str = "", dsn: str = "postgresql://monitor@127.0.0.1:5432/postgres") -> str:
    return f'\n[[replica]]\nname = "{name}"\ndsn = "{dsn}"\n{extra}\n'


# ------------------------------------------------------------ case 13: unusable files

@pytest.mark.parametrize("command", COMMANDS)
def test_missing_config_file_is_one_config_error_line_with_exit_3(command, tmp_path):
    path = tmp_path / "absent.toml"
    _assert_one_config_error(run_cli(*command, "--config", str(path)), path, "no such file")


@pytest.mark.parametrize("command", COMMANDS)
def test_directory_given_as_config_is_one_config_error_line_with_exit_3(command, tmp_path):
    _assert_one_config_error(run_cli(*command, "--config", str(tmp_path)), tmp_path, "is a directory")


@pytest.mark.parametrize("command", COMMANDS)
def test_unreadable_config_path_is_one_config_error_line_with_exit_3(command, tmp_path):
    # Root reads any mode, so "unreadable" is a path that runs through a regular file.
    blocker = tmp_path / "file.toml"
    blocker.write_text('name = "x"\n')
    path = blocker / "x"
    _assert_one_config_error(run_cli(*command, "--config", str(path)), path, "Not a directory")


@pytest.mark.parametrize("command", COMMANDS)
def test_non_utf8_config_is_one_config_error_line_with_exit_3(command, tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    _assert_one_config_error(run_cli(*command, "--config", str(path)), path, "not UTF-8")


@pytest.mark.parametrize("command", COMMANDS)
def test_endless_device_as_config_is_refused_as_too_large(command):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero here")
    _assert_one_config_error(run_cli(*command, "--config", "/dev/zero", timeout=30), "/dev/zero", "too large")


def test_config_error_line_shows_no_raw_control_characters_from_the_path(tmp_path):
    path = tmp_path / "evil\x1b]52;c;SGk=\x07\u202e.toml"
    result = run_cli("config", "check", "--config", str(path))
    assert result.code == EXIT_UNKNOWN
    assert result.err.startswith("config error: ") and result.err.count("\n") == 1
    assert not any(ch in result.err for ch in "\x1b\x07\u202e"), repr(result.err)


# ------------------------------------------------------------ case 14: every problem at once

MANY_PROBLEMS = """
interval = "1s"
timeout = "3s"
colour = "blue"

[thresholds]
cache_hit_rate = 1.5
replica_lag_bytes = "lots"

[[replica]]
name = "db"
dsn = "postgresql://monitor@127.0.0.1:5432/postgres"

[[replica]]
name = "db"
dsn = "mysql://nope"

[[replica]]
name = "no-dsn"

[[cache]]
name = "sessions"
url = 6379

[[edge]]
name = "e"
url = "http://127.0.0.1:99999/x"
expect_status = 700
"""

EXPECTED_PROBLEMS = {           # key path -> text that must be on its line (the value it saw)
    "colour": "unknown key",
    "timeout": "'3s'",
    "thresholds.cache_hit_rate": "1.5",
    "thresholds.replica_lag_bytes": "'lots'",
    "replica[1].name": "duplicate name (also replica[0]) (got 'db')",
    "replica[1].dsn": "'mysql://nope'",
    "replica[2].dsn": "missing required key",
    "cache[0].url": "6379",
    "edge[0].url": "'http://127.0.0.1:99999/x'",
    "edge[0].expect_status": "700",
}


def test_every_problem_in_a_config_is_reported_at_once_with_key_path_and_value():
    problems = _problems(MANY_PROBLEMS)
    for key_path, shown in EXPECTED_PROBLEMS.items():
        assert shown in _problem_at(problems, key_path), (key_path, problems)
    assert len(problems) == len(EXPECTED_PROBLEMS), problems


def test_config_check_prints_every_problem_as_its_own_config_error_line(write_config):
    path = write_config(MANY_PROBLEMS)
    result = run_cli("config", "check", "--config", str(path))
    assert result.code == EXIT_UNKNOWN and result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == len(EXPECTED_PROBLEMS), result.err
    prefix = f"config error: {path}: "
    assert all(line.startswith(prefix) for line in lines), result.err
    assert {line[len(prefix):].split(": ", 1)[0] for line in lines} == set(EXPECTED_PROBLEMS)


def test_unknown_top_level_keys_are_reported_by_their_bare_name():
    problems = _problems('colour = "blue"\nname = 5\n')
    assert _problem_at(problems, "colour") == "colour: unknown key"
    assert "expected a string" in _problem_at(problems, "name")
    assert not any(p.startswith(".") for p in problems), problems


def test_empty_target_table_reports_its_missing_required_keys():
    problems = _problems("[[replica]]\n\n[[edge]]\n")
    for key_path in ("replica[0].name", "replica[0].dsn", "edge[0].name", "edge[0].url"):
        assert "missing required key" in _problem_at(problems, key_path)


def test_timeout_longer_than_interval_is_refused_with_both_values():
    line = _problem_at(_problems('interval = "500ms"\ntimeout = "2s"\n'), "timeout")
    assert "<= interval (0.5s)" in line and "'2s'" in line


@pytest.mark.parametrize("key, value", [("cache_hit_rate", "nan"), ("error_rate", "-0.5"),
                                        ("replica_lag_seconds", "nan"), ("replica_lag_seconds", "-1")])
def test_threshold_out_of_range_or_not_a_number_is_refused(key, value):
    problems = _problems(f"[thresholds]\n{key} = {value}\n")
    assert any(p.startswith("thresholds") for p in problems), problems


def test_names_must_be_unique_across_target_kinds():
    text = _replica("shared") + '\n[[cache]]\nname = "shared"\nurl = "redis://127.0.0.1:6379/0"\n'
    assert "duplicate name (also replica[0])" in _problem_at(_problems(text), "cache[0].name")


# ------------------------------------------------------------ case 15: hostile files

HOSTILE_FILES = {
    "toml-syntax-error": b'[[replica]\nname = "db\n',
    "binary-garbage": bytes(random.Random(15).randrange(256) for _ in range(64 * 1024)),
    "ten-megabytes": b"# " + b"x" * (10 * 1024 * 1024),
    "deeply-nested-arrays": b"a = " + b"[" * 100_000,
    "deeply-nested-closed-arrays": b"a = " + b"[" * 5000 + b"1" + b"]" * 5000,
    "deeply-nested-inline-tables": b"a = " + b"{b = " * 100_000,
    "dotted-key-100k-parts": b"a" + b".a" * 100_000 + b" = 1\n",
    "dotted-table-header-100k-parts": b"[" + b"a." * 100_000 + b"a]\n",
    "quoted-dotted-key-50k-parts": b'"a"' + b'."a"' * 50_000 + b" = 1\n",
    "non-utf8": b'name = "\xff\xfe"\n',
    "nul-byte": b'name = "a\x00b"\n',
    "utf16-with-bom": '\ufeffname = "x"\n'.encode("utf-16"),
}


@pytest.mark.parametrize("content", list(HOSTILE_FILES.values()), ids=list(HOSTILE_FILES))
def test_hostile_file_is_refused_as_a_config_error_within_the_parse_budget(content, tmp_path):
    path = tmp_path / "hostile.toml"
    path.write_bytes(content)
    started = time.process_time()
    with pytest.raises(ConfigError) as caught:
        validate(read_document(path), str(path))
    elapsed = time.process_time() - started
    assert elapsed < PARSE_BUDGET_S, f"took {elapsed:.2f}s"
    assert caught.value.problems and all(line.startswith(f"config error: {path}: ")
                                         for line in caught.value.lines())


@pytest.mark.parametrize("name", ["toml-syntax-error", "binary-garbage", "ten-megabytes",
                                  "deeply-nested-arrays", "dotted-key-100k-parts", "non-utf8"])
def test_hostile_file_through_the_cli_takes_only_the_config_error_path(name, tmp_path):
    path = tmp_path / "hostile.toml"
    path.write_bytes(HOSTILE_FILES[name])
    result = run_cli("check", "--config", str(path), timeout=30)
    assert result.code == EXIT_UNKNOWN and result.out == ""
    lines = result.err.splitlines()
    assert lines and all(line.startswith(f"config error: {path}: ") for line in lines), result.err
    assert "unexpected error" not in result.err


@pytest.mark.parametrize("text, reason", [
    ("interval = " + "9" * 5000 + "\n", "TOML number too long (integers are 64-bit)"),
    ("interval = " + "9" * 4000 + "\n", "interval: integer out of range (TOML integers are 64-bit)"),
    ("[thresholds]\nreplica_lag_seconds = " + "9" * 400 + "\n",
     "thresholds.replica_lag_seconds: integer out of range (TOML integers are 64-bit)"),
    ('[[replica]]\nname = "db"\ndsn = "postgresql://db/app"\nmax_lag_seconds = -' + "9" * 400 + "\n",
     "replica[0].max_lag_seconds: integer out of range (TOML integers are 64-bit)"),
], ids=["5000-digits", "4000-digits-duration", "400-digit-threshold", "400-digit-negative-in-a-section"])
def test_a_number_beyond_64_bits_is_a_config_error_not_a_crash_report(text, reason, tmp_path):
    path = tmp_path / "huge.toml"
    path.write_text(text)
    _assert_one_config_error(run_cli("config", "check", "--config", str(path)), path, reason)


def test_an_integer_at_the_64_bit_limits_is_judged_by_its_key_rule_as_usual():
    top = validate(tomllib.loads(f"[thresholds]\nreplica_lag_seconds = {2**63 - 1}\n"))
    assert top.thresholds.replica_lag_seconds == float(2**63 - 1)
    assert _problems(f"[thresholds]\nreplica_lag_seconds = {-(2**63)}\n") == \
        ["thresholds: lag thresholds must not be negative"]


def test_largest_accepted_config_of_many_table_headers_parses_within_the_budget(tmp_path):
    line_of = "[k{}.a.a.a.a]\n".format
    count = config.MAX_CONFIG_BYTES // len(line_of(99999))
    path = tmp_path / "headers.toml"
    path.write_text("".join(line_of(i) for i in range(count)))
    assert path.stat().st_size <= config.MAX_CONFIG_BYTES
    started = time.process_time()
    with pytest.raises(ConfigError):
        validate(read_document(path), str(path))
    assert time.process_time() - started < PARSE_BUDGET_S


def test_dotted_hostnames_in_values_are_not_mistaken_for_deep_keys(write_config):
    host = ".".join(f"label{i}" for i in range(40))
    path = write_config(_replica("db", dsn=f"postgresql://monitor@{host}:5432/app"))
    cfg = validate(read_document(path), str(path))
    assert cfg.replicas[0].dsn == f"postgresql://monitor@{host}:5432/app"


def _mutate(data: bytearray, rng: random.Random) -> bytearray:
    tokens = [b"[", b"]", b"[[", b"{", b"}", b'"', b"'", b'"""', b"=", b".", b",", b"\n", b"\x00", b"\xff",
              b"\\u0000", b"nan", b"-inf", b"-1", b"true", b"1e999", b"0x7fffffffffffffff", b"a.b.c",
              b"[[replica]]\n", b"[thresholds]\n", b"1979-05-27T07:32:00Z", b"file:", b"env:", b"\t"]
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(4)
        at = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[at:at] = rng.choice(tokens)
        elif op == 2:
            del data[at:at + rng.randint(1, 40)]
        else:
            data[at:at] = data[rng.randrange(len(data) + 1):][: rng.randint(1, 200)]
    return data


def test_loader_fuzz_raises_nothing_but_config_error(tmp_path, isolated_secrets):
    validate(tomllib.loads(VALID_CONFIG))            # the mutations start from a valid file
    rng = random.Random(20240615)
    path = tmp_path / "fuzz.toml"
    started = time.perf_counter()
    for i in range(600):
        if i % 3 == 0:
            data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 2000)))
        else:
            data = bytes(_mutate(bytearray(VALID_CONFIG.encode()), rng))
        path.write_bytes(data)
        try:
            validate(read_document(path), str(path))
        except ConfigError as exc:
            assert exc.problems, data
        except BaseException as exc:  # noqa: BLE001 - the assertion names what escaped
            pytest.fail(f"iteration {i}: {type(exc).__name__}: {exc!s:.200} for {data[:300]!r}")
    assert time.perf_counter() - started < 60


def _random_value(rng: random.Random, depth: int = 0):
    choices = [lambda: rng.choice(["", "x", "1s", "-1", "env:UNSET_SCALEDASH_FUZZ", "file:/nonexistent",
                                   "http://", "postgresql://u@h:99999/d", "\x1b[31m", "a" * 500]),
               lambda: rng.choice([0, -1, 1, 2**63 - 1, -(2**63)]),
               lambda: rng.choice([0.0, -0.5, 1e308, float("nan"), float("inf")]),
               lambda: rng.choice([True, False])]
    if depth < 3:
        choices += [lambda: [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))],
                    lambda: {rng.choice(["name", "url", "dsn", "x", "headers", "password"]):
                             _random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}]
    return rng.choice(choices)()


def _replace_random_leaf(node, rng: random.Random):
    if isinstance(node, dict) and node:
        key = rng.choice(list(node))
        node[key] = _random_value(rng) if rng.random() < 0.4 else _replace_random_leaf(node[key], rng)
        return node
    if isinstance(node, list) and node:
        i = rng.randrange(len(node))
        node[i] = _random_value(rng) if rng.random() < 0.4 else _replace_random_leaf(node[i], rng)
        return node
    return _random_value(rng)


def test_validate_fuzz_on_wrong_shapes_raises_nothing_but_config_error(isolated_secrets):
    rng = random.Random(35)
    for i in range(400):
        doc = tomllib.loads(VALID_CONFIG)
        for _ in range(rng.randint(1, 3)):
            doc = _replace_random_leaf(doc, rng)
        try:
            validate(doc)
        except ConfigError:
            pass
        except BaseException as exc:  # noqa: BLE001
            pytest.fail(f"iteration {i}: {type(exc).__name__}: {exc!s:.200} for {doc!r:.300}")


# ------------------------------------------------------------ case 35: secrets

def _secret_file(tmp_path: Path, mode: int, content: str = CANARY + "\n") -> Path:
    path = tmp_path / "pg-password"
    path.write_text(content)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660], ids=oct)
def test_group_or_other_readable_secret_file_is_refused_with_chmod_hint(mode, tmp_path, write_config):
    secret = _secret_file(tmp_path, mode)
    path = write_config(_replica("db", f'password = "file:{secret}"'))
    result = run_cli("config", "check", "--config", str(path))
    assert result.code == EXIT_UNKNOWN, result.text
    line = result.err.strip()
    assert line.startswith(f"config error: {path}: replica[0].password: ") and "\n" not in line
    assert f"chmod 600 {secret}" in line


def test_owner_only_secret_file_is_accepted_and_its_value_used(tmp_path, write_config, isolated_secrets):
    secret = _secret_file(tmp_path, 0o600)
    path = write_config(_replica("db", f'password = "file:{secret}"'))
    result = run_cli("config", "check", "--config", str(path))
    assert result.code == 0 and result.err == "", result.text
    assert result.out.startswith(f"config ok: {path}: 1 targets")
    cfg = config.load(str(path))
    assert cfg.replicas[0].password.reveal() == CANARY
    assert cfg.replicas[0].password.origin == f"file:{secret}"


def test_secret_file_path_with_a_nul_byte_is_a_config_error():
    problems = _problems(_replica("db", 'password = "file:/tmp/pw\\u0000x"'))
    assert "cannot read secret file" in _problem_at(problems, "replica[0].password")


def test_inline_password_warns_and_still_validates(write_config, isolated_secrets):
    path = write_config(_replica("db", f'password = "{CANARY}"'))
    result = run_cli("config", "check", "--config", str(path))
    assert result.code == 0, result.text
    assert result.out.startswith(f"config ok: {path}: 1 targets")
    warning = result.err.strip()
    assert warning.startswith(f"config warning: {path}: replica[0].password: inline password")
    assert '"env:NAME"' in warning, warning           # the advice survives redaction
    assert CANARY not in result.text


def test_inline_password_in_the_dsn_warns_and_is_taken_out_of_the_shown_dsn(isolated_secrets):
    cfg = validate(tomllib.loads(_replica("db", dsn=f"postgresql://monitor:{CANARY}@127.0.0.1:5432/app")))
    replica = cfg.replicas[0]
    assert replica.dsn == "postgresql://monitor@127.0.0.1:5432/app"
    assert replica.password.reveal() == CANARY
    assert [w.split(": ")[0] for w in cfg.warnings] == ["replica[0].dsn"]
    assert CANARY not in repr(cfg) and CANARY not in " ".join(cfg.warnings)


def test_percent_encoded_inline_password_is_decoded(isolated_secrets):
    cfg = validate(tomllib.loads(_replica("db", dsn="postgresql://monitor:p%40ss%2Fw0rd@127.0.0.1/app")))
    assert cfg.replicas[0].password.reveal() == "p@ss/w0rd"


def test_env_reference_to_an_unset_variable_is_an_error(write_config):
    name = "SCALEDASH_TEST_SURELY_UNSET_VARIABLE"
    assert name not in os.environ
    path = write_config(_replica("db", f'password = "env:{name}"'))
    result = run_cli("config", "check", "--config", str(path))
    assert result.code == EXIT_UNKNOWN
    assert result.err.strip() == (f"config error: {path}: replica[0].password: "
                                  f"environment variable {name} is not set")


def test_secret_values_never_appear_in_errors_warnings_or_reprs(tmp_path, isolated_secrets):
    file_value, inline_value, env_value = "file-Secret-8c1d", "inline-Secret-77aa", CANARY
    secret = _secret_file(tmp_path, 0o600, file_value)
    text = (_replica("a", f'password = "file:{secret}"')
            + _replica("b", 'password = "env:SCALEDASH_TEST_PG_PASSWORD"')
            + _replica("c", f'password = "{inline_value}"')
            + '\n[[edge]]\nname = "e"\nurl = "http://127.0.0.1/x"\n'
            + f'headers = {{ Authorization = "Bearer {inline_value}", X-Api-Key = "env:SCALEDASH_TEST_TOKEN" }}\n')
    cfg = validate(tomllib.loads(text))
    shown = repr(cfg) + str(cfg) + " ".join(cfg.warnings)
    shown += " ".join(repr(r.password) + str(r.password) + f"{r.password}" for r in cfg.replicas)
    for value in (file_value, inline_value, env_value):
        assert value not in shown
    assert {r.password.reveal() for r in cfg.replicas} == {file_value, env_value, inline_value}
    broken = text + _replica("c", f'password = "{inline_value}"') + 'bogus = "x"\n'
    lines = " ".join(pytest.raises(ConfigError, validate, tomllib.loads(broken)).value.lines())
    assert "duplicate name" in lines
    for value in (file_value, inline_value, env_value):
        assert value not in lines


@pytest.mark.parametrize("dsn", [
    f"postgresql://monitor:{CANARY}@127.0.0.1:99999/app",       # port out of range
    f"postgresql://monitor:{CANARY[:6]}/{CANARY[7:]}@db/app",   # unencoded '/' in the password
    f"postgresql://monitor:{CANARY[:6]}#{CANARY[7:]}@db/app",   # unencoded '#' in the password
    f"host=db password={CANARY} user=monitor",                   # a keyword DSN is not a URL
], ids=["port-out-of-range", "slash-in-password", "hash-in-password", "keyword-dsn"])
def test_bad_dsn_error_never_shows_the_password_or_a_piece_of_it(dsn, write_config):
    problems = _problems(_replica("db", dsn=dsn))
    line = _problem_at(problems, "replica[0].dsn")
    assert "bad URL" in line
    for piece in (CANARY, CANARY[:6], CANARY[7:]):
        assert piece not in line, line
    path = write_config(_replica("db", dsn=dsn))
    result = run_cli("config", "check", "--config", str(path))
    assert result.code == EXIT_UNKNOWN and "replica[0].dsn: bad URL" in result.err
    assert CANARY[:6] not in result.text and CANARY[7:] not in result.text


# ------------------------------------------------------------ durations

@pytest.mark.parametrize("value, seconds", [(1, 1.0), (0.5, 0.5), ("500ms", 0.5), ("2s", 2.0), ("1m", 60.0)])
def test_durations_accept_numbers_and_ms_s_m_units(value, seconds):
    assert parse_duration(value) == seconds
    assert validate({"interval": value}).interval == seconds


@pytest.mark.parametrize("value", ["fast", -1, True, "2h", "", "1 s s", 0])
def test_invalid_durations_are_errors_with_key_path_and_value(value):
    with pytest.raises(ConfigError) as caught:
        validate({"interval": value})
    assert _problem_at(caught.value.problems, "interval").endswith(f"(got {value!r})")


@pytest.mark.parametrize("interval", [0.05, 0.5, 1, 2, 13, 60, 3600])
def test_default_timeout_is_positive_and_never_above_the_interval(interval):
    cfg = validate({"interval": interval})
    assert 0 < cfg.timeout <= cfg.interval


# ------------------------------------------------------------ .pgpass and precedence

def test_interval_flag_overrides_the_file(write_config):
    path = write_config('interval = "1s"\n' + _replica("db"))
    assert "interval 1s," in run_cli("config", "check", "--config", str(path)).out
    result = run_cli("--interval", "2s", "config", "check", "--config", str(path))
    assert result.code == 0, result.text
    assert "interval 2s, timeout 1.6s" in result.out


def test_timeout_flag_overrides_the_file_and_is_still_checked_against_the_interval(write_config):
    path = write_config('interval = "2s"\ntimeout = "1s"\n' + _replica("db"))
    assert "timeout 1.5s" in run_cli("--timeout", "1500ms", "config", "check", "--config", str(path)).out
    result = run_cli("--timeout", "3s", "config", "check", "--config", str(path))
    assert result.code == EXIT_UNKNOWN
    assert f"config error: {path}: timeout: the per-probe deadline must be <= interval" in result.err


def test_environment_overrides_the_file_and_flags_override_the_environment(write_config):
    path = write_config('interval = "1s"\n')
    from_env = run_cli("config", "check", "--config", str(path), env={"SCALEDASH_INTERVAL": "3s"})
    assert "interval 3s" in from_env.out, from_env.text
    from_flag = run_cli("--interval", "2s", "config", "check", "--config", str(path),
                        env={"SCALEDASH_INTERVAL": "3s"})
    assert "interval 2s" in from_flag.out, from_flag.text


def test_a_cache_can_set_its_own_hit_rate_floor_within_0_and_1():
    ok = config.validate({"cache": [{"name": "r", "url": "redis://127.0.0.1:1/0", "min_hit_rate": 0.5}]})
    assert ok.caches[0].min_hit_rate == 0.5
    with pytest.raises(config.ConfigError) as caught:
        config.validate({"cache": [{"name": "r", "url": "redis://127.0.0.1:1/0", "min_hit_rate": 1.5}]})
    assert "cache[0].min_hit_rate" in caught.value.problems[0]


def test_a_target_can_have_its_own_interval_and_a_bad_one_is_reported():
    ok = config.validate({"interval": "1s", "cdn": [{"name": "a", "url": "http://x/", "interval": "5s"}]})
    assert ok.intervals == {"a": 5.0}
    with pytest.raises(config.ConfigError) as caught:
        config.validate({"cdn": [{"name": "a", "url": "http://x/", "interval": "soon"}]})
    assert caught.value.problems[0].startswith("cdn[0].interval")


# ------------------------------------------------------------ edges a new user hits

def test_utf8_bom_at_the_start_of_the_file_is_accepted(tmp_path):
    path = tmp_path / "notepad.toml"
    path.write_bytes(b"\xef\xbb\xbf" + 'name = "bom"\ninterval = "2s"\n'.encode())
    result = run_cli("config", "check", "--config", str(path))
    assert result.code == 0, result.text
    assert "interval 2s" in result.out and "dashboard name: bom" in result.out


@pytest.mark.parametrize("section, key, url", [
    ("replica", "dsn", f"postgresql://monitor@127.0.0.1:5432/app?sslmode=disable&password={CANARY}"),
    ("cache", "url", f"redis://127.0.0.1:6379/0?password={CANARY}"),
], ids=["replica", "cache"])
def test_password_in_the_url_query_warns_and_is_taken_out_of_the_shown_url(section, key, url, isolated_secrets):
    cfg = validate({section: [{"name": "x", key: url}]})
    target = (cfg.replicas or cfg.caches)[0]
    assert CANARY not in getattr(target, key) and "password" not in getattr(target, key)
    assert target.password.reveal() == CANARY
    assert [w.split(": ")[0] for w in cfg.warnings] == [f"{section}[0].{key}"]
    assert "inline password" in cfg.warnings[0] and CANARY not in repr(cfg)
    if section == "replica":
        assert target.dsn.endswith("?sslmode=disable")       # the other parameters stay


@pytest.mark.parametrize("section, key, url, expected", [
    ("replica", "dsn", "mysql://monitor@db:3306/app", "expected postgresql://host or postgres://host"),
    ("cache", "url", "memcached://127.0.0.1:11211", "expected redis://host or rediss://host"),
    ("edge", "url", "ftp://127.0.0.1/fn", "expected http://host or https://host"),
    ("source", "scrape", "unix:///run/app.sock", "expected http://host or https://host"),
])
def test_an_unsupported_url_scheme_says_so(section, key, url, expected):
    scheme = url.split("://")[0]
    line = _problem_at(_problems(f'[[{section}]]\nname = "x"\n{key} = "{url}"\n'), f"{section}[0].{key}")
    assert line.startswith(f"{section}[0].{key}: unsupported scheme {scheme}://; {expected}"), line


def test_sslmode_is_checked_before_connecting():
    line = _problem_at(_problems(_replica("db", dsn="postgresql://monitor@db/app?sslmode=requir")), "replica[0].dsn")
    assert line == ("replica[0].dsn: sslmode must be one of disable, allow, prefer, require, verify-ca, "
                    "verify-full (got 'requir')")
    for mode in ("disable", "require", "verify-full"):
        validate(tomllib.loads(_replica("db", dsn=f"postgresql://monitor@db/app?sslmode={mode}")))


@pytest.mark.parametrize("dsn, problem", [
    (f"postgresql://monitor@db:99999/app?password={CANARY}", "replica[0].dsn: bad URL: port out of range"),
    (f"postgresql://monitor@db/app?sslmode=requir&password={CANARY}", "replica[0].dsn: sslmode must be one of"),
], ids=["bad-port", "bad-sslmode"])
def test_a_password_in_a_bad_dsn_query_is_never_echoed_by_its_error(dsn, problem, write_config):
    path = write_config(_replica("db", dsn=dsn))
    result = run_cli("config", "check", "--config", str(path))     # run_cli fails on the canary
    _assert_one_config_error(result, path, problem)


def test_a_password_in_a_good_dsn_query_warns_through_the_cli_without_echoing_it(write_config):
    path = write_config(_replica("db", dsn=f"postgresql://monitor@db/app?password={CANARY}"))
    result = run_cli("config", "check", "--config", str(path))
    assert result.code == 0, result.text
    assert result.err.splitlines() == [f"config warning: {path}: replica[0].dsn: inline password in the URL; "
                                       "prefer a password = \"env:NAME\" reference"]


@pytest.mark.parametrize("window", ["0s", "0", "0ms", "61s", "2m"])
def test_a_check_window_outside_its_rule_is_refused_with_the_rule_as_it_is(window, write_config):
    path = write_config(_replica("db"))
    result = run_cli("check", "--window", window, "--config", str(path))
    assert result.code == EXIT_UNKNOWN and result.out == ""
    assert result.err == f"scaledash: --window must be more than 0s and at most 60s (got {window}) " \
                         "(see scaledash --help)\n"


def test_a_check_window_at_its_upper_bound_is_accepted(write_config):
    path = write_config('interval = "1s"\n')          # no targets: the window is checked first
    result = run_cli("check", "--window", "60s", "--config", str(path))
    assert "--window" not in result.err and "nothing to check" in result.err

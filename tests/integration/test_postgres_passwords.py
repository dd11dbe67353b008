"""Passwords reach a real PostgreSQL the ways a user gives them: inline in the config
(with a warning), and through libpq's .pgpass (tests/test_config.py has the rest of the
config rules, which need no server)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import CANARY, run_cli


def _replica(name: str, extra: str = "", dsn: str = "postgresql://monitor@127.0.0.1:5432/postgres") -> str:
    return f'\n[[replica]]\nname = "{name}"\ndsn = "{dsn}"\n{extra}\n'


def test_inline_password_works_against_real_postgres(pg, write_config):
    path = write_config(_replica("primary", f'password = "{CANARY}"', dsn=pg.dsn(pg.primary)))
    result = run_cli("check", "--json", "--config", str(path))
    assert "config warning:" in result.err
    assert json.loads(result.out)["components"][0]["state"] == "OK", result.out


def _pgpass(tmp_path: Path, password: str) -> Path:
    path = tmp_path / "pgpass"
    path.write_text(f"127.0.0.1:*:*:monitor:{password}\n")
    path.chmod(0o600)
    return path


def _replica_state(pg, tmp_path, write_config, pgpass: Path) -> dict:
    path = write_config(_replica("replica-1", dsn=pg.dsn(pg.replicas[0])))
    assert "PGPASSWORD" not in os.environ
    result = run_cli("check", "--json", "--config", str(path), env={"PGPASSFILE": str(pgpass)})
    return json.loads(result.out)["components"][0]


def test_pgpass_file_supplies_the_replica_password(pg, tmp_path, write_config):
    component = _replica_state(pg, tmp_path, write_config, _pgpass(tmp_path, CANARY))
    assert component["state"] == "OK", component


def test_wrong_password_in_pgpass_leaves_the_replica_not_ok(pg, tmp_path, write_config):
    component = _replica_state(pg, tmp_path, write_config, _pgpass(tmp_path, "not-the-password"))
    assert component["state"] != "OK", component


def test_password_in_the_dsn_query_still_connects_to_real_postgres(pg, write_config):
    path = write_config(_replica("primary", dsn=f"{pg.dsn(pg.primary)}?password={CANARY}"))
    result = run_cli("check", "--json", "--config", str(path))
    assert "replica[0].dsn: inline password" in result.err
    assert json.loads(result.out)["components"][0]["state"] == "OK", result.out

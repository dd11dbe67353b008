"""Load and validate the TOML configuration before anything connects.

The keys are a stable contract (DESIGN.md, "Configuration"). This module finds and
reads the file; the schema check lives in `config_schema` and the value types in
`config_types`, both re-exported here so callers import everything from one place.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from dashboard.config_schema import PRESETS, parse_duration, validate
from dashboard.config_types import (
    CacheTarget,
    CdnTarget,
    Config,
    ConfigError,
    EdgeTarget,
    ReplicaTarget,
    Secret,
    ServiceTarget,
    SourceTarget,
    SuiteTarget,
    Thresholds,
    report_line,
)

__all__ = [
    "MAX_CONFIG_BYTES",
    "PRESETS",
    "CacheTarget",
    "CdnTarget",
    "Config",
    "ConfigError",
    "EdgeTarget",
    "ReplicaTarget",
    "Secret",
    "ServiceTarget",
    "SourceTarget",
    "SuiteTarget",
    "Thresholds",
    "find_config",
    "load",
    "parse_duration",
    "read_document",
    "report_line",
    "validate",
]

# Real configs are a few KB; tomllib needs ~2.5 s for a crafted 1 MB file of table headers
# and RELIABILITY.md asks for < 1 s, which 256 KiB keeps (~0.6 s).
MAX_CONFIG_BYTES = 256 * 1024


def find_config(explicit: str | None) -> Path:
    """--config, else $SCALEDASH_CONFIG, else ./scaledash.toml, else the user config dir."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("SCALEDASH_CONFIG"):
        return Path(os.environ["SCALEDASH_CONFIG"]).expanduser()
    local = Path("scaledash.toml")
    if local.exists():
        return local
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "scaledash" / "scaledash.toml"


# tomllib's time and memory grow with the square of a dotted key's parts (`a.a.a...`):
# 20,000 parts take 12 s and a 1 MB file never finishes. Our keys have at most 3 parts.
_MAX_KEY_PARTS = 64
_DOTTED_KEY = re.compile(r"""(?<![A-Za-z0-9_\\-])(?:(?:[A-Za-z0-9_-]++|"(?:[^"\\\n]|\\.)*+"|'[^'\n]*+')"""
                         r"[ \t]*+\.[ \t]*+)++")


def _has_deep_dotted_key(text: str) -> bool:
    """True if a run of dotted key parts is long enough to stall tomllib (linear scan)."""
    return any(m.end() - m.start() >= 2 * _MAX_KEY_PARTS and m.group().count(".") >= _MAX_KEY_PARTS
               for m in _DOTTED_KEY.finditer(text))


def read_document(path: Path) -> dict:
    """Read and parse a TOML file; every failure becomes a ConfigError with one reason."""
    shown = str(path)
    try:
        if path.is_dir():
            raise ConfigError(shown, ["is a directory, not a config file"])
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(shown, [f"file too large ({size} bytes; the limit is {MAX_CONFIG_BYTES})"])
        with path.open("rb") as handle:  # bounded: /dev/zero or a pipe has no st_size
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(shown, [f"file too large (more than {MAX_CONFIG_BYTES} bytes)"])
    except FileNotFoundError:
        raise ConfigError(shown, ["no such file (give --config FILE or set SCALEDASH_CONFIG)"]) from None
    except PermissionError:
        raise ConfigError(shown, ["permission denied"]) from None
    except OSError as exc:
        raise ConfigError(shown, [exc.strerror or type(exc).__name__]) from None
    try:
        # utf-8-sig: Windows editors (Notepad) start a UTF-8 file with a BOM, which
        # tomllib refuses as a syntax error on line 1.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(shown, [f"not UTF-8 text (byte {exc.start})"]) from None
    if _has_deep_dotted_key(text):
        raise ConfigError(shown, [f"TOML nesting too deep (a dotted key of {_MAX_KEY_PARTS} or more parts)"])
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(shown, [f"TOML syntax error: {exc}"]) from None
    except RecursionError:
        raise ConfigError(shown, ["TOML nesting too deep"]) from None
    except ValueError as exc:
        # Python refuses to turn more than 4300 digits into an int (CVE-2020-10735), and
        # tomllib lets that ValueError out: a 5000-digit number is a config error too.
        if "digits" not in str(exc):
            raise
        raise ConfigError(shown, ["TOML number too long (integers are 64-bit)"]) from None


def load(explicit: str | None = None, overrides: dict | None = None) -> Config:
    """Find, read and validate the config. Raises ConfigError, never anything else."""
    path = find_config(explicit)
    doc = read_document(path)
    return validate(doc, str(path), overrides)

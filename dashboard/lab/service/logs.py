"""Logging for the lab's processes: one line per notable event, on stderr, redacted.

Every record passes through `dashboard.redact.redact()` in a filter, so a secret
that slips into a message (a library error echoing a DSN, say) is masked at this
one choke point instead of at each call site.
"""

from __future__ import annotations

import logging
import sys

from dashboard.redact import redact, sanitize


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            # Tracebacks can carry locals and DSNs; the exception's own line is enough.
            message += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
            record.exc_info = None
        record.msg, record.args = sanitize(redact(message), limit=400), None
        return True


def configure(process_name: str, level: int = logging.INFO) -> logging.Logger:
    """Send the lab loggers to stderr as single redacted lines; return this process's logger."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(asctime)s {process_name} %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log would add a line per request (40/s) and is off anyway;
    # asyncpg and redis log little, but only warnings are notable.
    for noisy in ("aiohttp.access", "asyncpg", "redis"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return logging.getLogger(f"lab.{process_name}")


def run_process(name: str, argv: list[str] | None, load, run, run_errors: tuple = (Exception,)) -> int:
    """The `main()` of every lab process: one settings-file argument, one-line errors.

    `load(path)` raises SettingsError (or ValueError/KeyError/TypeError/OSError) for
    unusable settings: exit 2. `run(settings, log)` is awaited; one of `run_errors`
    ends it with exit 1. A clean stop is exit 0.
    """
    import asyncio

    from dashboard.lab.service.settings import SettingsError

    argv = sys.argv[1:] if argv is None else argv
    log = configure(name)
    if len(argv) != 1:
        log.error("usage: python -m %s SETTINGS.json", f"dashboard.lab.{name}")
        return 2
    try:
        settings = load(argv[0])
    except SettingsError as exc:
        log.error("%s", exc)
        return 2
    except KeyError as exc:
        log.error("settings key %s is missing", exc)
        return 2
    except (OSError, ValueError, TypeError) as exc:
        log.error("bad settings %s: %s", argv[0], exc)
        return 2
    try:
        asyncio.run(run(settings, log))
    except run_errors as exc:
        log.error("%s failed: %s: %s", name, type(exc).__name__, exc)
        return 1
    return 0

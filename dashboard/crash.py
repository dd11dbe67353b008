"""The last line of defence: an unexpected exception becomes one helpful, redacted line.

Why this exists: Python and Textual print tracebacks with local variables, and a DSN
with its password has been seen on screen that way. Every unexpected error ends here
instead: the full traceback (redacted, no locals) goes to a crash file that the user
can attach to a bug report, and the terminal gets one line pointing at it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from dashboard.redact import redact, safe_message


def crash_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "scaledash"


def write_report(exc: BaseException) -> Path | None:
    """Write a redacted traceback (frames only, never locals); None if nothing is writable."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    body = f"scaledash crash report {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n\n{redact(text)}"
    for folder in (crash_dir(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(body)
            return path
        except OSError:
            continue
    return None


def report(exc: BaseException, stream=None) -> None:
    """Print the one line for an unexpected error."""
    stream = stream or sys.stderr
    path = write_report(exc)
    where = f"; details in {path}" if path else ""
    message = safe_message(f"{type(exc).__name__}: {exc}", 200)  # remote text may hold escapes
    print(f"scaledash: unexpected error ({message}){where}. Please report it.", file=stream)

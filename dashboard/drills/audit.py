"""The audit journal: an intent and an outcome record for every drill attempt.

Append-only JSON lines in `<state_dir>/audit.jsonl`, mode 0600 (RELIABILITY.md case
30). Every attempt, whether it ran, was cancelled at the confirmation, refused by a
pre-flight, or ended without a known result, writes its intent first and its outcome
last, with operator, host, target, drill, the steps and the timings. A journal others
can read is refused rather than written to: it names operators, hosts and topology.
No secret value goes in: records are built from names and labels, and every string
passes the redaction chokepoint on the way (journal.append_line).
"""

from __future__ import annotations

import getpass
import os
import socket
import stat
import time
import uuid
from pathlib import Path
from typing import Any

from dashboard.drills.journal import append_line, private_dir

FILE = "audit.jsonl"


class AuditError(Exception):
    """The journal cannot be written safely; the drill must not run without it."""


def operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def path_in(state_dir: Path) -> Path:
    return state_dir / FILE


def check_writable(state_dir: Path) -> Path:
    """The journal's path, after checking it may be written (0600, a regular file)."""
    path = path_in(private_dir(state_dir))
    try:
        st = path.lstat()
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise AuditError(f"audit journal {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise AuditError(f"audit journal {path} is not a regular file")
    if st.st_mode & 0o077:
        raise AuditError(f"audit journal {path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}): "
                         f"chmod 600 {path}")
    return path


class Attempt:
    """One attempt: `intent()` once, then `outcome()` once (a second outcome is ignored)."""

    def __init__(self, state_dir: Path, *, drill: str, target: str, mode: str, steps: list[str],
                 confirmation: str, run: str | None = None, wall=time.time) -> None:
        self.path = check_writable(state_dir)
        self.wall = wall
        self.started = wall()
        self.done = False
        self.base = {"attempt": uuid.uuid4().hex[:12], "run": run, "operator": operator(),
                     "host": socket.gethostname(), "pid": os.getpid(), "drill": drill, "target": target,
                     "mode": mode}
        self._steps = steps
        self._confirmation = confirmation

    def _write(self, record: str, **fields: Any) -> None:
        at = self.wall()
        append_line(self.path, {"record": record, "at": at,
                                "at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
                                **self.base, **fields})

    def intent(self) -> "Attempt":
        self._write("intent", steps=self._steps, confirmation=self._confirmation)
        return self

    def outcome(self, outcome: str, reason: str = "", timings: dict | None = None,
                figures: dict | None = None) -> None:
        if self.done:
            return
        self.done = True
        self._write("outcome", outcome=outcome, reason=reason, duration_s=round(self.wall() - self.started, 3),
                    timings=timings or {}, figures=figures or {})


def record_cancelled(state_dir: Path, drill: str, target: str, steps: list[str], reason: str) -> None:
    """An attempt that ended at the confirmation (Esc, a wrong name, no terminal)."""
    attempt = Attempt(state_dir, drill=drill, target=target, mode="run", steps=steps, confirmation="none")
    attempt.intent()
    attempt.outcome("cancelled", reason)

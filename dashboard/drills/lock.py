"""One drill per target at a time, and a lock that says who holds it.

`<state_dir>/locks/<target>.lock` is held with flock(2) for the whole run: the kernel
frees it when the holding process dies, whatever way it dies, so a crashed drill never
leaves a target locked. The file holds the holder (user, host, PID, since, drill, run)
so the second session can say who it is waiting for.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import time
from pathlib import Path

from dashboard.drills.audit import operator
from dashboard.drills.journal import private_dir


class LockHeld(Exception):
    """Another drill holds the target; the message says who, since when."""


def _path(state_dir: Path, target: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", target)[:80]
    private_dir(state_dir)                  # first: mkdir(parents=True) would make it 0755
    return private_dir(state_dir / "locks") / f"{safe}.lock"


def holder_text(info: dict) -> str:
    since = time.strftime("%H:%M:%S", time.localtime(info.get("since", 0)))
    return (f"drill {info.get('drill', '?')} by {info.get('user', '?')}@{info.get('host', '?')} "
            f"(pid {info.get('pid', '?')}) since {since}")


def holder(state_dir: Path, target: str) -> dict | None:
    """Who holds the target now, or None when it is free."""
    path = _path(state_dir, target)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(path) or {"drill": "?"}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text()[:4096])
        return value if isinstance(value, dict) else None
    except (OSError, ValueError):
        return None


class TargetLocks:
    """The locks of every target a drill acts on: all taken, or none."""

    def __init__(self, state_dir: Path, targets: tuple[str, ...], drill: str, run: str) -> None:
        self.state_dir = state_dir
        self.targets = tuple(sorted(set(targets)))
        self.info = {"user": operator(), "host": socket.gethostname(), "pid": os.getpid(),
                     "since": time.time(), "drill": drill, "run": run}
        self._fds: list[int] = []

    def acquire(self) -> "TargetLocks":
        try:
            for target in self.targets:
                self._take(target)
        except BaseException:
            self.release()
            raise
        return self

    def _take(self, target: str) -> None:
        path = _path(self.state_dir, target)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            info = _read(path) or {}
            raise LockHeld(f"{target} is held by {holder_text(info)}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({**self.info, "target": target}).encode(), 0)
        self._fds.append(fd)

    def release(self) -> None:
        for fd in self._fds:
            try:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        self._fds.clear()

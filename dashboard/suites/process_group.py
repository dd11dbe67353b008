"""Stop a whole process group and know when it is really gone.

`killpg(pgid, 0)` says a group exists while any member is a zombie, and a container's
PID 1 may never reap orphans, so "gone" is read from /proc: no process whose group is
`pgid` and whose state is not Z (a zombie runs nothing and holds no port). Where /proc
is missing, `killpg(pgid, 0)` is the fallback.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

_POLL_S = 0.05
_KILL_WAIT_S = 5.0


def _stat_fields(pid: str) -> tuple[str, int] | None:
    """(state, pgrp) of a process from /proc/<pid>/stat; the name may hold spaces and parens."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    rest = data[data.rfind(b")") + 2:].split()
    if len(rest) < 3:
        return None
    return rest[0].decode(), int(rest[2])


def live_members(pgid: int) -> list[int]:
    """The pids of the group's processes that are not zombies."""
    if not os.path.isdir("/proc/self"):
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(entry)
            if fields and fields[1] == pgid and fields[0] != "Z":
                members.append(int(entry))
    return members


def _signal(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def _gone_within(pgid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while live_members(pgid):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL_S)
    return True


async def stop(pgid: int, grace_s: float) -> bool:
    """SIGTERM the group, SIGKILL what is left after `grace_s`; True once none is left."""
    if not live_members(pgid):
        return True
    _signal(pgid, signal.SIGTERM)
    if await _gone_within(pgid, grace_s):
        return True
    _signal(pgid, signal.SIGKILL)
    return await _gone_within(pgid, _KILL_WAIT_S)

"""Which recordings are being written on a state directory, so a drill's report can say
where to replay it.

A recorder (`scaledash record`/`daemon`, or a dashboard with `--record`) of a config
announces itself in `<state_dir>/recordings/<pid>.json` while it writes, and withdraws
when it stops; a recorder that dies leaves a file whose PID is gone (or reused: the
process start time is kept too), which readers skip. The drill's report lists every
recording live at its end, with the command that replays the drill's window.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from dashboard.drills.journal import pid_alive, private_dir, process_start_ticks


def _folder(state_dir: Path) -> Path:
    return state_dir / "recordings"


def announce(state_dir: Path, recording: Path) -> Path | None:
    """Say that this process records `recording`; the marker's path, or None when the
    state directory cannot be written (a recording does not need it)."""
    try:
        private_dir(state_dir)
        folder = private_dir(_folder(state_dir))
        marker = folder / f"{os.getpid()}.json"
        marker.write_text(json.dumps({"path": str(Path(recording).resolve()), "pid": os.getpid(),
                                      "start_ticks": process_start_ticks(os.getpid()), "since": time.time()}))
        return marker
    except OSError:
        return None


def withdraw(marker: Path | None) -> None:
    if marker is not None:
        try:
            marker.unlink()
        except OSError:
            pass


def active(state_dir: Path) -> list[dict]:
    """The recordings being written now (path, pid, since), oldest first."""
    found = []
    for marker in sorted(_folder(state_dir).glob("*.json")) if _folder(state_dir).is_dir() else ():
        try:
            info = json.loads(marker.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(info, dict) and isinstance(info.get("pid"), int) and isinstance(info.get("path"), str) \
                and pid_alive(info["pid"], info.get("start_ticks")):
            found.append(info)
    return sorted(found, key=lambda i: i.get("since") or 0)

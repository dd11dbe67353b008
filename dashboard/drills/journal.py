"""Where a drill keeps its records, and the run journal a dashboard follows.

    <state_dir>/audit.jsonl            every attempt's intent and outcome (audit.py)
    <state_dir>/locks/<target>.lock    who holds a target now (lock.py)
    <state_dir>/runs/<run>.jsonl       one run's timeline, written as it happens
    <state_dir>/runs/<run>.heartbeat   touched by the dashboard that watches the run
    <state_dir>/reports/<run>.md|json  the reports of a finished run (reports.py)

The run journal is JSON lines, one `Entry` per line, the first a `start` record (pid,
drill, target, plan) and the last an `end` record (verdict, figures, report paths). A
dashboard reads it from where it left off, so a new dashboard re-attaches to a drill
that is still running by finding a journal without an `end` whose process lives.
Everything written passes the redaction chokepoint.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from dashboard.drills.model import Entry
from dashboard.redact import redact, sanitize

HEARTBEAT_EVERY_S = 1.0
HEARTBEAT_LOST_S = 6.0        # a watcher silent this long is gone (SSH drop, closed dashboard)
MAX_LINE = 64 * 1024          # a journal line longer than this is a foreign file, not ours


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "scaledash"


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def run_id(drill: str, wall: float | None = None) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(wall or time.time()))
    return f"{stamp}-{re.sub(r'[^A-Za-z0-9_-]', '_', drill)[:40]}-{os.getpid()}"


def clean(value: Any) -> Any:
    """Every string in a record, redacted and made one safe line (the one write path)."""
    if isinstance(value, str):
        return sanitize(redact(value), 2000)
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, float) and value != value:   # NaN is not JSON
        return None
    return value


def append_line(path: Path, record: dict) -> None:
    """One JSON line, appended with O_APPEND so concurrent writers never interleave a line."""
    data = (json.dumps(clean(record), allow_nan=False, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class RunFiles:
    state_dir: Path
    run: str

    @property
    def journal(self) -> Path:
        return self.state_dir / "runs" / f"{self.run}.jsonl"

    @property
    def heartbeat(self) -> Path:
        return self.state_dir / "runs" / f"{self.run}.heartbeat"

    @property
    def log(self) -> Path:
        return self.state_dir / "runs" / f"{self.run}.log"

    @property
    def report_md(self) -> Path:
        return self.state_dir / "reports" / f"{self.run}.md"

    @property
    def report_json(self) -> Path:
        return self.state_dir / "reports" / f"{self.run}.json"

    def prepare(self) -> "RunFiles":
        private_dir(self.state_dir)         # first: mkdir(parents=True) would make it 0755
        private_dir(self.state_dir / "runs")
        private_dir(self.state_dir / "reports")
        return self


class Journal:
    """The writer side: the drill's own process appends entries as they happen."""

    def __init__(self, files: RunFiles, wall=time.time) -> None:
        self.files = files.prepare()
        self.wall = wall
        self.entries: list[Entry] = []

    def add(self, kind: str, text: str, status: str | None = None, **data: Any) -> Entry:
        entry = Entry(self.wall(), kind, sanitize(redact(text), 300), status, clean(data))
        self.entries.append(entry)
        append_line(self.files.journal, asdict(entry))
        return entry


def read_entries(path: Path, offset: int = 0) -> tuple[list[Entry], int]:
    """Complete lines from `offset`; returns the entries and the offset to read from next.
    A half-written last line waits for the next read; a line that is not ours is skipped."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(4 * 1024 * 1024)
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    entries = []
    for raw in data[:end].splitlines():
        entry = _entry(raw)
        if entry is not None:
            entries.append(entry)
    return entries, offset + end


def _entry(raw: bytes) -> Entry | None:
    if len(raw) > MAX_LINE:
        return None
    try:
        value = json.loads(raw)
        return Entry(float(value["at"]), str(value["kind"]), sanitize(str(value["text"]), 300),
                     None if value.get("status") is None else str(value["status"]),
                     value.get("data") if isinstance(value.get("data"), dict) else {})
    except (ValueError, KeyError, TypeError, RecursionError):
        return None


def touch(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        os.utime(path)
    except OSError:
        pass


def heartbeat_age(path: Path, now: float | None = None) -> float | None:
    try:
        return (now or time.time()) - path.stat().st_mtime
    except OSError:
        return None


def pid_alive(pid: int, start_ticks: int | None = None) -> bool:
    """Running and still the process we mean (not a PID the kernel gave to another)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start_ticks is None:
        return True
    return process_start_ticks(pid) == start_ticks


def process_start_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


@dataclass(frozen=True)
class RunInfo:
    """A run found on disk: its files, its start record and its end (None while running)."""

    files: RunFiles
    start: Entry
    end: Entry | None

    @property
    def running(self) -> bool:
        pid = self.start.data.get("pid")
        return self.end is None and isinstance(pid, int) and pid_alive(pid, self.start.data.get("start_ticks"))


def runs(state_dir: Path, limit: int = 200) -> Iterator[RunInfo]:
    """The newest runs first (by file name, which starts with the UTC start time)."""
    folder = state_dir / "runs"
    try:
        names = sorted((p.name for p in folder.glob("*.jsonl")), reverse=True)[:limit]
    except OSError:
        return
    for name in names:
        files = RunFiles(state_dir, name.removesuffix(".jsonl"))
        entries, _ = read_entries(files.journal)
        # Not always the first line: the runner's state watcher may write before it.
        start = next((e for e in entries if e.kind == "start"), None)
        if start is not None:
            end = next((e for e in reversed(entries) if e.kind == "end"), None)
            yield RunInfo(files, start, end)


def running(state_dir: Path) -> list[RunInfo]:
    return [r for r in runs(state_dir) if r.running]

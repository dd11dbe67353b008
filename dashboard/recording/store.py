"""A recording: every snapshot the engine made, in one SQLite file.

Why SQLite (the standard library's): each snapshot is written in a transaction of its
own in WAL mode, so a crash or a SIGKILL mid-write loses at most the snapshot being
written and never what was committed before it; readers follow the file while the
writer appends (`attach`) without a lock between them; and a time index makes "the
snapshot at 03:12:40" one query. Nothing here needs a server or a new dependency.

The format (version 1), also described in the README:

    meta(key TEXT PRIMARY KEY, value TEXT)
        format = "scaledash-recording", version = "1", created_at (epoch seconds), host,
        name (the config's dashboard name, for the viewers' header)
    frames(seq INTEGER PRIMARY KEY, at REAL, base INTEGER, states TEXT, body BLOB)
        at      the snapshot's time (epoch seconds, the engine's `generated_at`)
        base    the seq of the keyframe this frame is stored against; base = seq for a keyframe
        states  a digest of every row's state and the overall state (equal digests: no
                state changed), so seeking to the next state change reads no body
        body    zlib-compressed JSON: `codec.encode(snapshot)` for a keyframe,
                `codec.diff(keyframe, encode(snapshot))` for the others
    drill_entries(at, run, drill, target, kind, status, text, data)
        each line of a drill's timeline (the run's journal) as the poller read it:
        a replay shows it beside the panels, as the live dashboard did

A keyframe starts every `KEYFRAME_EVERY` frames, or sooner when a delta grows past
half its keyframe: any frame is rebuilt from two bodies, never a chain. Retention drops
whole keyframe groups older than `keep_s` behind the newest frame, and gives the pages
back to the file system (auto_vacuum = INCREMENTAL).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..drills import recordings
from ..drills.model import Entry
from ..model import Snapshot
from ..redact import describe_error, redact
from .codec import decode, diff, encode, patch

FORMAT = "scaledash-recording"
VERSION = 1
KEYFRAME_EVERY = 120
# Retention is looked at once per this many seconds of recorded time, not on every write.
RETENTION_EVERY_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS frames (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    base INTEGER NOT NULL,
    states TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS frames_at ON frames (at);
CREATE TABLE IF NOT EXISTS drill_entries (
    at REAL NOT NULL,
    run TEXT NOT NULL,
    drill TEXT NOT NULL,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT,
    text TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS drill_entries_at ON drill_entries (at);
"""

# A finished drill's timeline stays beside a replay's panels this long after its end,
# as it does live (drills_screen.ENDED_SHOWN_S).
DRILL_SHOWN_AFTER_END_S = 60.0


@dataclass(frozen=True)
class RecordedDrill:
    """A drill's timeline as recorded up to a moment."""

    run: str
    drill: str
    target: str
    entries: tuple[Entry, ...]
    ended: bool


class RecordingError(Exception):
    """A file that cannot be read or written as a recording; the message is one line."""


def _pack(data: Any) -> bytes:
    return zlib.compress(json.dumps(data, separators=(",", ":")).encode(), 6)


def _unpack(body: bytes) -> Any:
    return json.loads(zlib.decompress(body))


def _data(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def states_digest(data: dict) -> str:
    """Every row's state (and every source's and alarm's): equal digests, no state changed."""
    parts = sorted(f"{c['target']}|{c['kind']}|{c['name']}|{c.get('detail') or ''}={c['state']}"
                   for c in data["components"])
    parts += sorted(f"source {s['target']}={s['state']}" for s in data["sources"])
    parts += sorted(f"alarm {a['text']}={a['state']}" for a in data.get("alarms", ()))
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=12).hexdigest()


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    try:
        if readonly:
            if not path.is_file():
                raise RecordingError(f"{path}: no such recording")
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        else:
            conn = sqlite3.connect(path, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 2000")
        return conn
    except sqlite3.Error as exc:
        raise RecordingError(f"{path}: {describe_error(exc)}") from None


class Recorder:
    """Appends snapshots to a recording; one writer per file (SQLite's own lock)."""

    def __init__(self, path: str | os.PathLike, *, keep_s: float | None = None,
                 keyframe_every: int = KEYFRAME_EVERY, name: str = "", announce_in: Path | None = None) -> None:
        """`announce_in`: a drills state directory where this recording says it is being
        written while it is (drills.recordings), so drill reports can link to it."""
        self.path = Path(path)
        self._name = name
        self.keep_s = keep_s
        self._keyframe_every = keyframe_every
        self._conn = _connect(self.path, readonly=False)
        try:
            self._setup()
        except sqlite3.Error as exc:
            self._conn.close()
            raise RecordingError(f"{self.path}: not a scaledash recording ({describe_error(exc)})") from None
        except RecordingError:
            self._conn.close()
            raise
        self._lock = threading.Lock()     # the app writes frames from a thread, drill entries from the loop
        self._base: tuple[int, dict, int] | None = None       # seq, data, packed size
        self._since_base = 0
        self._retention_at: float | None = None
        self._marker = recordings.announce(announce_in, self.path) if announce_in is not None else None

    def _setup(self) -> None:
        conn = self._conn
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "meta" not in tables:        # someone else's database: never write into it
            raise RecordingError(f"{self.path}: not a scaledash recording")
        if not tables:
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")     # only before the first table
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")   # WAL + NORMAL: a process crash loses nothing committed
        conn.executescript(_SCHEMA)
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        if meta and meta.get("format") != FORMAT:
            raise RecordingError(f"{self.path}: not a scaledash recording")
        if meta and int(meta.get("version", 0)) > VERSION:
            raise RecordingError(f"{self.path}: recording format {meta['version']} is newer than this "
                                 f"scaledash reads ({VERSION})")
        if not meta:
            with conn:
                conn.executemany("INSERT INTO meta VALUES (?, ?)", [
                    ("format", FORMAT), ("version", str(VERSION)), ("created_at", repr(time.time())),
                    ("host", socket.gethostname()), ("name", redact(self._name))])

    def write(self, snap: Snapshot) -> None:
        """Append one snapshot in a transaction of its own."""
        data = encode(snap)
        try:
            with self._lock:
                self._write(data)
        except sqlite3.Error as exc:
            raise RecordingError(f"{self.path}: cannot write: {describe_error(exc)}") from None

    def _write(self, data: dict) -> None:
        digest = states_digest(data)
        body, base = None, None
        if self._base is not None and self._since_base < self._keyframe_every:
            base_seq, base_data, base_size = self._base
            body = _pack(diff(base_data, data))
            if len(body) * 2 <= base_size:
                base = base_seq
        with self._conn:
            if base is None:
                body = _pack(data)
                cur = self._conn.execute("INSERT INTO frames (at, base, states, body) VALUES (?, -1, ?, ?)",
                                         (data["generated_at"], digest, body))
                seq = cur.lastrowid
                self._conn.execute("UPDATE frames SET base = seq WHERE seq = ?", (seq,))
                self._base, self._since_base = (seq, data, len(body)), 0
            else:
                self._conn.execute("INSERT INTO frames (at, base, states, body) VALUES (?, ?, ?, ?)",
                                   (data["generated_at"], base, digest, body))
                self._since_base += 1
        self._retain(data["generated_at"])

    def add_drill_entries(self, run: str, drill: str, target: str, entries) -> None:
        """Append a drill run's new timeline entries (drills.model.Entry), redacted."""
        rows = [(e.at, run, redact(drill), redact(target), e.kind, e.status, redact(e.text),
                 redact(json.dumps(dict(e.data), default=str, separators=(",", ":")))) for e in entries]
        if not rows:
            return
        try:
            with self._lock, self._conn:
                self._conn.executemany("INSERT INTO drill_entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        except sqlite3.Error as exc:
            raise RecordingError(f"{self.path}: cannot write: {describe_error(exc)}") from None

    def _retain(self, now: float) -> None:
        if self.keep_s is None or (self._retention_at is not None and now - self._retention_at < RETENTION_EVERY_S):
            return
        self._retention_at = now
        cutoff = now - self.keep_s
        with self._conn:
            self._conn.execute("DELETE FROM frames WHERE base IN (SELECT base FROM frames GROUP BY base "
                               "HAVING max(at) < ?)", (cutoff,))
            self._conn.execute("DELETE FROM drill_entries WHERE at < ?", (cutoff,))
        self._conn.execute("PRAGMA incremental_vacuum")

    def close(self) -> None:
        recordings.withdraw(self._marker)
        self._marker = None
        try:
            with self._lock:
                self._conn.close()
        except sqlite3.Error:
            pass


class Recording:
    """Reads a recording, while it is written too: every query sees the frames committed so far."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._conn = _connect(self.path, readonly=True)
        try:
            meta = dict(self._conn.execute("SELECT key, value FROM meta"))
        except sqlite3.Error as exc:
            self._conn.close()
            raise RecordingError(f"{self.path}: not a scaledash recording ({describe_error(exc)})") from None
        if meta.get("format") != FORMAT:
            self._conn.close()
            raise RecordingError(f"{self.path}: not a scaledash recording")
        if int(meta.get("version", "0")) > VERSION:
            self._conn.close()
            raise RecordingError(f"{self.path}: recording format {meta['version']} is newer than this "
                                 f"scaledash reads ({VERSION})")
        self.meta = meta
        self._base_cache: tuple[int, dict] | None = None
        self._changes: list[float] = []            # changes() so far, and where it stopped reading
        self._changes_seq, self._changes_states = 0, None

    def span(self) -> tuple[float, float] | None:
        """The first and last recorded times, or None for an empty recording."""
        first, last = self._query_one("SELECT min(at), max(at) FROM frames")
        return None if first is None else (first, last)

    def times(self) -> list[float]:
        return [at for (at,) in self._query("SELECT at FROM frames ORDER BY seq")]

    def times_up_to(self, when: float, count: int) -> list[float]:
        """The times of the last `count` frames at or before `when`, oldest first."""
        rows = self._query("SELECT at FROM frames WHERE at <= ? ORDER BY at DESC, seq DESC LIMIT ?", (when, count))
        return [at for (at,) in reversed(rows)]

    def neighbour(self, when: float, frames: int) -> float | None:
        """The time of the frame `frames` frames after (> 0) or before (< 0) `when`, or the
        last one there is that way; None when there is none."""
        if frames > 0:
            rows = self._query("SELECT at FROM frames WHERE at > ? ORDER BY at, seq LIMIT ?", (when, frames))
        else:
            rows = self._query("SELECT at FROM frames WHERE at < ? ORDER BY at DESC, seq DESC LIMIT ?",
                               (when, -frames))
        return rows[-1][0] if rows else None

    def __len__(self) -> int:
        return self._query_one("SELECT count(*) FROM frames")[0]

    def at(self, when: float) -> Snapshot | None:
        """The snapshot shown at `when`: the last one recorded at or before it."""
        row = self._query_one("SELECT seq, base, body FROM frames WHERE at <= ? ORDER BY at DESC, seq DESC LIMIT 1",
                              (when,))
        return None if row is None else self._snapshot(*row)

    def latest(self) -> Snapshot | None:
        row = self._query_one("SELECT seq, base, body FROM frames ORDER BY seq DESC LIMIT 1")
        return None if row is None else self._snapshot(*row)

    def between(self, start: float, end: float) -> Iterator[Snapshot]:
        """Every snapshot recorded in [start, end], oldest first."""
        for row in self._query("SELECT seq, base, body FROM frames WHERE at >= ? AND at <= ? ORDER BY at, seq",
                               (start, end)):
            yield self._snapshot(*row)

    def changes(self) -> list[float]:
        """When a state changed: the times of the frames whose states differ from the frame before.

        Read incrementally: a replay's timeline asks every second, and a day at one frame a
        second is 86,400 rows to scan each time; here only the frames new since the last
        call are read. A change at the first frame retention kept is not one any more."""
        for seq, at, states in self._query("SELECT seq, at, states FROM frames WHERE seq > ? ORDER BY seq",
                                           (self._changes_seq,)):
            if self._changes_states is not None and states != self._changes_states:
                self._changes.append(at)
            self._changes_seq, self._changes_states = seq, states
        span = self.span()
        if span is None:
            return []
        return [at for at in self._changes if at > span[0]]

    def next_change(self, when: float) -> float | None:
        """The first state change after `when`, or None."""
        return next((at for at in self.changes() if at > when), None)

    def previous_change(self, when: float) -> float | None:
        """The last state change before `when`, or None."""
        return next((at for at in reversed(self.changes()) if at < when), None)

    def drill_at(self, when: float) -> RecordedDrill | None:
        """The drill whose timeline a replay shows at `when`: the run with the latest entry
        at or before it, while it runs and for DRILL_SHOWN_AFTER_END_S after its end."""
        try:
            row = self._conn.execute("SELECT run FROM drill_entries WHERE at <= ? ORDER BY at DESC LIMIT 1",
                                     (when,)).fetchone()
        except sqlite3.OperationalError:        # a recording from before drills were recorded
            return None
        if row is None:
            return None
        rows = self._query("SELECT at, drill, target, kind, status, text, data FROM drill_entries "
                           "WHERE run = ? AND at <= ? ORDER BY at, rowid", (row[0], when))
        entries = tuple(Entry(at, kind, text, status, _data(data)) for at, _, _, kind, status, text, data in rows)
        ended = any(e.kind == "end" for e in entries)
        if ended and when - entries[-1].at > DRILL_SHOWN_AFTER_END_S:
            return None
        return RecordedDrill(row[0], rows[-1][1], rows[-1][2], entries, ended)

    def _snapshot(self, seq: int, base: int, body: bytes) -> Snapshot:
        try:
            if seq == base:
                data = _unpack(body)
                self._base_cache = (seq, data)
            else:
                data = patch(self._keyframe(base), _unpack(body))
            return decode(data)
        except (ValueError, KeyError, TypeError, zlib.error) as exc:
            raise RecordingError(f"{self.path}: frame {seq} is damaged ({describe_error(exc)})") from None

    def _keyframe(self, base: int) -> dict:
        if self._base_cache is None or self._base_cache[0] != base:
            row = self._query_one("SELECT body FROM frames WHERE seq = ?", (base,))
            if row is None:
                raise KeyError(f"keyframe {base} is missing")
            self._base_cache = (base, _unpack(row[0]))
        return self._base_cache[1]

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise RecordingError(f"{self.path}: {describe_error(exc)}") from None

    def _query_one(self, sql: str, args: tuple = ()) -> tuple | None:
        rows = self._query(sql, args)
        return rows[0] if rows else None

    def close(self) -> None:
        self._conn.close()

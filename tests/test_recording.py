"""The recording file: snapshots in, the same snapshots out, and nothing else.

A recording is read after an incident, when nothing else is left to ask: what it
returns for a moment must be what the engine showed at that moment, a crash of the
writer must not take what was already written, retention must bound the file, and no
secret may be in it.
"""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import zlib
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from conftest import CANARY
from dashboard.model import Alarm, Component, Event, Kind, Kpi, Snapshot, SourceStatus, State
from dashboard.recording import Recorder, Recording, RecordingError
from dashboard.recording.codec import decode, diff, encode, patch
from dashboard.redact import register_secret

ROOT = Path(__file__).resolve().parents[1]


def fleet(at: float, lag: float = 0.0, replica: State = State.OK, reason: str | None = None) -> Snapshot:
    """A small fleet at time `at`: one replica whose lag and state a test moves."""
    rows = (
        Component(Kind.REPLICA, "primary", State.OK, None, "postgres", "primary", 0.4,
                  {"role": "primary", "connections": 12, "latency_ms": 1.25}, since_s=30.0,
                  history={"latency_ms": (1.0, 1.25)}),
        Component(Kind.REPLICA, "replica-1", replica, reason, "postgres", "replica-1", 0.5,
                  {"lag_bytes": lag, "lag_seconds": lag / 1e6, "replay_paused": False}, since_s=3.0,
                  last_error=reason, next_probe_in_s=0.7),
        Component(Kind.CACHE, "hits", State.OK, None, "scrape", "service", 1.0,
                  {"hit_rate": 0.91, "weird": math.nan}, detail="redis", warning="2 series dropped"),
    )
    return Snapshot(
        generated_at=at, components=rows,
        sources=(SourceStatus("replica-1", "postgres", replica, reason, 0.5, 1.1, 0 if replica is State.OK else 2,
                              0.7, rows_omitted={"breaker": 3}, insecure=True),),
        kpis=(Kpi("cache_hit_rate", "cache hits", 0.91, "> 80 %", True),
              Kpi("failover_seconds", "failover", None, "< 1 s", None, detail="no drill yet")),
        events=(Event(at - 1, "replica-1", "replica-1 OK", State.OK),),
        service=(Component(Kind.SERVICE, "service", State.OK, None, "scrape", "service", 1.0, {"rps": 40.0}),),
        alarms=(Alarm("2 primaries - possible split-brain", State.DOWN),) if replica is State.DOWN else (),
    )


def same(a: Snapshot, b: Snapshot) -> bool:
    """Equal as a recording keeps them: histories left out, NaN equal to NaN."""
    return encode(a) == encode(b) or _nan_equal(encode(a), encode(b))


def _nan_equal(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_nan_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_nan_equal, a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b and type(a) is type(b)


# ------------------------------------------------------------------ codec

def test_a_snapshot_decodes_to_what_was_encoded_except_its_histories():
    snap = fleet(1000.0, lag=2048, replica=State.DEGRADED, reason="lag 2 KiB > 1 KiB")
    back = decode(encode(snap))
    assert _nan_equal(encode(back), encode(snap))
    assert back.components[0].history == {} and snap.components[0].history
    assert back.overall is snap.overall is State.DEGRADED
    assert back.components[2].metrics["weird"] != back.components[2].metrics["weird"]   # NaN stays NaN
    assert back.sources[0].insecure and back.sources[0].rows_omitted == {"breaker": 3}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["a", "b", "$set", "$list", "$del", "$$x", "c"]), inner, max_size=4),
    max_leaves=20)


@given(json_values, json_values)
def test_patch_of_a_diff_gives_the_new_value_for_any_two_values(old, new):
    if _nan_equal(old, new):
        return
    assert _nan_equal(patch(old, diff(old, new)), new)


def test_a_delta_names_only_what_moved():
    a = encode(fleet(1000.0, lag=0))
    b = encode(fleet(1001.0, lag=4096))
    delta = diff(a, b)
    assert set(delta) == {"generated_at", "components", "events"}
    assert set(delta["components"]["$list"]) == {"1"}     # the replica's row, and nothing else
    assert patch(a, delta) == b or _nan_equal(patch(a, delta), b)


def test_a_figure_that_changes_type_is_recorded_as_its_new_type():
    a = {"x": 1}
    assert patch(a, diff(a, {"x": 1.0})) == {"x": 1.0} and type(patch(a, diff(a, {"x": 1.0}))["x"]) is float
    assert patch(a, diff(a, {"x": True}))["x"] is True


# ------------------------------------------------------------------ store

def test_every_frame_reads_back_as_written_at_its_time(tmp_path):
    path = tmp_path / "r.sqlite"
    written = []
    rec = Recorder(path, keyframe_every=5)
    for i in range(23):
        snap = fleet(1000.0 + i, lag=i * 100.0, replica=State.DOWN if 10 <= i < 15 else State.OK,
                     reason="connection refused" if 10 <= i < 15 else None)
        rec.write(snap)
        written.append(snap)
    rec.close()

    recording = Recording(path)
    assert len(recording) == 23 and recording.span() == (1000.0, 1022.0)
    for snap in written:
        assert same(recording.at(snap.generated_at), snap)
        assert same(recording.at(snap.generated_at + 0.5), snap)      # between frames: the one shown then
    assert recording.at(999.0) is None
    assert same(recording.latest(), written[-1])
    assert [s.generated_at for s in recording.between(1004.0, 1006.0)] == [1004.0, 1005.0, 1006.0]
    # Keyframes every 5 frames: a frame is rebuilt from two bodies, never a chain.
    with sqlite3.connect(path) as conn:
        bases = [b for (b,) in conn.execute("SELECT base FROM frames ORDER BY seq")]
        sizes = dict(conn.execute("SELECT seq, length(body) FROM frames"))
    assert bases[:12] == [1] * 6 + [7] * 6
    deltas = [sizes[s] for s, b in zip(range(1, 24), bases) if s != b]
    assert max(deltas) * 2 <= min(sizes[b] for b in set(bases))


def test_state_changes_are_found_both_ways_and_figures_alone_are_not_one(tmp_path):
    path = tmp_path / "r.sqlite"
    rec = Recorder(path)
    for i in range(20):     # lag moves every second; the state changes at 1008 and back at 1014
        down = 8 <= i < 14
        rec.write(fleet(1000.0 + i, lag=i * 10.0, replica=State.DOWN if down else State.OK,
                        reason="timeout" if down else None))
    rec.close()
    recording = Recording(path)
    assert recording.changes() == [1008.0, 1014.0]
    assert recording.next_change(1000.0) == 1008.0
    assert recording.next_change(1008.0) == 1014.0
    assert recording.next_change(1014.0) is None
    assert recording.previous_change(1019.0) == 1014.0
    assert recording.previous_change(1014.0) == 1008.0
    assert recording.previous_change(1008.0) is None
    assert recording.at(recording.next_change(1000.0)).components[1].state is State.DOWN


def test_retention_drops_whole_old_groups_and_gives_the_space_back(tmp_path):
    path = tmp_path / "r.sqlite"
    rec = Recorder(path, keep_s=120.0, keyframe_every=10)
    for i in range(1200):                          # 20 minutes at one snapshot a second
        rec.write(fleet(10_000.0 + i, lag=float(i), reason="x" * 200))
    rec.close()
    recording = Recording(path)
    first, last = recording.span()
    assert last == 11_199.0
    # Kept: everything in the last 120 s, plus at most one retention period and one group.
    assert last - 120.0 - 60.0 - 11 <= first <= last - 120.0, (first, last)
    assert same(recording.at(first), fleet(first, lag=first - 10_000.0, reason="x" * 200))
    pages = sqlite3.connect(path).execute("PRAGMA freelist_count").fetchone()[0]
    assert pages < 10, f"{pages} free pages left in the file after retention"


def test_a_recording_without_retention_keeps_everything(tmp_path):
    path = tmp_path / "r.sqlite"
    rec = Recorder(path, keyframe_every=10)
    for i in range(300):
        rec.write(fleet(10_000.0 + i))
    rec.close()
    assert Recording(path).span() == (10_000.0, 10_299.0)


WRITER = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [sys.argv[2], sys.argv[3]]
    from test_recording import fleet
    from dashboard.recording import Recorder
    rec = Recorder(sys.argv[1], keyframe_every=7)
    i = 0
    while True:
        rec.write(fleet(1000.0 + i, lag=float(i)))
        i += 1
        if i == 40:
            print("written", flush=True)
""")


def test_a_writer_killed_mid_write_leaves_every_committed_frame_readable(tmp_path):
    path = tmp_path / "r.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(ROOT), str(ROOT / "tests")],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
        time.sleep(0.3)            # well into writing: the kill lands mid-transaction or between two
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    recording = Recording(path)
    count = len(recording)
    assert count >= 40
    assert sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True).execute("PRAGMA integrity_check").fetchone() == ("ok",)
    for i, at in enumerate(recording.times()):
        assert same(recording.at(at), fleet(1000.0 + i, lag=float(i)))
    # And the writer can go on appending to it.
    rec = Recorder(path)
    rec.write(fleet(5000.0))
    rec.close()
    assert len(Recording(path)) == count + 1


def test_no_secret_reaches_the_file(tmp_path):
    register_secret(CANARY)
    path = tmp_path / "r.sqlite"
    rec = Recorder(path, keyframe_every=3)
    for i in range(8):
        rec.write(fleet(1000.0 + i, replica=State.DOWN,
                        reason=f"password authentication failed: postgresql://app:{CANARY}@db/x try {i}"))
    rec.close()
    raw = path.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("r.sqlite-*"))
    bodies = [zlib.decompress(b) for (b,) in sqlite3.connect(path).execute("SELECT body FROM frames")]
    assert CANARY.encode() not in raw and not any(CANARY.encode() in b for b in bodies)
    assert "***" in Recording(path).latest().components[1].reason


def test_a_reader_follows_a_recording_while_it_grows(tmp_path):
    path = tmp_path / "r.sqlite"
    rec = Recorder(path)
    rec.write(fleet(1000.0))
    reader = Recording(path)
    assert len(reader) == 1
    rec.write(fleet(1001.0, replica=State.DOWN, reason="timeout"))
    assert reader.latest().components[1].state is State.DOWN
    rec.close()


@pytest.mark.parametrize("content, message", [
    (None, "no such recording"),
    (b"hello, not a database at all" * 100, "not a scaledash recording"),
    ("other-sqlite", "not a scaledash recording"),
    ("newer", "recording format 99 is newer than this scaledash reads (1)"),
], ids=["missing", "text", "other-sqlite", "newer"])
def test_a_file_that_is_not_a_recording_is_one_clear_line(tmp_path, content, message):
    path = tmp_path / "r.sqlite"
    if content == "other-sqlite":
        sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.commit()
    elif content == "newer":
        Recorder(path).close()
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE meta SET value = '99' WHERE key = 'version'")
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(RecordingError) as err:
        Recording(path)
    assert message in str(err.value) and "\n" not in str(err.value) and str(path) in str(err.value)
    if content is not None:
        with pytest.raises(RecordingError, match="not a scaledash recording|newer"):
            Recorder(path)


def test_a_damaged_frame_is_one_clear_line(tmp_path):
    path = tmp_path / "r.sqlite"
    rec = Recorder(path)
    rec.write(fleet(1000.0))
    rec.write(fleet(1001.0))
    rec.close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE frames SET body = ? WHERE seq = 2", (b"garbage",))
    recording = Recording(path)
    assert same(recording.at(1000.0), fleet(1000.0))
    with pytest.raises(RecordingError, match="frame 2 is damaged"):
        recording.at(1001.0)


def test_the_recorded_snapshot_is_the_engines_not_a_copy_with_defaults():
    snap = replace(fleet(1000.0), starting=True)
    assert decode(encode(snap)).starting is True


# ------------------------------------------------------------------ moments on the command line

@pytest.fixture
def ten_minutes(tmp_path):
    """A recording from 2026-12-02T23:55:00Z to 00:05:00Z the next day, one frame a minute."""
    start = 1_796_255_700.0
    rec = Recorder(tmp_path / "r.sqlite")
    for i in range(11):
        rec.write(fleet(start + 60 * i))
    rec.close()
    return Recording(tmp_path / "r.sqlite"), start


@pytest.mark.parametrize("text, offset", [
    ("start", 0), ("end", 600), ("end-5m", 300), ("start+90s", 90), ("start + 1h", 3600),
    ("2026-12-02T23:57:00Z", 120), ("2026-12-02T23:57:00", 120), ("2026-12-03T01:57:00+02:00", 120),
    ("23:58", 180), ("00:04:30", 570),                    # after midnight: the next day
    ("1796255760", 60),
])
def test_a_moment_is_read_in_every_documented_form(ten_minutes, text, offset):
    from dashboard.recording.moments import parse_moment

    recording, start = ten_minutes
    assert time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)) == "2026-12-02T23:55:00Z"
    assert parse_moment(text, recording) == start + offset


@pytest.mark.parametrize("text", ["yesterday", "25:00", "12:61", "end-forever", "", "start*2"])
def test_a_moment_that_cannot_be_read_says_which_forms_can(ten_minutes, text):
    from dashboard.recording.moments import parse_moment

    with pytest.raises(ValueError, match="cannot read the time|expected a span"):
        parse_moment(text, ten_minutes[0])


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("24h", 86400), ("7d", 604800), ("1.5h", 5400)])
def test_a_span_reads_hours_and_days_as_well_as_the_configs_durations(text, seconds):
    from dashboard.recording.moments import parse_span

    assert parse_span(text) == seconds


# ------------------------------------------------------------------ drills in a recording

def drill_entries(start: float, ended: bool = True):
    from dashboard.drills.model import Entry

    entries = [Entry(start, "start", "drill failover on primary", data={"drill": "failover", "target": "primary"}),
               Entry(start + 1, "step", "step 1: kill the primary", "ok"),
               Entry(start + 2, "step", f"step 2: promote replica-1 (password {CANARY})", "running")]
    if ended:
        entries.append(Entry(start + 5, "end", "passed", "ok", {"verdict": "passed",
                                                             "figures": {"failover_seconds": 0.43}}))
    return entries


def test_a_drills_timeline_is_shown_while_it_runs_and_a_minute_after_it_ends(tmp_path):
    from dashboard.recording.store import DRILL_SHOWN_AFTER_END_S

    register_secret(CANARY)
    path = tmp_path / "r.sqlite"
    rec = Recorder(path)
    for i in range(10):
        rec.write(fleet(1000.0 + i))
    entries = drill_entries(1002.0)
    rec.add_drill_entries("run-1", "failover", "primary", entries[:2])
    rec.add_drill_entries("run-1", "failover", "primary", entries[2:])
    rec.close()
    recording = Recording(path)
    assert recording.drill_at(1001.9) is None                       # before it started
    during = recording.drill_at(1004.5)
    assert (during.drill, during.target, during.ended) == ("failover", "primary", False)
    assert [e.text for e in during.entries] == ["drill failover on primary", "step 1: kill the primary",
                                                "step 2: promote replica-1 (password ***)"]
    after = recording.drill_at(1007.0 + DRILL_SHOWN_AFTER_END_S - 1)
    assert after.ended and after.entries[-1].data["figures"] == {"failover_seconds": 0.43}
    assert recording.drill_at(1007.0 + DRILL_SHOWN_AFTER_END_S + 1) is None      # long over
    raw = path.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("r.sqlite-*"))
    assert CANARY.encode() not in raw


def test_retention_drops_old_drill_entries_with_the_frames(tmp_path):
    path = tmp_path / "r.sqlite"
    rec = Recorder(path, keep_s=120.0, keyframe_every=10)
    rec.write(fleet(10_000.0))
    rec.add_drill_entries("old", "failover", "primary", drill_entries(10_000.0))
    for i in range(1, 400):
        rec.write(fleet(10_000.0 + i))
    rec.add_drill_entries("new", "rejoin", "primary", drill_entries(10_390.0, ended=False))
    rec.close()
    rows = sqlite3.connect(path).execute("SELECT DISTINCT run FROM drill_entries").fetchall()
    assert rows == [("new",)]


def test_a_recording_written_before_drills_were_recorded_reads_no_drill(tmp_path):
    path = tmp_path / "r.sqlite"
    rec = Recorder(path)
    rec.write(fleet(1000.0))
    rec.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE drill_entries")
    assert Recording(path).drill_at(1000.0) is None


def test_a_drill_report_names_the_recordings_written_while_it_ran(tmp_path):
    """Drill reports link to recordings: a recorder announces itself on the drills' state
    directory while it writes; the report lists it with the command that replays the
    drill's window, and forgets it once the recorder stops (or died: its PID is gone)."""
    import json as json_

    from dashboard.drills import journal, recordings, reports
    from dashboard.drills.model import Entry, Verdict
    from dashboard.drills.runner import Outcome

    state = tmp_path / "state"
    files = journal.RunFiles(state, "20261202T120000Z-failover")
    outcome = Outcome(Verdict.PASSED, "steady state held", "failover", "primary", files.run)
    timeline = [Entry(1_796_212_800.0, "start", "drill failover on primary")]

    def report() -> dict:
        _, path = reports.write(files, outcome, None, [], [], timeline, 1_796_212_810.0)
        return json_.loads(path.read_text())

    rec = Recorder(tmp_path / "fleet.sqlite", announce_in=state)
    dead = state / "recordings" / "999999999.json"
    dead.write_text(json_.dumps({"path": "/gone.sqlite", "pid": 999_999_999, "since": 1.0}))
    found = report()
    assert found["recordings"] == [{"path": str((tmp_path / "fleet.sqlite").resolve()),
                                    "replay": f"scaledash replay {(tmp_path / 'fleet.sqlite').resolve()} "
                                              "--at 2026-12-02T11:59:50Z"}]
    assert "scaledash replay" in files.report_md.read_text()
    rec.close()
    assert report()["recordings"] == [] and not (state / "recordings" / f"{os.getpid()}.json").exists()
    assert "- none (record the stack" in files.report_md.read_text()
    assert recordings.active(state) == []


def test_changes_read_as_the_file_grows_are_the_changes_read_at_once(tmp_path):
    """changes() reads only new frames on each call (a replay asks every second): a reader
    that followed the writer must find what a fresh reader of the whole file finds."""
    path = tmp_path / "r.sqlite"
    rec = Recorder(path)
    follower = None
    for i in range(30):
        down = 5 <= i < 9 or 20 <= i < 21
        rec.write(fleet(1000.0 + i, replica=State.DOWN if down else State.OK, reason="timeout" if down else None))
        follower = follower or Recording(path)
        follower.changes()
    rec.close()
    assert follower.changes() == Recording(path).changes() == [1005.0, 1009.0, 1020.0, 1021.0]

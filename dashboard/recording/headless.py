"""`scaledash record FILE`: poll and record, no screen.

The poller of "one poller, many viewers": the engine polls on its own schedule and
every snapshot it makes (at the TUI's cadence: every interval, at most one a second)
goes into the recording, with the timeline entries of any drill running on the
config's state directory (read from the drills' journals, as a dashboard follows them). The SQLite write runs in a worker thread, so a slow disk
delays the recording, never the polls.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from ..config import Config
from .store import Recorder, RecordingError


def cadence(cfg: Config) -> float:
    """How often a snapshot is recorded: every interval, at most once a second (the TUI's)."""
    return min(cfg.interval, 1.0)


async def record(cfg: Config, path: Path, keep_s: float | None, *, stop: asyncio.Event,
                 failover_seconds: float | None = None, on_write=None) -> int:
    """Poll `cfg`'s targets and record a snapshot every `cadence(cfg)` until `stop` is set;
    return how many were recorded. `on_write(snapshot)` is called after each is written.
    Raises RecordingError when the file cannot be used."""
    from ..drill_session import DrillSession
    from ..drills.runner import state_dir
    from ..engine import Engine

    recorder = Recorder(path, keep_s=keep_s, name=cfg.name, announce_in=state_dir(cfg))
    drills = DrillSession(cfg, readonly=True)      # follows drills' journals; starts and keeps nothing
    engine = Engine(cfg)
    engine.failover_seconds = failover_seconds
    written = 0
    try:
        engine.start()
        period = cadence(cfg)
        next_at = time.monotonic() + period
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, next_at - time.monotonic()))
                break
            except asyncio.TimeoutError:
                pass
            next_at += period * max(1, int((time.monotonic() - next_at) // period) + 1)
            snap = engine.snapshot()
            await asyncio.to_thread(_write, recorder, snap, drill_entries(drills))
            written += 1
            if on_write is not None:
                on_write(snap)
    finally:
        await engine.close()
        recorder.close()
    return written


def drill_entries(session) -> list[tuple[object, list]]:
    """The timeline entries of drills on this config's state directory that are new since
    the last call: runs that started since (every entry so far), and runs followed."""
    found = [(follow, list(follow.entries)) for follow in session.attach_running()]
    return found + [(follow, new) for follow, new in session.poll() if new]


def _write(recorder: Recorder, snap, drills: list[tuple[object, list]]) -> None:
    for follow, entries in drills:
        recorder.add_drill_entries(follow.files.run, follow.drill, follow.target, entries)
    recorder.write(snap)


def run(cfg: Config, path: Path, keep_s: float | None, failover_seconds: float | None = None,
        metrics: tuple[str, int] | None = None) -> int:
    """The command: records until SIGINT, SIGTERM or SIGHUP, then says what it wrote.
    `metrics` (host, port): also answer Prometheus scrapes there (dashboard.export)."""
    from ..export import SnapshotCollector, is_loopback, serve

    collector = SnapshotCollector()
    server = None
    if metrics is not None:
        try:
            server = serve(collector, *metrics)
        except OSError as exc:
            raise RecordingError(f"cannot serve metrics on {metrics[0]}:{metrics[1]}: "
                                 f"{exc.strerror or exc}") from None

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        return await record(cfg, path, keep_s, stop=stop, failover_seconds=failover_seconds,
                            on_write=collector.update)

    keep = f", keeping {_span(keep_s)}" if keep_s else ", keeping everything (--keep to bound it)"
    print(f"scaledash: recording {path} every {cadence(cfg):g}s{keep}; Ctrl-C to stop", flush=True)
    if server is not None:
        host, port = metrics
        shown = f"[{host}]" if ":" in host else host
        print(f"scaledash: Prometheus metrics on http://{shown}:{port}/metrics", flush=True)
        if not is_loopback(host):
            print(f"scaledash: warning: {host} is not a loopback address: whoever reaches it reads "
                  "every component's state", flush=True)
    try:
        written = asyncio.run(main())
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    print(f"scaledash: recorded {written} snapshots to {path}")
    return 0


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"

"""Run one suite as a subprocess: live lines, progress, cancel, timeout, a parsed result.

One runner for the CLI and the TUI. The suite runs in its own process group (its own
session), so cancel and timeout reach everything it started: SIGTERM to the group,
SIGKILL after a grace, and the run ends only once no live process of the group is
left. Whatever happens (crash, no report, timeout, cancel, the caller's task being
cancelled) the run ends in a SuiteResult, never a hang and never an exception.

Memory is bounded: the last `tail_lines` lines are kept, the queue behind `lines()`
drops its oldest lines when nobody reads it, and one over-long line is cut.
Every line passes `redact.safe_message` before it is stored or handed to anyone.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from dashboard.redact import describe_error, safe_message
from dashboard.suites import process_group
from dashboard.suites.catalog import SuiteSpec
from dashboard.suites.environment import child_environment
from dashboard.suites.invocation import PROGRESS_FD_VARIABLE, Invocation, SuiteUnavailable, build_invocation
from dashboard.suites.judge import judge
from dashboard.suites.reports import locust_current_rps, shown
from dashboard.suites.results import SuiteKind, SuiteResult, Verdict

__all__ = ["Progress", "SuiteRun", "SuiteUnavailable", "run_suite"]

TAIL_LINES = 300
LINE_LIMIT = 500            # characters kept of one line (after sanitising)
_READ_CHUNK = 64 * 1024
_MAX_PARTIAL = 64 * 1024    # bytes without a newline before they are shown as a line anyway
_QUEUE_LINES = 2000
_DRAIN_S = 5.0              # after the group is gone, how long the output may take to close
_END = object()


@dataclass(frozen=True)
class Progress:
    """How far a run is. pytest fills done/total, Locust run_time_s and rps."""

    elapsed_s: float
    done: int | None = None
    total: int | None = None
    run_time_s: float | None = None
    rps: float | None = None

    def text(self) -> str:
        """One line for a progress bar's label: "12/40 tests, 8 s" or "8/30 s, 35.4 req/s"."""
        if self.run_time_s is not None:
            rps = f", {self.rps:.1f} req/s" if self.rps is not None else ""
            return f"{self.elapsed_s:.0f}/{self.run_time_s:.0f} s{rps}"
        if self.total is not None:
            return f"{self.done or 0}/{self.total} tests, {self.elapsed_s:.0f} s"
        return f"{self.elapsed_s:.0f} s"


class SuiteRun:
    """One run of one suite. Single use: start(), read lines/progress, wait() or cancel().

        run = SuiteRun(spec, config_path="scaledash.toml", env_names=("PG_PASSWORD",))
        await run.start()                 # raises SuiteUnavailable (missing tool/command)
        async for line in run.lines():    # optional; ends when the suite's output ends
            ...
        result = await run.wait()         # always a SuiteResult

    `on_line(line)` and `on_progress(progress)` are called on the event loop for each
    line and each progress change; they must not block or raise. `cancel()` may be
    called at any time, from the loop's thread, and makes the result CANCELLED.
    """

    def __init__(self, spec: SuiteSpec, *, config_path: str | None = None, env_names: Iterable[str] = (),
                 timeout_s: float | None = None, junit_path: Path | None = None,
                 tail_lines: int = TAIL_LINES, grace_s: float = 5.0,
                 on_line: Callable[[str], None] | None = None,
                 on_progress: Callable[[Progress], None] | None = None) -> None:
        self.spec = spec
        self.config_path = os.path.abspath(config_path) if config_path else None
        self.env_names = tuple(env_names)
        self.timeout_s = timeout_s if timeout_s is not None else spec.timeout_s
        self.junit_path = junit_path
        self.grace_s = grace_s
        self.on_line = on_line
        self.on_progress = on_progress
        self._tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self._queue: asyncio.Queue = asyncio.Queue()
        self._dropped = 0
        self._cancel = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task | None = None
        self._workdir: Path | None = None
        self._invocation: Invocation | None = None
        self._started_wall = 0.0
        self._started_mono = 0.0
        self._done = self._total = self._rps = None
        self._result: SuiteResult | None = None

    # ------------------------------------------------------------------ public

    @property
    def pgid(self) -> int | None:
        """The suite's process group id (its pid), once started."""
        return self._proc.pid if self._proc else None

    @property
    def tail(self) -> tuple[str, ...]:
        return tuple(self._tail)

    @property
    def progress(self) -> Progress:
        end = self._result.duration_s + self._started_mono if self._result else time.monotonic()
        elapsed = end - self._started_mono if self._started_mono else 0.0
        return Progress(elapsed, self._done, self._total, self.spec.run_time_s, self._rps)

    @property
    def dropped_lines(self) -> int:
        """Lines `lines()` dropped, oldest first, because nobody read them in time."""
        return self._dropped

    @property
    def result(self) -> SuiteResult | None:
        return self._result

    async def start(self) -> None:
        """Start the suite's process. Raises SuiteUnavailable if it cannot be started."""
        if self._proc is not None:
            raise RuntimeError("a SuiteRun starts once")
        self._workdir = Path(tempfile.mkdtemp(prefix=f"scaledash-suite-{self.spec.name[:40]}-"))
        try:
            self._invocation = build_invocation(self.spec, self._workdir, self.junit_path)
            progress_read = await self._spawn(self._invocation)
        except BaseException:
            shutil.rmtree(self._workdir, ignore_errors=True)
            raise
        self._supervisor = asyncio.create_task(self._supervise(progress_read))

    def lines(self) -> AsyncIterator[str]:
        """The output lines as they come (one consumer); ends when the output ends."""
        return self._iterate_lines()

    def cancel(self) -> None:
        self._cancel.set()

    async def wait(self) -> SuiteResult:
        """The result, once the run has ended and no process of its group is left.

        If the task awaiting this is cancelled, the suite's group is stopped first.
        """
        if self._supervisor is None:
            raise RuntimeError("start() the run first")
        try:
            return await asyncio.shield(self._supervisor)
        except asyncio.CancelledError:
            self.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self._supervisor), self.grace_s + 10)
            raise

    # ------------------------------------------------------------------ process

    async def _spawn(self, inv: Invocation) -> int | None:
        read_fd = write_fd = None
        extra = dict(inv.env)
        if inv.junit_path is not None:     # pytest: the progress plugin writes to this pipe
            read_fd, write_fd = os.pipe()
            extra[PROGRESS_FD_VARIABLE] = str(write_fd)
        env = child_environment(self.config_path, self.env_names, extra)
        self._started_wall, self._started_mono = time.time(), time.monotonic()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *inv.argv, cwd=inv.cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True, pass_fds=(write_fd,) if write_fd is not None else ())
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            if read_fd is not None:
                os.close(read_fd)
            raise SuiteUnavailable(f"suite {self.spec.name}: cannot start {safe_message(inv.argv[0], 120)}: "
                                   f"{describe_error(exc)}") from None
        finally:
            if write_fd is not None:
                os.close(write_fd)
        return read_fd

    async def _supervise(self, progress_read: int | None) -> SuiteResult:
        proc = self._proc
        output = asyncio.create_task(self._pump_output(proc.stdout))
        progress = asyncio.create_task(self._pump_progress(progress_read)) if progress_read is not None else None
        ending = None
        try:
            ending = await self._wait_for_exit(proc)
            await process_group.stop(proc.pid, self.grace_s)   # leftovers of a normal exit too
            returncode = await proc.wait()
            await self._drain(output, progress)
            return self._finish(returncode, ending)
        except BaseException as exc:   # noqa: BLE001 - a run always ends in a result
            with contextlib.suppress(BaseException):
                await process_group.stop(proc.pid, self.grace_s)
            self._finish_streams(output, progress)
            result = self._finish(proc.returncode, ending, problem=f"runner failed: {describe_error(exc)}")
            if isinstance(exc, asyncio.CancelledError):
                raise
            return result
        finally:
            if self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)

    async def _wait_for_exit(self, proc: asyncio.subprocess.Process) -> Verdict | None:
        """None when the process exited by itself, else CANCELLED/TIMEOUT after stopping its group."""
        exited = asyncio.create_task(proc.wait())
        cancelled = asyncio.create_task(self._cancel.wait())
        try:
            done, _ = await asyncio.wait({exited, cancelled}, timeout=self.timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            cancelled.cancel()
        if exited in done:
            return None
        ending = Verdict.CANCELLED if cancelled in done else Verdict.TIMEOUT
        await process_group.stop(proc.pid, self.grace_s)
        await exited
        return ending

    async def _drain(self, output: asyncio.Task, progress: asyncio.Task | None) -> None:
        """Let the output finish; a process outside the group holding the pipe cannot hang us."""
        tasks = [t for t in (output, progress) if t is not None]
        _, pending = await asyncio.wait(tasks, timeout=_DRAIN_S)
        for task in pending:
            task.cancel()
        self._finish_streams(output, progress)

    def _finish_streams(self, output: asyncio.Task, progress: asyncio.Task | None) -> None:
        for task in (output, progress):
            if task is not None and not task.done():
                task.cancel()
        self._queue.put_nowait(_END)

    # ------------------------------------------------------------------ output

    async def _pump_output(self, stream: asyncio.StreamReader) -> None:
        pending = b""
        while chunk := await stream.read(_READ_CHUNK):
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                self._emit(raw)
            if len(pending) > _MAX_PARTIAL:
                self._emit(pending)
                pending = b""
        if pending:
            self._emit(pending)

    def _emit(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        text = text.rsplit("\r", 1)[-1]     # a progress bar redrawn with \r: its last state
        line = shown(text, LINE_LIMIT)
        self._tail.append(line)
        if self._queue.qsize() >= _QUEUE_LINES:
            self._queue.get_nowait()
            self._dropped += 1
        self._queue.put_nowait(line)
        if self.on_line:
            self._call(self.on_line, line)
        if self.spec.kind is SuiteKind.LOCUST:
            rps = locust_current_rps(line)
            if rps is not None:
                self._rps = rps
                self._progress_changed()

    async def _iterate_lines(self) -> AsyncIterator[str]:
        while True:
            item = await self._queue.get()
            if item is _END:
                self._queue.put_nowait(_END)    # later calls end at once too
                return
            yield item

    async def _pump_progress(self, fd: int) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                    os.fdopen(fd, "rb", 0))
        try:
            while line := await reader.readline():
                parts = line.split()
                if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                    self._done, self._total = int(parts[0]), int(parts[1])
                    self._progress_changed()
        finally:
            transport.close()

    def _progress_changed(self) -> None:
        if self.on_progress:
            self._call(self.on_progress, self.progress)

    @staticmethod
    def _call(callback: Callable, value: object) -> None:
        # A consumer's bug must not stop the output being read: the suite would block on a
        # full pipe and end as a TIMEOUT that has nothing to do with the stack.
        with contextlib.suppress(Exception):
            callback(value)

    # ------------------------------------------------------------------ result

    def _finish(self, returncode: int | None, ending: Verdict | None, problem: str | None = None) -> SuiteResult:
        inv = self._invocation
        self._result = judge(
            self.spec, returncode=returncode, ending=ending, timeout_s=self.timeout_s,
            junit_path=inv.junit_path if inv else None,
            locust_stats=Path(f"{inv.locust_csv_prefix}_stats.csv") if inv and inv.locust_csv_prefix else None,
            started_at=self._started_wall, duration_s=time.monotonic() - self._started_mono,
            tail=tuple(self._tail), problem=problem)
        return self._result


async def run_suite(spec: SuiteSpec, **options) -> SuiteResult:
    """Start `spec`, wait for it, return its result (SuiteUnavailable if it cannot start).

    Takes SuiteRun's keyword options (config_path, env_names, timeout_s, on_line...).
    """
    run = SuiteRun(spec, **options)
    await run.start()
    return await run.wait()

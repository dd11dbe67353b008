"""The terminal going away (an SSH drop) ends the dashboard within a bound (RELIABILITY.md 39).

Two ways to learn of it: SIGHUP, and the terminal itself (a hung-up tty answers every
ioctl with EIO), checked from a thread of its own a few times a second, because SIGHUP
does not always reach the dashboard (a process that is not its session's leader, a
signal blocked) and because the loop that would handle it may be stuck. Either starts
the app's clean exit (0.4-0.9 s on the lab) and arms a deadline: a process still there
when it passes ends at once with os._exit.

What the deadline stands in for was seen: without SIGHUP, Textual's input thread spun on
the dead terminal's end-of-file and the loop blocked on Textual's output queue to it
(10 s of CPU in 15 s, never gone); a Prometheus answer trickling in held a worker thread
and with it the process (probes/offloop.py ends that one at its cause).
"""

from __future__ import annotations

import os
import termios
import threading
import time
from typing import Callable

EXIT_DEADLINE_S = 3.0     # from the hang-up to os._exit: well inside case 39's 5 s
POLL_S = 0.2              # how often the watch asks the terminal
HANGUP_EXIT_CODE = 129    # 128 + SIGHUP, as a shell reports a process ended by it


class HangUpWatch:
    """Calls `on_hang_up` (from whichever thread learned of it) once, and arms the exit deadline."""

    def __init__(self, on_hang_up: Callable[[], None], deadline_s: float = EXIT_DEADLINE_S) -> None:
        self.on_hang_up = on_hang_up
        self.deadline_s = deadline_s
        self._seen = threading.Event()
        self._stopped = threading.Event()
        self._timer: threading.Timer | None = None

    def watch(self, fd: int) -> None:
        """Ask the terminal on `fd` every POLL_S whether it is still there (if it is a terminal)."""
        if os.isatty(fd):
            threading.Thread(target=self._poll, args=(fd,), name="hang-up watch", daemon=True).start()

    def hung_up(self) -> None:
        if self._seen.is_set() or self._stopped.is_set():
            return
        self._seen.set()
        self._timer = threading.Timer(self.deadline_s, os._exit, (HANGUP_EXIT_CODE,))
        self._timer.daemon = True
        self._timer.start()
        self.on_hang_up()

    def stop(self) -> None:
        """The app has ended: what the process does next (`demo` takes its lab down) is not bound here."""
        self._stopped.set()
        if self._timer is not None:
            self._timer.cancel()

    def _poll(self, fd: int) -> None:
        while not (self._seen.is_set() or self._stopped.is_set()):
            time.sleep(POLL_S)
            try:
                termios.tcgetattr(fd)
            except (termios.error, OSError):
                self.hung_up()
                return

"""The real `scaledash` process in a real pseudo-terminal: an SSH drop, LANG=C, NO_COLOR.

RELIABILITY.md cases 38 and 39: when the terminal goes away the process is gone within
5 s and never spins; in a C locale or without colour every state is still a word.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time
from pathlib import Path

import re

import pytest

from conftest import CANARY, ROOT
from dashboard.lab.stack import Entry
from faultproxy import Blackhole, FaultProxy, Slicer
from lab_drive import module_lab

GREYS = set(range(232, 256)) | {0, 7, 8, 15, 16, 231}


# The CLI with SIGHUP blocked: a hang-up the dashboard is never told of (not its session's
# leader, or a signal mask inherited from whatever started it).
SIGHUP_BLOCKED = ("import runpy, signal, sys; signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP}); "
                  "sys.argv[0] = 'scaledash'; runpy.run_module('dashboard.cli', run_name='__main__')")


def _spawn(config: str | None, env: dict, size=(100, 30), args: tuple[str, ...] = (),
           sighup_blocked: bool = False) -> tuple[int, int]:
    pid, fd = pty.fork()
    if pid == 0:  # child: the real CLI, as a user would start it
        os.chdir(ROOT)
        start = ["-c", SIGHUP_BLOCKED] if sighup_blocked else ["-m", "dashboard.cli"]
        argv = [sys.executable, *start, *(["--config", config] if config else []), *args]
        os.execve(sys.executable, argv, {**os.environ, "TERM": "xterm-256color", **env})
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    return pid, fd


def _read_for(fd: int, seconds: float) -> bytes:
    out = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


def _reap(pid: int, fd: int | None = None) -> None:
    """Kill and collect the child whatever state it is in; close its terminal."""
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_exit(pid: int, timeout: float):
    """(status, CPU seconds the child used in all) once it exits, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage.ru_utime + usage.ru_stime
        time.sleep(0.05)
    return None


@pytest.fixture
def dead_target_config(write_config):
    return str(write_config("""
name = "pty"
[[replica]]
name = "db"
dsn = "postgresql://monitor@127.0.0.1:1/postgres"
password = "env:SCALEDASH_TEST_PG_PASSWORD"
"""))


def _hang_up_and_wait(pid: int, fd: int) -> tuple[float | None, float]:
    """Close the terminal (the SSH connection is gone): (seconds until the process was gone,
    or None after 5 s; CPU seconds it used from the hang-up on)."""
    cpu_before = _cpu_seconds(pid)
    dropped = time.monotonic()
    os.close(fd)
    ended = _wait_exit(pid, 5.0)
    if ended is None:
        return None, _cpu_seconds(pid) - cpu_before
    return time.monotonic() - dropped, ended[1] - cpu_before


@pytest.mark.slow
def test_ssh_drop_ends_the_process_within_5s_without_spinning(dead_target_config):
    pid, fd = _spawn(dead_target_config, {})
    try:
        screen = _read_for(fd, 4.0)
        assert b"Replicas" in screen, screen[-500:]
        gone_after, cpu = _hang_up_and_wait(pid, fd)
        assert gone_after is not None, "scaledash still running 5 s after its terminal closed"
        assert cpu < 1.0, "spun after the terminal closed"
    finally:
        _reap(pid)
    assert CANARY.encode() not in screen


@pytest.mark.slow
def test_ssh_drop_without_a_sighup_still_ends_the_process_within_5s_without_spinning(dead_target_config):
    """The terminal answering EIO is enough: before, Textual's input thread spun on its
    end-of-file and the loop blocked writing to it (10 s of CPU in 15 s, never gone)."""
    pid, fd = _spawn(dead_target_config, {}, sighup_blocked=True)
    try:
        screen = _read_for(fd, 4.0)
        assert b"Replicas" in screen, screen[-500:]
        gone_after, cpu = _hang_up_and_wait(pid, fd)
        assert gone_after is not None, f"still running 5 s after its terminal closed ({cpu:.1f} s CPU)"
        assert cpu < 1.0, "spun after the terminal closed"
    finally:
        _reap(pid)


lab = module_lab("tui-terminal")


def _lab_server(lab, name: str) -> Entry:
    return next(e for e in lab.entries() if e.name == name)


@contextlib.contextmanager
def _hung(lab, how: str, tmp_path: Path):
    """The lab's config, with one target hung the way `how` says while the block runs."""
    config = lab.dir / "scaledash.toml"
    if how == "as it is":
        yield str(config)
    elif how == "primary stopped":                 # SIGSTOP: connections open, nothing answers
        primary = _lab_server(lab, "postgres-primary")
        os.kill(primary.pid, signal.SIGSTOP)
        try:
            yield str(config)
        finally:
            os.kill(primary.pid, signal.SIGCONT)
    else:
        server, toxic = {"redis blackholed": ("redis-server", Blackhole()),
                         "prometheus trickling": ("prometheus", Slicer(size=1, delay_ms=300))}[how]
        port = _lab_server(lab, server).port
        with FaultProxy(port) as proxy:
            proxied = tmp_path / "proxied.toml"
            proxied.write_text(re.sub(rf"127\.0\.0\.1:{port}\b", proxy.url_host, config.read_text()))
            proxy.add(toxic)
            yield str(proxied)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["as it is", "primary stopped", "redis blackholed", "prometheus trickling"])
def test_ssh_drop_on_the_lab_ends_the_process_within_5s_without_spinning(lab, tmp_path, how):
    """Case 39 with real targets, one of them hung at the hang-up. A Prometheus answer
    trickling in a byte at a time outlives every socket timeout: its worker thread kept
    the process (asyncio's executor waits for its threads) for as long as it trickled."""
    with _hung(lab, how, tmp_path) as config:
        pid, fd = _spawn(config, {}, size=(160, 40))
        try:
            screen = b""
            deadline = time.monotonic() + 20
            while b"Replicas (3)" not in screen and time.monotonic() < deadline:
                screen += _read_for(fd, 0.5)
            assert b"Replicas (3)" in screen, screen[-500:]
            screen += _read_for(fd, 2.5)                # the hung target's probes under way
            gone_after, cpu = _hang_up_and_wait(pid, fd)
            assert gone_after is not None, f"still running 5 s after its terminal closed ({cpu:.1f} s CPU)"
            assert cpu < 1.0, "spun after the terminal closed"
        finally:
            _reap(pid)


@pytest.mark.slow
@pytest.mark.parametrize("env", [{"LANG": "C", "LC_ALL": "C"}, {"NO_COLOR": "1"}, {"TERM": "dumb"}])
def test_state_words_survive_c_locale_no_color_and_dumb_terminals(dead_target_config, env):
    pid, fd = _spawn(dead_target_config, env)
    try:
        screen = _read_for(fd, 4.5)
        os.kill(pid, signal.SIGTERM)
        _wait_exit(pid, 5.0)
    finally:
        _reap(pid, fd)
    text = screen.decode("utf-8", "replace")
    assert "Traceback" not in text and "UnicodeEncodeError" not in text
    assert "DOWN" in text and "Replicas" in text
    if env.get("NO_COLOR"):
        # Textual keeps greys under NO_COLOR: every colour index must be on the grey ramp.
        colours = {int(n) for n in re.findall(r"\x1b\[[0-9;]*?[34]8;5;(\d+)", text)}
        assert colours and colours <= GREYS, sorted(colours - GREYS)
        assert "[38;2;" not in text and "[48;2;" not in text


@pytest.mark.slow
def test_demo_shows_the_lab_and_q_takes_the_lab_down_with_it(tmp_path):
    from dashboard.lab.stack import Lab

    lab_dir = tmp_path / "demo-lab"
    pid, fd = _spawn(None, {}, size=(120, 40), args=("demo", "--dir", str(lab_dir)))
    try:
        screen = b""
        deadline = time.monotonic() + 30
        while b"Batchers (" not in screen and time.monotonic() < deadline:   # the dashboard, not the lab's log
            screen += _read_for(fd, 0.5)
        assert b"Batchers (" in screen, screen[-800:]
        entries = Lab(lab_dir).entries()
        assert len(entries) >= 7 and all(e.alive() for e in entries)
        os.write(fd, b"q")
        _read_for(fd, 3.0)
        ended = _wait_exit(pid, 20.0)
        assert ended is not None and os.WEXITSTATUS(ended[0]) == 0
        assert not any(e.alive() for e in entries), [e.name for e in entries if e.alive()]
        assert not Lab(lab_dir).state_path.exists()
    finally:
        _reap(pid)
        Lab(lab_dir).down()

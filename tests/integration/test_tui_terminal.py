"""The real `scaledash` process in a real pseudo-terminal: an SSH drop, LANG=C, NO_COLOR.

RELIABILITY.md cases 38 and 39: when the terminal goes away the process is gone within
5 s and never spins; in a C locale or without colour every state is still a word.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time

import re

import pytest

from conftest import CANARY, ROOT

GREYS = set(range(232, 256)) | {0, 7, 8, 15, 16, 231}


def _spawn(config: str | None, env: dict, size=(100, 30), args: tuple[str, ...] = ()) -> tuple[int, int]:
    pid, fd = pty.fork()
    if pid == 0:  # child: the real CLI, as a user would start it
        os.chdir(ROOT)
        argv = [sys.executable, "-m", "dashboard.cli", *(["--config", config] if config else []), *args]
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


@pytest.mark.slow
def test_ssh_drop_ends_the_process_within_5s_without_spinning(dead_target_config):
    pid, fd = _spawn(dead_target_config, {})
    try:
        screen = _read_for(fd, 4.0)
        assert b"Replicas" in screen, screen[-500:]
        cpu_before = _cpu_seconds(pid)
        dropped = time.monotonic()
        os.close(fd)                                   # the SSH connection is gone
        ended = _wait_exit(pid, 5.0)
        assert ended is not None, "scaledash still running 5 s after its terminal closed"
        assert time.monotonic() - dropped < 5.0
        _, cpu_total = ended
        assert cpu_total - cpu_before < 1.0, "spun after the terminal closed"
    finally:
        _reap(pid)
    assert CANARY.encode() not in screen


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

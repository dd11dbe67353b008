"""Benchmark: scaledash's TUI against the real lab, side by side with pg_activity.

Run on demand (not collected by pytest):

    .venv/bin/python tests/bench/tui.py                # 10-minute soak (RSS after 10 min)
    .venv/bin/python tests/bench/tui.py --quick        # 2-minute soak, fewer starts: for trying it out
    .venv/bin/python tests/bench/tui.py --minutes 5 --save-output /tmp/tui-bytes

Needs `pyte` (a terminal emulator, to see what is on the screen) in the interpreter that
runs this script (`make bench` installs it: the `bench` extra; or `.venv/bin/pip install pyte`). pg_activity runs from its own venv
(default /tmp/pga; created with pip when missing: `python3 -m venv /tmp/pga &&
/tmp/pga/bin/pip install pg_activity 'psycopg[binary]'`).

One run brings the lab up (`dashboard.lab.stack.Lab` in a temporary directory, always
taken down at the end) and measures both programs the same way, each in a pty this
script owns (pty.fork + TIOCSWINSZ, TERM=xterm-256color, COLORTERM unset so both use
256 colours, refresh 1 s): scaledash as `scaledash --config <lab>/scaledash.toml`
(interval 1 s from the lab's config) and pg_activity as `pg_activity --refresh 1 -h
127.0.0.1 -p PORT -U monitor -d postgres` (default view, password via PGPASSWORD, an
empty XDG_CONFIG_HOME so no user profile applies), both watching the same primary.
The pty output is read continuously, counted and fed to pyte, which also answers the
terminal's status queries (cursor position, device attributes) like a terminal would.

Phases:
  1. start-up, each program alone at 120x40, alternating, `--starts` times each:
     first output byte, first frame (the end of the burst of output in which the screen
     first becomes non-blank: chunks < 15 ms apart are one paint), first live data (the end
     of the paint that first shows it)
     (scaledash: the primary row shows the role the server reported, "prim"/"primary", or
     a replica row shows "repl" or a lag figure such as "0 B"; pg_activity: its header
     shows the server's version and its "Sessions: N/M total" figure). One uncounted
     warm-up start of each comes first; medians are reported, with min-max.
  2. 80x24 and 200x50, both programs at once: after a warm-up, bytes written to the
     terminal per second and CPU seconds per minute over a steady window.
  2b. like for like at 120x40, both at once: scaledash with a config cut down to the
     lab's primary (what pg_activity watches): CPU, bytes/s and RSS, to tell what the
     dashboard itself costs from what its other targets cost.
  3. the soak at 120x40, both at once, `--minutes` long: bytes/s and CPU s/min over the
     window from the warm-up to the end, RSS at 1 minute, every minute, and at the end.

Bytecode: by default both programs get a private PYTHONPYCACHEPREFIX (and no
PYTHONDONTWRITEBYTECODE), filled by the warm-up start, as after a pip install that
compiled bytecode; `--as-is` keeps this environment's settings (in an editable checkout
with PYTHONDONTWRITEBYTECODE=1, every edited module is then recompiled at every start).
`--save-output DIR` keeps each pty's raw output to analyse what is repainted.

CPU is utime+stime of the process and its live descendants plus what its reaped
children used (/proc/<pid>/stat); RSS is VmRSS (/proc/<pid>/status) summed over the
same tree. The servers' own CPU (the queries each program makes) is not counted. The
machine is shared: the load average is printed at the start, every minute and at the end.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import selectors
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from figures import loadavg, process_tree, table  # noqa: E402

try:
    import pyte
except ImportError:  # pragma: no cover - a bench dependency, not the project's
    sys.exit("tests/bench/tui.py needs pyte in this interpreter: .venv/bin/pip install pyte")

CLK_TCK = os.sysconf("SC_CLK_TCK")
# The console script of the venv running this bench (make's .venv, or a checkout's own).
SCALEDASH = Path(sys.executable).with_name("scaledash")
PGA_VENV = Path("/tmp/pga")
TERM = "xterm-256color"
STARTUP_SIZE = (120, 40)
SOAK_SIZE = (120, 40)
SIZES = ((80, 24), (200, 50))
STARTUP_TIMEOUT = 20.0
BURST_GAP = 0.015   # output chunks closer than this belong to the same paint

# Goals (the issue): first frame < 0.5 s, first data < 1.5 s; the rest relative to pg_activity.
GOAL_FIRST_FRAME = 0.5
GOAL_FIRST_DATA = 1.5
FLAT_TOLERANCE = 0.05   # RSS at the end within 5 % of RSS at 1 minute counts as flat

# Figures the issue quotes for this kind of machine (120x40 pty, 1 s refresh), for scale.
REFERENCE = {
    "pg_activity 3.6.2": dict(first="0.31 s", bps_120="2.0 KB/s", bps_80="1.6 KB/s", cpu="0.7", rss="45 MB"),
    "bare Textual app": dict(first="0.25 s", bps_120="15 KB/s", bps_80="11 KB/s", cpu="1.8", rss="41 MB"),
}

# Live data on the screen, i.e. figures that came from the servers.
# scaledash: a replica row whose role ("prim"/"primary", "repl") or lag figure ("0 B") came from
# the server (the columns vary with the terminal width).
SCALEDASH_DATA = re.compile(r"\bprimary\s+OK\s+prim(ary)?\b|\breplica-\d\s+\S+\s+(repl\b|[\d.]+ ?[KMGT]?i?B\b)")
PGA_DATA = re.compile(r"PostgreSQL \d+.*Sessions: \d+/\d+ total", re.S)


# ============================================================================ /proc


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name is in parentheses and may contain spaces: split after it.
    return raw[raw.rindex(")") + 2:].split()


def cpu_seconds(pid: int) -> float:
    """utime+stime of pid and its live descendants, plus cutime+cstime of reaped children."""
    total = 0.0
    for i, p in enumerate(process_tree(pid)):
        f = _stat_fields(p)
        if f is None:
            continue
        # after "(comm) ": state=0 ... utime=11 stime=12 cutime=13 cstime=14
        total += int(f[11]) + int(f[12])
        if i == 0:
            total += int(f[13]) + int(f[14])
    return total / CLK_TCK


def rss_mb(pid: int) -> float:
    kb = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    kb += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return kb / 1024


# ============================================================================ pty


class AnsweringScreen(pyte.Screen):
    """A pyte screen that answers DSR/DA queries on the pty, as a terminal would."""

    def __init__(self, cols: int, rows: int, fd: int):
        super().__init__(cols, rows)
        self._fd = fd

    def write_process_input(self, data: str) -> None:
        try:
            os.write(self._fd, data.encode())
        except OSError:
            pass


@dataclass
class PtyProgram:
    name: str
    argv: list[str]
    env: dict[str, str]
    cols: int
    rows: int
    data_pattern: re.Pattern
    save_to: Path | None = None

    pid: int = 0
    fd: int = -1
    t0: float = 0.0
    nbytes: int = 0
    first_byte: float | None = None
    first_frame: float | None = None
    first_data: float | None = None
    exited: bool = False
    exit_status: int | None = None
    _screen: pyte.Screen | None = None
    _stream: pyte.ByteStream | None = None
    _save: object = None
    watch_screen: bool = True
    _frame_open: bool = False
    _data_open: bool = False
    _last_chunk: float = 0.0
    _dcs_carry: bytes = b""

    def start(self) -> "PtyProgram":
        self.t0 = time.monotonic()
        pid, fd = pty.fork()
        if pid == 0:  # child: size the terminal before exec, so the first frame has it
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", self.rows, self.cols, 0, 0))
                os.execve(self.argv[0], self.argv, self.env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        os.set_blocking(fd, False)
        self._screen = AnsweringScreen(self.cols, self.rows, fd)
        self._stream = pyte.ByteStream(self._screen)
        if self.save_to:
            self._save = open(self.save_to, "wb")
        return self

    def on_readable(self) -> None:
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:  # EIO: the child closed the pty
            data = b""
        if not data:
            self._reap(block=True)
            return
        now = time.monotonic() - self.t0
        self.nbytes += len(data)
        if self._save:
            self._save.write(struct.pack("<dI", now, len(data)) + data)
        if self.first_byte is None:
            self.first_byte = now
        if now - self._last_chunk > BURST_GAP:
            self._frame_open = self._data_open = False   # the paint that showed it has ended
        if self._frame_open:
            self.first_frame = now
        if self._data_open:
            self.first_data = now
        self._last_chunk = now
        if self.watch_screen or self.first_data is None:
            self._stream.feed(self._strip_dcs(data))
            if self.first_frame is None and any(line.strip() for line in self._screen.display):
                self.first_frame, self._frame_open = now, True
            if self.first_data is None and self.data_pattern.search(self.screen_text()):
                self.first_data, self._data_open = now, True

    def data_shown(self) -> bool:
        """Live data is on the screen and the paint that brought it has ended."""
        return self.first_data is not None and time.monotonic() - self.t0 - self._last_chunk > BURST_GAP

    def _strip_dcs(self, data: bytes) -> bytes:
        """Drop DCS strings (ESC P ... ESC \\, e.g. XTGETTCAP queries): pyte would print them."""
        data = self._dcs_carry + data
        self._dcs_carry = b""
        out = []
        while True:
            start = data.find(b"\x1bP")
            if start < 0:
                out.append(data)
                break
            out.append(data[:start])
            end = data.find(b"\x1b\\", start + 2)
            if end < 0:
                self._dcs_carry = data[start:]
                break
            data = data[end + 2:]
        return b"".join(out)

    def screen_text(self) -> str:
        return "\n".join(line.rstrip() for line in self._screen.display)

    def _reap(self, block: bool = False) -> None:
        if self.exited:
            return
        try:
            pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, 0
        if pid:
            self.exited = True
            self.exit_status = status

    def alive(self) -> bool:
        self._reap()
        return not self.exited

    def stop(self, timeout: float = 5.0) -> None:
        """Quit with 'q' as a user would; SIGTERM, then SIGKILL, if it does not go."""
        if not self.exited:
            for sig in (None, signal.SIGTERM, signal.SIGKILL):
                try:
                    if sig is None:
                        os.write(self.fd, b"q")
                    else:
                        os.kill(self.pid, sig)
                except OSError:
                    pass
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and self.alive():
                    self._drain(0.1)
                if self.exited:
                    break
        try:
            os.close(self.fd)
        except OSError:
            pass
        if self._save:
            self._save.close()

    def _drain(self, wait: float) -> None:
        import select
        try:
            ready, _, _ = select.select([self.fd], [], [], wait)
        except (OSError, ValueError):
            return
        if ready:
            self.on_readable()


def pump(programs: list[PtyProgram], until: float, stop_when: Callable[[], bool] | None = None,
         every: float | None = None, tick: Callable[[float], None] | None = None) -> None:
    """Read every pty until monotonic time `until` (or stop_when()); call tick(now) every `every` s."""
    sel = selectors.DefaultSelector()
    for prog in programs:
        sel.register(prog.fd, selectors.EVENT_READ, prog)
    next_tick = time.monotonic() + every if every else None
    try:
        while True:
            now = time.monotonic()
            if now >= until or (stop_when and stop_when()):
                return
            timeout = until - now
            if next_tick is not None:
                timeout = min(timeout, max(0.0, next_tick - now))
            for key, _ in sel.select(min(timeout, 0.05 if stop_when else 0.5)):
                prog = key.data
                prog.on_readable()
                if prog.exited:
                    sel.unregister(prog.fd)
            if next_tick is not None and time.monotonic() >= next_tick:
                tick(time.monotonic())
                next_tick += every
            if all(p.exited for p in programs):
                return
    finally:
        sel.close()


# ============================================================================ the programs


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("COLUMNS", "LINES", "COLORTERM", "NO_COLOR", "TMUX", "PGPASSWORD")
           and not k.startswith("TEXTUAL")}
    env["TERM"] = TERM
    return env


@dataclass
class Setup:
    lab_dir: Path
    config: Path
    pg_port: int
    pg_password: str
    pga_bin: Path
    xdg: Path
    save_dir: Path | None
    pycache: Path | None = None    # PYTHONPYCACHEPREFIX for both programs (None: environment as is)

    def env(self) -> dict[str, str]:
        env = base_env()
        if self.pycache is not None:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(self.pycache)
        return env


def make_program(which: str, setup: Setup, cols: int, rows: int, label: str = "",
                 config: Path | None = None) -> PtyProgram:
    save = None
    if setup.save_dir:
        setup.save_dir.mkdir(parents=True, exist_ok=True)
        save = setup.save_dir / f"{which}-{label or f'{cols}x{rows}'}.bin"
    if which == "scaledash":
        return PtyProgram("scaledash", [str(SCALEDASH), "--config", str(config or setup.config)], setup.env(),
                          cols, rows, SCALEDASH_DATA, save)
    env = setup.env() | {"PGPASSWORD": setup.pg_password, "XDG_CONFIG_HOME": str(setup.xdg)}
    argv = [str(setup.pga_bin), "--refresh", "1", "-h", "127.0.0.1", "-p", str(setup.pg_port),
            "-U", "monitor", "-d", "postgres"]
    return PtyProgram("pg_activity", argv, env, cols, rows, PGA_DATA, save)


def ensure_pg_activity(venv: Path) -> Path:
    binary = venv / "bin" / "pg_activity"
    if binary.exists():
        return binary
    print(f"# installing pg_activity into its own venv {venv}", flush=True)
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "pg_activity", "psycopg[binary]"], check=True)
    return binary


def pg_activity_version(binary: Path) -> str:
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30).stdout
        return out.strip()
    except (OSError, subprocess.SubprocessError):
        return "pg_activity ?"


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:  # noqa: BLE001 - informative only
        return "?"


def scaledash_version() -> str:
    try:
        from importlib.metadata import version
        import textual
        return f"scaledash {version('scaledash')} (textual {textual.__version__})"
    except Exception:  # noqa: BLE001 - informative only
        return "scaledash ?"


# ============================================================================ phases


@dataclass
class Startup:
    first_byte: list[float] = field(default_factory=list)
    first_frame: list[float] = field(default_factory=list)
    first_data: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def phase_startup(setup: Setup, starts: int, log) -> dict[str, Startup]:
    results = {"scaledash": Startup(), "pg_activity": Startup()}
    cols, rows = STARTUP_SIZE
    for i in range(-1, starts):          # start -1 is a warm-up (bytecode, page cache): not counted
        for which in ("scaledash", "pg_activity"):
            prog = make_program(which, setup, cols, rows, label=f"start{i + 1}").start()
            try:
                pump([prog], time.monotonic() + STARTUP_TIMEOUT, stop_when=prog.data_shown)
            finally:
                prog.stop()
            res = results[which]
            if i < 0:
                log(f"  warm-up {which:<9} byte {_fmt_s(prog.first_byte)}  frame {_fmt_s(prog.first_frame)}"
                    f"  data {_fmt_s(prog.first_data)}  (not counted)")
                time.sleep(0.5)
                continue
            if prog.first_data is None:
                res.failures.append(f"start {i + 1}: no live data within {STARTUP_TIMEOUT:.0f}s; "
                                    f"screen:\n{prog.screen_text()}")
            for name in ("first_byte", "first_frame", "first_data"):
                value = getattr(prog, name)
                if value is not None:
                    getattr(res, name).append(value)
            log(f"  start {i + 1} {which:<11} byte {_fmt_s(prog.first_byte)}  frame {_fmt_s(prog.first_frame)}"
                f"  data {_fmt_s(prog.first_data)}")
            time.sleep(0.5)
    return results


@dataclass
class Steady:
    cols: int
    rows: int
    window: float = 0.0
    bytes: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    rss: dict[str, list[tuple[float, float]]] = field(default_factory=dict)   # (minute, MB)
    loads: list[tuple[float, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    screens: dict[str, str] = field(default_factory=dict)

    def bps(self, which: str) -> float:
        return self.bytes[which] / self.window

    def cpu_per_min(self, which: str) -> float:
        return self.cpu[which] / self.window * 60


def phase_steady(setup: Setup, cols: int, rows: int, warmup: float, window: float, log,
                 sample_minutes: bool = False, scaledash_config: Path | None = None) -> Steady:
    """Both programs at once at cols x rows: warm-up, then bytes and CPU over the window."""
    label = "primary-only" if scaledash_config else ""
    progs = [make_program(w, setup, cols, rows, label=label, config=scaledash_config)
             for w in ("scaledash", "pg_activity")]
    result = Steady(cols, rows)
    try:
        for prog in progs:
            prog.start()
        started = time.monotonic()
        pump(progs, started + warmup)
        for prog in progs:
            if prog.first_data is None:
                result.problems.append(f"{prog.name} at {cols}x{rows}: no live data after the "
                                       f"{warmup:.0f}s warm-up; screen:\n{prog.screen_text()}")
            prog.watch_screen = False   # from here on only count bytes (pyte costs the bench CPU)
        base_bytes = {p.name: p.nbytes for p in progs}
        base_cpu = {p.name: cpu_seconds(p.pid) for p in progs}
        for p in progs:
            result.rss[p.name] = []
        result.loads.append((0.0, loadavg()))
        window_start = time.monotonic()

        def tick(now: float) -> None:
            minute = (now - started) / 60
            for p in progs:
                if p.alive():
                    result.rss[p.name].append((minute, rss_mb(p.pid)))
            result.loads.append((minute, loadavg()))
            if sample_minutes:
                log(f"  {minute:4.1f} min  load {loadavg():<16} " + "  ".join(
                    f"{p.name} {result.rss[p.name][-1][1]:.1f} MB {(p.nbytes - base_bytes[p.name]) / (now - window_start):.0f} B/s"
                    for p in progs if result.rss[p.name]))

        if sample_minutes:
            # RSS at 1 minute after start, then every minute to the end.
            first = started + 60
            pump(progs, first)
            tick(time.monotonic())
            pump(progs, window_start + window, every=60, tick=tick)
        else:
            pump(progs, window_start + window)
        end = time.monotonic()
        result.window = end - window_start
        for p in progs:
            if not p.alive():
                result.problems.append(f"{p.name} exited during the run (status {p.exit_status})")
                result.bytes[p.name] = p.nbytes - base_bytes[p.name]
                result.cpu[p.name] = float("nan")
                continue
            result.bytes[p.name] = p.nbytes - base_bytes[p.name]
            result.cpu[p.name] = cpu_seconds(p.pid) - base_cpu[p.name]
            samples = result.rss[p.name]
            if samples and (end - started) / 60 - samples[-1][0] < 0.05:
                samples.pop()       # the last minute's tick fell on the end: one sample, not two
            samples.append(((end - started) / 60, rss_mb(p.pid)))
        result.loads.append(((end - started) / 60, loadavg()))
    finally:
        for prog in progs:
            prog.stop()
    return result


# ============================================================================ report


def _fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _startup_cell(values: list[float]) -> str:
    if not values:
        return "none"
    if len(values) == 1:
        return f"{values[0]:.2f} s"
    return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def _kb(bps: float) -> str:
    return f"{bps / 1024:.2f} KB/s"


def met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "NO")


def write_primary_only_config(lab_config: Path, path: Path) -> Path:
    """The lab's config cut down to its primary: scaledash watching what pg_activity watches."""
    import json
    import tomllib

    cfg = tomllib.loads(lab_config.read_text())
    primary = next(r for r in cfg["replica"] if r["name"] == "primary")
    lines = [f"name = {json.dumps(cfg.get('name', 'lab') + '-primary')}"]
    lines += [f"{key} = {json.dumps(cfg[key])}" for key in ("interval", "timeout") if key in cfg]
    lines += ["", "[[replica]]", *(f"{k} = {json.dumps(v)}" for k, v in primary.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def report(startup: dict[str, Startup], sizes: list[Steady], soak: Steady, minutes: float,
           one: Steady | None = None) -> str:
    sd, pa = startup["scaledash"], startup["pg_activity"]
    rows = []
    ff = _median(sd.first_frame)
    fd = _median(sd.first_data)
    rows.append(("first output byte (120x40), median (min-max)", _startup_cell(sd.first_byte),
                 _startup_cell(pa.first_byte), "-", "-"))
    rows.append(("first frame (non-blank screen)", _startup_cell(sd.first_frame),
                 _startup_cell(pa.first_frame), f"< {GOAL_FIRST_FRAME} s", met(ff is not None and ff < GOAL_FIRST_FRAME)))
    rows.append(("first live data", _startup_cell(sd.first_data), _startup_cell(pa.first_data),
                 f"< {GOAL_FIRST_DATA} s", met(fd is not None and fd < GOAL_FIRST_DATA)))

    def cpu_row(st: Steady, label: str):
        a, b = st.cpu_per_min("scaledash"), st.cpu_per_min("pg_activity")
        return (f"CPU s/min at 1 s refresh, {label}", f"{a:.2f}", f"{b:.2f}", "<= pg_activity", met(a <= b))

    def bps_row(st: Steady):
        a, b = st.bps("scaledash"), st.bps("pg_activity")
        return (f"bytes to terminal/s, {st.cols}x{st.rows} ({st.window:.0f} s window)", _kb(a), _kb(b),
                "<= pg_activity", met(a <= b))

    rows.append(cpu_row(soak, f"{soak.cols}x{soak.rows} ({soak.window / 60:.1f} min window)"))
    for st in sizes:
        rows.append(cpu_row(st, f"{st.cols}x{st.rows} ({st.window:.0f} s window)"))
    for st in sizes:
        rows.append(bps_row(st))
    rows.append(bps_row(soak))
    if one is not None:
        a, b = one.cpu_per_min("scaledash"), one.cpu_per_min("pg_activity")
        label = f"like for like: scaledash on the primary only, {one.cols}x{one.rows} ({one.window:.0f} s)"
        rows.append((f"{label}: CPU s/min", f"{a:.2f}", f"{b:.2f}", "<= pg_activity", met(a <= b)))
        a, b = one.bps("scaledash"), one.bps("pg_activity")
        rows.append(("  same run: bytes to terminal/s", _kb(a), _kb(b), "<= pg_activity", met(a <= b)))
        a, b = (one.rss[w][-1][1] if one.rss.get(w) else None for w in ("scaledash", "pg_activity"))
        rows.append(("  same run: RSS at its end", "-" if a is None else f"{a:.1f} MB",
                     "-" if b is None else f"{b:.1f} MB", "<= pg_activity",
                     met(None if a is None or b is None else a <= b)))

    def rss_at(which: str, minute: float) -> float | None:
        samples = soak.rss.get(which) or []
        near = [mb for m, mb in samples if m >= minute - 0.05]
        return near[0] if near else None

    end_min = soak.rss["scaledash"][-1][0] if soak.rss.get("scaledash") else minutes
    sd_1, pa_1 = rss_at("scaledash", 1.0), rss_at("pg_activity", 1.0)
    sd_end = soak.rss["scaledash"][-1][1] if soak.rss.get("scaledash") else None
    pa_end = soak.rss["pg_activity"][-1][1] if soak.rss.get("pg_activity") else None
    mb = lambda v: "-" if v is None else f"{v:.1f} MB"  # noqa: E731
    rows.append(("RSS at 1 min", mb(sd_1), mb(pa_1), "-", "-"))
    rows.append((f"RSS at end ({end_min:.1f} min)", mb(sd_end), mb(pa_end), "<= pg_activity",
                 met(None if sd_end is None or pa_end is None else sd_end <= pa_end)))

    def growth(v1, v2):
        return None if v1 is None or v2 is None else v2 - v1

    g_sd, g_pa = growth(sd_1, sd_end), growth(pa_1, pa_end)
    gfmt = lambda g, v: "-" if g is None else f"{g:+.1f} MB ({g / v * 100:+.1f} %)"  # noqa: E731
    rows.append(("RSS growth 1 min -> end", gfmt(g_sd, sd_1), gfmt(g_pa, pa_1),
                 f"flat (within {FLAT_TOLERANCE * 100:.0f} %)",
                 met(None if g_sd is None else abs(g_sd) <= FLAT_TOLERANCE * sd_1)))
    # Bounded history and caches may fill for a while and then stay: growth over the second
    # half of the soak tells a plateau from a leak.
    half = end_min / 2
    if half >= 1.0:
        sd_h, pa_h = rss_at("scaledash", half), rss_at("pg_activity", half)
        g2_sd, g2_pa = growth(sd_h, sd_end), growth(pa_h, pa_end)
        rows.append((f"RSS growth, second half ({half:.1f} -> {end_min:.1f} min)", gfmt(g2_sd, sd_h),
                     gfmt(g2_pa, pa_h), f"flat (within {FLAT_TOLERANCE * 100:.0f} %)",
                     met(None if g2_sd is None else abs(g2_sd) <= FLAT_TOLERANCE * sd_h)))
    out = [table(rows, ("metric", "scaledash", "pg_activity", "goal", "met?"))]

    # RSS over time
    minutes_seen = sorted({round(m) for m, _ in soak.rss.get("scaledash", [])})
    series = []
    for which in ("scaledash", "pg_activity"):
        series.append((which, *(f"{mbv:.1f}" for _, mbv in soak.rss.get(which, []))))
    hdr = ("RSS MB at minute", *(f"{m:.1f}" for m, _ in soak.rss.get("scaledash", [])))
    if len(series[0]) == len(hdr) and len(series[1]) == len(hdr):
        out += ["", table(series, hdr)]
    else:
        out += ["", "RSS samples (minute, MB): " + repr({w: [(round(m, 1), round(v, 1)) for m, v in s]
                                                         for w, s in soak.rss.items()})]
    del minutes_seen

    out += ["", "For scale, the issue's figures on this kind of machine (120x40 pty, 1 s refresh):"]
    ref_rows = [(name, r["first"], r["bps_120"], r["bps_80"], r["cpu"], r["rss"]) for name, r in REFERENCE.items()]
    out.append(table(ref_rows, ("program", "first output", "bytes/s 120x40", "bytes/s 80x24", "CPU s/min", "RSS")))
    return "\n".join(out)


# ============================================================================ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=None, help="soak length at 120x40 (default 10; --quick 2)")
    parser.add_argument("--quick", action="store_true", help="2-minute soak, 2 starts, 30 s size windows")
    parser.add_argument("--starts", type=int, default=None, help="start-up measurements per program (default 5)")
    parser.add_argument("--size-window", type=float, default=None, help="steady window at 80x24 / 200x50 (s)")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before a steady window starts")
    parser.add_argument("--pg-activity-venv", type=Path, default=PGA_VENV)
    parser.add_argument("--save-output", type=Path, default=None,
                        help="directory to save each pty's raw output (records of <f8 time><u32 len><bytes>)")
    parser.add_argument("--skip-sizes", action="store_true", help="only start-up and the 120x40 soak")
    parser.add_argument("--as-is", action="store_true",
                        help="run both programs with this environment's bytecode settings (by default they get "
                             "a private PYTHONPYCACHEPREFIX, warmed by one uncounted start, as a pip install "
                             "that compiled its bytecode would; PYTHONDONTWRITEBYTECODE=1 in an editable "
                             "checkout otherwise recompiles every edited module at every start)")
    args = parser.parse_args()
    minutes = args.minutes if args.minutes is not None else (2.0 if args.quick else 10.0)
    starts = args.starts if args.starts is not None else (2 if args.quick else 5)
    size_window = args.size_window if args.size_window is not None else (30.0 if args.quick else 60.0)
    if minutes < 1.2:
        parser.error("--minutes must be at least 1.2 (RSS is sampled at 1 minute)")

    def log(msg: str) -> None:
        print(msg, flush=True)

    pga_bin = ensure_pg_activity(args.pg_activity_venv)
    from dashboard.lab.stack import Lab

    tmp = Path(tempfile.mkdtemp(prefix="bench-tui-"))
    lab = Lab(tmp / "lab")
    t_start = time.time()
    log(f"# {scaledash_version()}; {pg_activity_version(pga_bin)}; pyte {_version('pyte')}")
    newest = max((f for d in ("dashboard", "widgets") for f in (ROOT / d).rglob("*.py")), key=lambda f: f.stat().st_mtime)
    log(f"# code measured: newest source {newest.relative_to(ROOT)} modified "
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(newest.stat().st_mtime))}")
    log(f"# {os.cpu_count()} CPUs; load average at start {loadavg()}; "
        f"PYTHONDONTWRITEBYTECODE={os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}")
    try:
        lab.up(log=lambda m: log(f"  lab: {m}"))
        primary = next(e for e in lab.entries() if e.name == "postgres-primary")
        xdg = tmp / "xdg-empty"
        xdg.mkdir()
        setup = Setup(lab.dir, lab.config_path, primary.port,
                      (lab.dir / "secrets" / "pg_password").read_text().strip(), pga_bin, xdg, args.save_output,
                      None if args.as_is else tmp / "pycache")
        log("# bytecode: " + ("as in this environment" if args.as_is else
                              f"private PYTHONPYCACHEPREFIX {setup.pycache}, PYTHONDONTWRITEBYTECODE unset"))
        log(f"# both watch PostgreSQL primary 127.0.0.1:{primary.port}; TERM={TERM}, refresh 1 s")
        time.sleep(2.0)   # let the lab's traffic get going

        log(f"## start-up at {STARTUP_SIZE[0]}x{STARTUP_SIZE[1]}, {starts} starts each, one program at a time")
        startup = phase_startup(setup, starts, log)
        sizes = []
        if not args.skip_sizes:
            for cols, rows in SIZES:
                log(f"## {cols}x{rows}: both at once, {args.warmup:.0f} s warm-up, {size_window:.0f} s window "
                    f"(load {loadavg()})")
                st = phase_steady(setup, cols, rows, args.warmup, size_window, log)
                log(f"  scaledash {_kb(st.bps('scaledash'))} {st.cpu_per_min('scaledash'):.2f} CPU s/min; "
                    f"pg_activity {_kb(st.bps('pg_activity'))} {st.cpu_per_min('pg_activity'):.2f} CPU s/min")
                sizes.append(st)
        one = None
        if not args.skip_sizes:
            cols, rows = SOAK_SIZE
            log(f"## like for like at {cols}x{rows}: scaledash on the primary only (pg_activity's one "
                f"target), both at once, {args.warmup:.0f} s warm-up, {size_window:.0f} s window")
            config_one = write_primary_only_config(lab.config_path, tmp / "primary-only.toml")
            one = phase_steady(setup, cols, rows, args.warmup, size_window, log, scaledash_config=config_one)
            log(f"  scaledash {_kb(one.bps('scaledash'))} {one.cpu_per_min('scaledash'):.2f} CPU s/min "
                f"{one.rss['scaledash'][-1][1]:.1f} MB; pg_activity {_kb(one.bps('pg_activity'))} "
                f"{one.cpu_per_min('pg_activity'):.2f} CPU s/min {one.rss['pg_activity'][-1][1]:.1f} MB")
        cols, rows = SOAK_SIZE
        log(f"## soak at {cols}x{rows}: both at once, {minutes:g} min, window from {args.warmup:.0f} s to the end")
        soak = phase_steady(setup, cols, rows, args.warmup, minutes * 60 - args.warmup, log, sample_minutes=True)
    finally:
        log("# lab down: " + ", ".join(lab.down()))
        shutil.rmtree(tmp, ignore_errors=True)

    steadies = [*sizes, *([one] if one else []), soak]
    problems = [*sum((s.failures for s in startup.values()), []), *(p for st in steadies for p in st.problems)]
    print()
    print(f"scaledash vs pg_activity, same PostgreSQL, refresh 1 s, {TERM}, pty; "
          f"run {time.strftime('%Y-%m-%d %H:%M', time.localtime(t_start))}, {(time.time() - t_start) / 60:.1f} min")
    print(report(startup, sizes, soak, minutes, one))
    loads = [l for st in steadies for _, l in st.loads]
    print()
    print(f"load average (1/5/15 min) during the run: start {loads[0] if loads else '?'}, "
          f"max 1-min {max(float(l.split()[0]) for l in loads):.2f}, end {loadavg()}" if loads else "")
    if problems:
        print("\nPROBLEMS:")
        for p in problems:
            print(" - " + p)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

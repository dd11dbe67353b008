"""The engine against broken targets: RELIABILITY.md cases 1, 2, 3, 8, 9 and 12.

Cases 1-3, 8 and 9 run on real servers (our own PostgreSQL cluster or Redis for
anything destructive; the session fixtures only as healthy neighbours). A `Watch`
looks at the engine the way the TUI does, a snapshot every few milliseconds, and
records what a user would have seen: states and reasons over time, every probe's
duration, probe tasks still running, and the sockets this process holds per target.
Case 12 is engine logic and uses scripted in-memory probes.

The machine is shared with other jobs. Bounds on wall time therefore allow for the time
the event loop's thread spent runnable but waiting for a CPU (`cpu_wait_s`, from the
kernel's schedstat): time the engine could not have used. A stall of our own making
(a blocking call on the loop, the GIL) does not count, so the bounds still catch it.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import signal
import socket
import statistics
import struct
import time

import pytest

from conftest import CANARY
from fakes import Clock, VirtualTime, component, source
from dashboard.config import Config, validate
from dashboard.engine import BACKOFF_CAP_S, Engine
from dashboard.lab.servers import PostgresCluster, RedisServer, free_port, redis_command
from dashboard.model import Failure, Kind, Reading, Sample, Snapshot, State

P, D = 0.5, 0.4                       # poll interval and per-probe deadline of these tests
SLACK = 1.5                           # the machine is shared: generous bounds on wall time
PG_PASSWORD = "env:SCALEDASH_TEST_PG_PASSWORD"
REDIS_PASSWORD = "env:SCALEDASH_TEST_REDIS_PASSWORD"


# ---------------------------------------------------------------- helpers

def make_config(interval: float = P, timeout: float = D, **sections) -> Config:
    return validate({"interval": interval, "timeout": timeout, **sections})


def cpu_wait_s() -> float:
    """Seconds the calling thread has spent runnable but waiting for a CPU."""
    try:
        with open("/proc/thread-self/schedstat") as fh:
            return int(fh.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def own_socket_states(port: int) -> list[str]:
    """TCP sockets this process holds (any state) to 127.0.0.1:port, as "<state>@<local port>"."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    states = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                states.append(f"{fields[3]}@{int(fields[1].rsplit(':', 1)[1], 16)}")
    return states


def hole_established(hole) -> int:
    """Accepted blackhole sockets whose client has not closed (TCP state ESTABLISHED).

    The fixture's `open_connections()` peeks for data; a client that sent a request and
    then closed still has that request in the buffer, so it would count as open.
    """
    alive = 0
    for conn in list(hole.accepted):
        try:
            info = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
        except OSError:
            continue
        alive += struct.unpack("B", info[:1])[0] == 1
    return alive


def texts_of(snap: Snapshot) -> list[str]:
    out = [c.reason for c in snap.components] + [c.last_error for c in snap.components]
    out += [s.reason for s in snap.sources] + [s.warning for s in snap.sources]
    out += [e.message for e in snap.events] + list(snap.banners)
    return [t for t in out if t]


class Watch:
    """Looks at a running engine like the TUI does and records what it saw."""

    def __init__(self, engine: Engine, ports: dict[str, int] | None = None, holes: dict | None = None,
                 period: float = 0.025):
        self.engine = engine
        self.ports = ports or {}
        self.holes = holes or {}
        self.period = period
        names = [t.probe.target for t in engine.targets]
        self.samples: dict[str, list[Sample]] = {n: [] for n in names}
        self.timeline: list[tuple[float, Snapshot]] = []
        self.cpu_waits: list[tuple[float, float]] = []     # (monotonic, cpu_wait_s) per tick
        self.max_sockets = {n: 0 for n in self.ports}
        self.worst_sockets: dict[str, list[str]] = {n: [] for n in self.ports}
        self.max_hole_open = {n: 0 for n in self.holes}
        self.max_running = {n: 0 for n in names}
        self.max_tasks = 0
        self._seen_at: dict[int, int] = {}       # id(sample) -> index of the first snapshot showing it
        self._probe_tasks: dict[str, set] = {n: set() for n in names}
        self._task: asyncio.Task | None = None

    def tick(self) -> Snapshot:
        for t in self.engine.targets:
            name = t.probe.target
            sample = t.last_sample
            if sample is not None and (not self.samples[name] or self.samples[name][-1] is not sample):
                self.samples[name].append(sample)
                self._seen_at[id(sample)] = len(self.timeline)
            tasks = self._probe_tasks[name]
            if t.in_flight is not None:
                tasks.add(t.in_flight)
            tasks.difference_update([task for task in tasks if task.done()])
            self.max_running[name] = max(self.max_running[name], len(tasks))
        for name, port in self.ports.items():
            states = own_socket_states(port)
            if len(states) > self.max_sockets[name]:
                self.max_sockets[name], self.worst_sockets[name] = len(states), states
        for name, hole in self.holes.items():
            self.max_hole_open[name] = max(self.max_hole_open[name], hole_established(hole))
        self.max_tasks = max(self.max_tasks, len(asyncio.all_tasks()))
        snap = self.engine.snapshot()
        now = time.monotonic()
        self.timeline.append((now, snap))
        self.cpu_waits.append((now, cpu_wait_s()))
        return snap

    def starved(self, start: float, end: float) -> float:
        """CPU wait of the loop's thread between two instants (rounded outwards to ticks)."""
        before = [w for at, w in self.cpu_waits if at <= start]
        after = [w for at, w in self.cpu_waits if at >= end]
        low = before[-1] if before else (self.cpu_waits[0][1] if self.cpu_waits else 0.0)
        high = after[0] if after else cpu_wait_s()
        return max(0.0, high - low)

    def overruns(self, target: str, bound: float, after: float = 0.0,
                 before: float = float("inf")) -> tuple[list[tuple[float, float]], list]:
        """(duration, CPU wait) of each probe in the window, and those over `bound` + CPU wait."""
        figures = [(s.finished - s.started, self.starved(s.started, s.finished))
                   for s in self.samples[target] if after <= s.started <= before]
        return figures, [(round(d, 3), round(w, 3)) for d, w in figures if d > bound + w]

    async def _run(self) -> None:
        while True:
            self.tick()
            await asyncio.sleep(self.period)

    def start(self) -> "Watch":
        self._task = asyncio.create_task(self._run(), name="watch")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def until(self, predicate, timeout: float, what: str) -> float:
        """Wait until predicate(latest snapshot) holds; return the monotonic time it first did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.timeline and predicate(self.timeline[-1][1]):
                return self.timeline[-1][0]
            await asyncio.sleep(self.period / 2)
        raise AssertionError(f"not within {timeout:.1f}s: {what}")

    def snapshot_showing(self, sample: Sample) -> Snapshot:
        """The first snapshot taken after `sample` was applied (what a user saw first)."""
        return self.timeline[self._seen_at[id(sample)]][1]

    def first_time(self, after: float, predicate) -> float | None:
        for at, snap in self.timeline:
            if at >= after and predicate(snap):
                return at
        return None

    def states_of(self, target: str, after: float = 0.0) -> list[State]:
        return [component(s, target).state for at, s in self.timeline if at >= after]

    def assert_no_canary(self) -> None:
        snaps = [snap for _, snap in self.timeline] + [self.engine.snapshot()]
        for snap in snaps:
            for text in texts_of(snap):
                assert CANARY not in text, "canary secret in a reason or event"
        for samples in self.samples.values():
            for s in samples:
                assert CANARY not in (s.error or "") + (s.warning or "")


def is_asyncpg_cancel_noise(context: dict) -> bool:
    """asyncpg's TLSUpgradeProto sets an exception nobody awaits when a connect is cancelled
    at the wrong instant (MagicStack/asyncpg#1211, #1310): logged, harmless, not ours."""
    exc = context.get("exception")
    return (context.get("message") == "Future exception was never retrieved"
            and type(exc) is ConnectionError and str(exc) == "unexpected connection_lost() call")


def run_scenario(scenario, timeout: float = 90.0, vt: VirtualTime | None = None) -> None:
    """Run an async scenario on a fresh loop (`vt`'s virtual-time loop when given); fail
    on any error asyncio had to log."""
    loop_errors: list[dict] = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: loop_errors.append(ctx))
        try:
            await asyncio.wait_for(scenario(), timeout)
        finally:
            gc.collect()            # an unretrieved future's exception is reported when collected
            await asyncio.sleep(0)

    if vt is None:
        asyncio.run(main())
    else:
        vt.run(main)
    noise = [c for c in loop_errors if is_asyncpg_cancel_noise(c)]
    if noise:
        print(f"\nnote: asyncio logged asyncpg's unretrieved connection_lost() future {len(noise)} time(s)")
    errors = [c for c in loop_errors if not is_asyncpg_cancel_noise(c)]
    shown = [(c.get("message"), repr(c.get("exception")).replace(CANARY, "***")) for c in errors]
    if shown:
        pytest.fail(f"asyncio logged errors (these reach stderr as tracebacks): {shown}", pytrace=False)


def assert_loops_alive(engine: Engine) -> None:
    """Every per-target polling loop is still running (none died of an exception)."""
    assert engine._tasks, "engine not started"
    for task in engine._tasks:
        assert not task.done(), f"polling loop {task.get_name()} ended: {task}"


class DebuggableRedis(RedisServer):
    """The lab's Redis with DEBUG allowed from loopback (Redis 7 refuses DEBUG SLEEP by default)."""

    def _write_config(self):
        path = super()._write_config()
        with open(path, "a") as fh:
            fh.write("enable-debug-command local\n")
        return path


def redis_client_names(port: int, password: str) -> list[str]:
    """The `name=` of every client connected to a Redis (CLIENT LIST over a raw socket)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
        reader = sock.makefile("rb")
        for args in (("AUTH", password), ("CLIENT", "LIST")):
            sock.sendall(b"".join([f"*{len(args)}\r\n".encode()]
                                  + [f"${len(a)}\r\n{a}\r\n".encode() for a in args]))
        assert reader.readline().startswith(b"+OK")
        header = reader.readline()
        assert header.startswith(b"$"), header
        body = reader.read(int(header[1:]) + 2).decode()
    names = []
    for line in body.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if "name" in fields:
            names.append(fields["name"])
    return names


def children_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    if int(fh.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return out


def signal_server_tree(pid: int, sig: int) -> None:
    """Signal a postmaster and every child of it (backends, walsender, checkpointer...).

    Process.pause() stops the postmaster alone, and PostgreSQL puts each child in its
    own session: a pooled connection to a running backend would carry on answering.
    """
    for target in [pid, *children_of(pid)]:
        try:
            os.kill(target, sig)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------- case 1

@pytest.mark.slow
def test_killed_replica_goes_stale_then_down_with_refused_and_backs_off(tmp_path):
    cluster = PostgresCluster(tmp_path / "pg", replica_names=["r1"], password=CANARY).start()
    try:
        replica = cluster.replicas[0]
        cfg = make_config(replica=[
            {"name": "primary", "dsn": cluster.dsn(cluster.primary), "password": PG_PASSWORD},
            {"name": "r1", "dsn": cluster.dsn(replica), "password": PG_PASSWORD},
        ])

        async def scenario():
            engine = Engine(cfg)
            watch = Watch(engine, ports={"r1": replica.port}).start()
            engine.start()
            try:
                await watch.until(lambda s: component(s, "r1").state is State.OK, 20, "r1 OK")
                await asyncio.sleep(P * 0.6)           # land somewhere inside a poll interval
                killed_at = time.monotonic()
                await asyncio.to_thread(replica.kill)   # SIGKILL by PID
                r1 = engine.targets[1]
                down_at = await watch.until(lambda s: component(s, "r1").state is State.DOWN, 20, "r1 DOWN")
                stale_at = watch.first_time(killed_at, lambda s: component(s, "r1").state
                                            in (State.STALE, State.DOWN))
                seen = set(watch.states_of("r1", killed_at))
                down = component(watch.timeline[-1][1], "r1")
                waited = watch.starved(killed_at, down_at)
                print(f"\ncase 1: STALE-or-DOWN {stale_at - killed_at:.2f}s, DOWN {down_at - killed_at:.2f}s "
                      f"after SIGKILL (2P={2 * P}, 2P+D={2 * P + D}, CPU wait {waited:.2f}s); "
                      f"states seen {sorted(map(str, seen))}; reason {down.reason!r}")
                assert stale_at - killed_at <= 2 * P + 1.0 + waited
                assert down_at - killed_at <= 2 * P + D + SLACK + waited
                assert seen <= {State.OK, State.STALE, State.DOWN}, "a dead replica is not an ERROR of its data"
                assert "connection refused" in down.reason

                # Backoff: far fewer attempts than one per P, and the next attempt is shown.
                attempts_before, window_start = r1.attempts, time.monotonic()
                await asyncio.sleep(5.0)
                attempts = r1.attempts - attempts_before
                window = time.monotonic() - window_start
                next_in = [component(s, "r1").next_probe_in_s for at, s in watch.timeline if at >= window_start]
                print(f"case 1: {attempts} probe attempts in {window:.1f}s after DOWN "
                      f"(one per P would be {window / P:.0f}); max next_probe_in_s {max(next_in):.2f}")
                assert 1 <= attempts <= 4
                assert all(n is not None for n in next_in)
                assert max(next_in) > 1.5 * P, "the backed-off next probe time is visible"
                snap = engine.snapshot()
                assert component(snap, "r1").state is State.DOWN
                assert component(snap, "primary").state is State.OK, "the primary keeps updating"
                assert component(snap, "primary").age_s <= 2 * P + watch.starved(window_start, time.monotonic())
                assert watch.max_sockets["r1"] <= 2
                assert_loops_alive(engine)
                watch.assert_no_canary()
            finally:
                await watch.stop()
                await engine.close()

        run_scenario(scenario)
    finally:
        cluster.stop()


@pytest.mark.slow
def test_redis_restarted_on_the_same_port_is_ok_on_the_first_good_probe(tmp_path):
    server = RedisServer(tmp_path / "redis", password=CANARY).start()
    port = server.port
    cfg = make_config(cache=[{"name": "c", "url": server.url(), "password": REDIS_PASSWORD}])

    async def scenario():
        nonlocal server
        engine = Engine(cfg)
        watch = Watch(engine, ports={"c": port}).start()
        engine.start()
        try:
            await watch.until(lambda s: component(s, "c").state is State.OK, 20, "cache OK")
            stopped_at = time.monotonic()
            await asyncio.to_thread(server.stop)
            down_at = await watch.until(lambda s: component(s, "c").state is State.DOWN, 20, "cache DOWN")
            assert down_at - stopped_at <= 2 * P + D + SLACK + watch.starved(stopped_at, down_at)
            await watch.until(lambda s: "connection refused" in (component(s, "c").reason or ""), 10,
                              "refused as the reason")
            down_samples = len(watch.samples["c"])
            server = await asyncio.to_thread(
                RedisServer(tmp_path / "redis", password=CANARY, port=port).start)
            restarted_at = time.monotonic()
            await watch.until(lambda s: any(x.ok for x in watch.samples["c"][down_samples:]), 20,
                              "a good probe after the restart")
            first_good = next(x for x in watch.samples["c"][down_samples:] if x.ok)
            failed_between = [x for x in watch.samples["c"][down_samples:] if not x.ok]
            print(f"\ncase 1 recovery: first good probe {first_good.finished - restarted_at:.2f}s after the "
                  f"restart, {len(failed_between)} failed probes in between")
            # The first snapshot showing the first good probe already says OK.
            seen = watch.snapshot_showing(first_good)
            assert component(seen, "c").state is State.OK, component(seen, "c")
            assert "refused" not in (component(seen, "c").reason or "")
            assert source(seen, "c").state is State.OK and source(seen, "c").consecutive_failures == 0
            assert_loops_alive(engine)
            watch.assert_no_canary()
        finally:
            await watch.stop()
            await engine.close()

    try:
        run_scenario(scenario)
    finally:
        server.stop()


# ---------------------------------------------------------------- case 2

@pytest.mark.slow
def test_hung_primary_times_out_at_the_deadline_without_pile_up(tmp_path, redis_server):
    cluster = PostgresCluster(tmp_path / "pg", replica_names=["r1"], password=CANARY).start()
    primary = cluster.primary
    cfg = make_config(
        replica=[{"name": "primary", "dsn": cluster.dsn(primary), "password": PG_PASSWORD},
                 {"name": "r1", "dsn": cluster.dsn(cluster.replicas[0]), "password": PG_PASSWORD}],
        cache=[{"name": "steady", "url": redis_server.url(), "password": REDIS_PASSWORD}],
    )

    async def scenario():
        engine = Engine(cfg)
        watch = Watch(engine, ports={"primary": primary.port}).start()
        engine.start()
        try:
            await watch.until(lambda s: all(c.state is State.OK for c in s.components), 20, "all OK")
            hung_at = time.monotonic()
            signal_server_tree(primary.pid, signal.SIGSTOP)
            try:
                down_at = await watch.until(lambda s: component(s, "primary").state is State.DOWN, 20,
                                            "primary DOWN")
                await asyncio.sleep(2.5)
            finally:
                signal_server_tree(primary.pid, signal.SIGCONT)
            resumed_at = time.monotonic()
            hung = [s for s in watch.samples["primary"] if hung_at <= s.started <= resumed_at - D]
            figures, late = watch.overruns("primary", D + 0.3, hung_at, resumed_at - D)
            print(f"\ncase 2: DOWN {down_at - hung_at:.2f}s after SIGSTOP; {len(hung)} probes of the hung "
                  f"primary, (duration, CPU wait) {[(round(d, 3), round(w, 3)) for d, w in figures]} (D={D}); "
                  f"max probe tasks running {watch.max_running['primary']}, max sockets "
                  f"{watch.max_sockets['primary']}, max asyncio tasks {watch.max_tasks}")
            assert down_at - hung_at <= 2 * P + 2 * D + SLACK + watch.starved(hung_at, down_at)
            assert hung and all(not s.ok and s.error == "timeout" for s in hung), [s.error for s in hung]
            assert all(d >= D - 0.05 for d, _ in figures), "cut at the deadline, not before"
            assert not late, f"probes overran D + 0.3 s: {late}"
            assert watch.max_running["primary"] <= 1, "at most one probe in flight per target"
            assert watch.max_sockets["primary"] <= 2, watch.worst_sockets["primary"]
            assert watch.max_tasks <= 12
            # The neighbours kept updating on time while the primary was hung.
            steady = [s for s in watch.samples["steady"] if hung_at <= s.started <= resumed_at]
            assert steady and all(s.ok for s in steady)
            late_gaps = [(round(b.started - a.started, 3)) for a, b in zip(steady, steady[1:])
                         if b.started - a.started > P + 0.3 + watch.starved(a.started, b.started)]
            assert not late_gaps, late_gaps
            assert set(watch.states_of("r1", hung_at)) == {State.OK}
            # After SIGCONT it recovers.
            await watch.until(lambda s: component(s, "primary").state is State.OK, 20, "primary OK again")
            assert_loops_alive(engine)
            watch.assert_no_canary()
        finally:
            await watch.stop()
            await engine.close()

    try:
        run_scenario(scenario)
    finally:
        signal_server_tree(primary.pid, signal.SIGCONT)
        cluster.stop()


# ---------------------------------------------------------------- case 3

@pytest.mark.parametrize("fault", ["debug_sleep", "client_pause", "shutdown"])
def test_hung_or_stopped_redis_polls_end_by_the_deadline(tmp_path, redis_server, http, fault):
    server = DebuggableRedis(tmp_path / "redis", password=CANARY).start()
    port = server.port
    http.set("/functions/v1/hello", "hi")
    cfg = make_config(
        cache=[{"name": "hung", "url": server.url(), "password": REDIS_PASSWORD},
               {"name": "steady", "url": redis_server.url(), "password": REDIS_PASSWORD}],
        edge=[{"name": "hello", "url": http.url("/functions/v1/hello")}],
    )

    async def scenario():
        engine = Engine(cfg)
        watch = Watch(engine, ports={"hung": port}).start()
        engine.start()
        sleeper = None
        try:
            await watch.until(lambda s: all(c.state is State.OK for c in s.components), 20, "all OK")
            fault_at = time.monotonic()
            if fault == "debug_sleep":
                sleeper = asyncio.ensure_future(asyncio.to_thread(
                    redis_command, port, "DEBUG", "SLEEP", "3", password=CANARY, timeout=10))
            elif fault == "client_pause":
                reply = await asyncio.to_thread(redis_command, port, "CLIENT", "PAUSE", "3000",
                                                password=CANARY)
                assert reply == "+OK"
            else:
                await asyncio.to_thread(server.stop)
            down_at = await watch.until(lambda s: component(s, "hung").state is State.DOWN, 20,
                                        "hung Redis DOWN")
            await asyncio.sleep(max(0.0, fault_at + 2.8 - time.monotonic()))
            window_end = time.monotonic()
            failed = [s for s in watch.samples["hung"] if fault_at <= s.started <= window_end and not s.ok]
            figures, late = watch.overruns("hung", D + 0.3, fault_at, window_end)
            print(f"\ncase 3 {fault}: DOWN {down_at - fault_at:.2f}s after the fault; {len(figures)} polls, "
                  f"(duration, CPU wait) {[(round(d, 3), round(w, 3)) for d, w in figures]} (D={D}); "
                  f"max sockets {watch.max_sockets['hung']}; reasons {sorted({s.error for s in failed})}")
            assert failed, "the fault was seen"
            assert down_at - fault_at <= 2 * P + 2 * D + SLACK + watch.starved(fault_at, down_at)
            assert not late, f"polls overran D + 0.3 s: {late}"
            assert watch.max_sockets["hung"] <= 2
            assert watch.max_running["hung"] <= 1
            expected = "connection refused" if fault == "shutdown" else "timeout"
            assert expected in component(watch.timeline[-1][1], "hung").reason
            for name in ("steady", "hello"):
                seen = [s for s in watch.samples[name] if fault_at <= s.started <= window_end]
                late_gaps = [round(b.started - a.started, 3) for a, b in zip(seen, seen[1:])
                             if b.started - a.started > P + 0.3 + watch.starved(a.started, b.started)]
                assert seen and all(s.ok for s in seen), name
                assert not late_gaps, (name, late_gaps)
                assert set(watch.states_of(name, fault_at)) == {State.OK}, name
            if fault != "shutdown":
                if sleeper is not None:
                    assert (await sleeper) == "+OK"
                await watch.until(lambda s: component(s, "hung").state is State.OK, 20, "hung Redis OK again")
                names = await asyncio.to_thread(redis_client_names, port, CANARY)
                print(f"case 3 {fault}: CLIENT LIST after the fault: {names.count('scaledash')} scaledash "
                      f"connection(s) of {len(names)} named")
                assert names.count("scaledash") <= 2
            assert_loops_alive(engine)
            watch.assert_no_canary()
        finally:
            if sleeper is not None:
                await asyncio.gather(sleeper, return_exceptions=True)
            await watch.stop()
            await engine.close()

    try:
        run_scenario(scenario)
    finally:
        server.stop()


# ---------------------------------------------------------------- case 8

@pytest.mark.slow
def test_blackhole_every_probe_type_ends_by_the_deadline_with_bounded_sockets(blackhole):
    holes = {"replica": blackhole}
    holes.update({name: type(blackhole)() for name in ("cache", "scrape", "prom", "edge", "cdn")})
    try:
        def url(name, scheme="http", path=""):
            return f"{scheme}://127.0.0.1:{holes[name].port}{path}"

        timeout = 0.3
        cfg = make_config(
            timeout=timeout,
            replica=[{"name": "replica", "dsn": url("replica", "postgresql", "/app").replace("//", "//monitor@"),
                      "password": PG_PASSWORD}],
            cache=[{"name": "cache", "url": url("cache", "redis", "/0"), "password": REDIS_PASSWORD}],
            source=[{"name": "scrape", "scrape": url("scrape", path="/metrics"),
                     "username": "service_role", "password": PG_PASSWORD},
                    {"name": "prom", "prometheus": url("prom"), "password": PG_PASSWORD}],
            edge=[{"name": "edge", "url": url("edge", path="/functions/v1/hello"),
                   "headers": {"Authorization": "env:SCALEDASH_TEST_TOKEN"}}],
            cdn=[{"name": "cdn", "url": url("cdn", path="/app.js")}],
        )
        rounds = 20

        async def scenario():
            engine = Engine(cfg)
            watch = Watch(engine, ports={n: h.port for n, h in holes.items()}, holes=holes, period=0.02)
            watch.start()
            states_after = {}
            try:
                for i in range(rounds):
                    await engine.poll_round()
                    watch.tick()
                    if i == 1:
                        snap = engine.snapshot()
                        states_after = {s.target: s.state for s in snap.sources}
                        states_after.update({c.target: c.state for c in snap.components})
                figures = {n: watch.overruns(n, timeout + 0.6) for n in holes}
                most_starved = max(w for f, _ in figures.values() for _, w in f)
                print(f"\ncase 8 (D={timeout}): max probe duration per target "
                      + ", ".join(f"{n} {max(d for d, _ in f):.3f}s" for n, (f, _) in figures.items())
                      + f"; max CPU wait during one probe {most_starved:.3f}s")
                print("case 8: max sockets held per target (client side) "
                      f"{watch.max_sockets}; max ESTABLISHED at the blackhole {watch.max_hole_open}; "
                      f"accepted in total { {n: len(h.accepted) for n, h in holes.items()} }; "
                      f"the fixture's open_connections() {blackhole.open_connections()} on the replica hole")
                print(f"case 8: states after 2 rounds { {n: str(s) for n, s in states_after.items()} }")
                for name, (values, late) in figures.items():
                    assert len(values) == rounds, (name, len(values))
                    assert not late, (name, late)
                for name in holes:
                    assert watch.max_sockets[name] <= 2, (name, watch.worst_sockets[name])
                    assert watch.max_hole_open[name] <= 2, name
                    assert watch.max_running[name] <= 1, name
                for name in ("replica", "cache", "scrape", "edge", "cdn"):
                    assert states_after[name] is State.DOWN, (name, states_after[name])
                # "My source failed" is not "the target is down": Prometheus is an ERROR.
                assert states_after["prom"] is State.ERROR, states_after["prom"]
                assert {s.failure for s in watch.samples["prom"]} == {Failure.ERROR}
                assert {s.failure for s in watch.samples["replica"]} == {Failure.DOWN}
                snap = engine.snapshot()
                assert source(snap, "prom").state is State.ERROR
                assert all(c.state is State.DOWN for c in snap.components)
                assert all("timeout" in (c.reason or "") for c in snap.components)
                watch.assert_no_canary()
            finally:
                await watch.stop()
                await engine.close()

        run_scenario(scenario)
    finally:
        for name, hole in holes.items():
            if hole is not blackhole:
                hole.close()


# ---------------------------------------------------------------- case 9

def test_connection_refused_is_down_within_two_rounds_with_the_next_retry_shown(http):
    closed = free_port()
    base = f"127.0.0.1:{closed}"
    cfg = make_config(
        replica=[{"name": "replica", "dsn": f"postgresql://monitor@{base}/app", "password": PG_PASSWORD}],
        cache=[{"name": "cache", "url": f"redis://{base}/0", "password": REDIS_PASSWORD}],
        source=[{"name": "scrape", "scrape": f"http://{base}/metrics"},
                {"name": "prom", "prometheus": f"http://{base}"}],
        edge=[{"name": "edge", "url": f"http://{base}/functions/v1/hello"}],
        cdn=[{"name": "cdn", "url": f"http://{base}/app.js"}],
    )

    async def scenario():
        engine = Engine(cfg)
        watch = Watch(engine).start()
        started = time.monotonic()
        engine.start()
        try:
            down = {"replica", "cache", "scrape", "edge", "cdn"}
            at = await watch.until(lambda s: all(x.state is State.DOWN for x in s.sources if x.target in down)
                                   and all(c.state is State.DOWN for c in s.components), 20, "every target DOWN")
            print(f"\ncase 9: all DOWN {at - started:.2f}s after start (2P={2 * P})")
            assert at - started <= 2 * P + 0.5 + watch.starved(started, at)
            for name in down:           # DOWN on the second failure: not the first, not later
                first_down = next(source(snap, name) for _, snap in watch.timeline
                                  if source(snap, name).state is State.DOWN)
                assert first_down.consecutive_failures == 2, first_down
            snap = engine.snapshot()
            for name in down:
                assert source(snap, name).reason == "connection refused", source(snap, name)
                assert source(snap, name).next_probe_in_s is not None
            for c in snap.components:
                assert c.reason == "connection refused", c
                assert c.next_probe_in_s is not None and 0 <= c.next_probe_in_s <= 36
            assert source(snap, "prom").state is State.ERROR
            assert "connection refused" in source(snap, "prom").reason
            await asyncio.sleep(0.8)
            assert max(c.next_probe_in_s for c in engine.snapshot().components) > 0
            assert_loops_alive(engine)
            watch.assert_no_canary()
        finally:
            await watch.stop()
            await engine.close()

    run_scenario(scenario)


# ---------------------------------------------------------------- case 12 (engine logic)

class ScriptedProbe:
    """An in-memory cache probe: each call takes the next step of its script.

    A step is "ok", an exception to raise, ("slow", seconds, linger): sleep, and when
    cancelled keep running `linger` more seconds (a probe slow to honour cancellation), or
    ("fail_after", seconds, exception).
    """

    source = "redis"
    kind = Kind.CACHE

    def __init__(self, script=(), default="ok", deadline: float = D, target: str = "scripted"):
        self.target = target
        self.deadline = deadline
        self.script = list(script)
        self.default = default
        self.calls: list[float] = []
        self.cpu_waits: list[float] = []     # cpu_wait_s() at each call
        self.running = 0
        self.max_running = 0

    async def collect(self) -> list[Reading]:
        step = self.script.pop(0) if self.script else self.default
        self.calls.append(asyncio.get_running_loop().time())     # virtual under VirtualTime
        self.cpu_waits.append(cpu_wait_s())
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if isinstance(step, BaseException):
                raise step
            if isinstance(step, tuple) and step[0] == "fail_after":
                await asyncio.sleep(step[1])
                raise step[2]
            if isinstance(step, tuple):
                _, seconds, linger = step
                try:
                    await asyncio.sleep(seconds)
                except asyncio.CancelledError:
                    await asyncio.sleep(linger)
                    raise
            return [Reading(Kind.CACHE, self.target, {"hits_per_s": 9.0, "misses_per_s": 1.0})]
        finally:
            self.running -= 1

    async def close(self) -> None:
        pass


def leaky_reset() -> ConnectionResetError:
    """A failure whose text carries the canary the way driver errors carry DSNs."""
    return ConnectionResetError(errno.ECONNRESET, f"reset by peer postgresql://monitor:{CANARY}@10.0.0.9/app")


def test_hysteresis_one_failure_is_not_down_two_are_one_success_is_ok():
    probe = ScriptedProbe(["ok", leaky_reset(), leaky_reset(), "ok"]
                          + [leaky_reset(), "ok"] * 10)
    clock = Clock()
    engine = Engine(make_config(), [probe], clock=clock)

    async def scenario():
        async def state_after_round() -> tuple[State, str | None]:
            clock.now += P
            await engine.poll_round()
            c = component(engine.snapshot(), "scripted")
            return c.state, c.reason

        assert (await state_after_round())[0] is State.OK
        state, _ = await state_after_round()
        assert state is not State.DOWN, "one failure must not make DOWN"
        assert source(engine.snapshot(), "scripted").consecutive_failures == 1
        state, reason = await state_after_round()
        assert state is State.DOWN, "two consecutive failures make DOWN"
        assert "reset by peer" in reason and CANARY not in reason
        assert (await state_after_round()) == (State.OK, None), "one success makes OK again"
        flapping = [(await state_after_round())[0] for _ in range(20)]
        assert State.DOWN not in flapping, "50 % failures never reach DOWN"
        for text in texts_of(engine.snapshot()):
            assert CANARY not in text
        await engine.close()

    run_scenario(scenario)


def test_targets_poll_on_one_shared_grid_of_ticks():
    """After a spread first round every target polls at the same ticks (one wake-up per
    tick for the whole fleet); a 5x interval polls on every fifth tick of the same grid."""
    interval = 0.2
    fast = [ScriptedProbe(target=f"t{i}") for i in range(4)]
    slow = ScriptedProbe(target="slow")
    slow.interval = 5 * interval
    vt = VirtualTime()
    engine = Engine(make_config(interval=interval, timeout=interval), [*fast, slow], clock=vt.clock)

    async def scenario():
        engine.start()
        await asyncio.sleep(2.05)
        await engine.close()
        epoch = engine.epoch
        # Round 1 is spread over half the interval; from round 2 on, calls sit on the grid.
        for probe in fast:
            on_grid = [(c - epoch) / interval for c in probe.calls[1:]]
            assert len(on_grid) >= 8, probe.calls
            assert all(abs(k - round(k)) < 0.1 for k in on_grid), (probe.target, on_grid)
        ticks = [{round((c - epoch) / interval) for c in p.calls[1:]} for p in fast]
        assert len(set.intersection(*ticks)) >= 8, "the targets share their ticks"
        later = [round((c - epoch) / interval, 2) for c in slow.calls[1:]]
        assert later and all(abs(k - round(k)) < 0.1 and round(k) % 5 == 0 for k in later), later

    run_scenario(scenario, vt=vt)


def test_next_tick_on_the_grid():
    engine = Engine(make_config(interval=1.0, timeout=0.8), [ScriptedProbe(), ScriptedProbe(target="b")])
    engine.epoch = 100.0
    t, slow = engine.targets
    slow.probe.interval = 5.0
    assert engine._next_due(t, 100.0, 100.02) == 101.0       # an on-time probe: the next tick
    assert engine._next_due(t, 100.3, 100.31) == 101.0       # first round, spread: snaps to the grid
    assert engine._next_due(t, 101.0, 102.3) == 103.0        # an overrun skips the missed tick
    assert engine._next_due(t, 101.37, 101.38) == 102.0      # a refresh now: back on the grid
    assert engine._next_due(t, 101.7, 101.71) == 103.0       # ...but never less than P/2 later
    assert engine._next_due(slow, 100.4, 100.41) == 105.0    # every fifth tick for a 5 s target


def test_overrunning_probe_skips_the_next_tick_instead_of_queueing():
    interval = 0.25
    # Every other call overruns: cut at D = P, it takes 0.1 s more to honour the cancel.
    probe = ScriptedProbe([("slow", 10.0, 0.1), "ok"] * 20, deadline=interval)
    vt = VirtualTime()
    engine = Engine(make_config(interval=interval, timeout=interval), [probe], clock=vt.clock)

    async def scenario():
        engine.start()
        await asyncio.sleep(2.6)
        snap = engine.snapshot()
        assert_loops_alive(engine)
        await engine.close()
        calls, waits = probe.calls, probe.cpu_waits
        gaps = [round(b - a, 3) for a, b in zip(calls, calls[1:])]
        starved = [b - a for a, b in zip(waits, waits[1:])]
        print(f"\ncase 12 overrun: {len(calls)} calls in 2.6s at P={interval}; gaps {gaps}")
        assert probe.max_running == 1, "never two calls of one target at once"
        assert len(calls) <= 2.6 / interval * 0.75 + 1, "overruns must cost ticks, not queue them"
        after_slow, after_ok = gaps[0::2], list(zip(gaps[1::2], starved[1::2]))
        assert all(g >= 2 * interval - 0.03 for g in after_slow), after_slow       # skipped one tick
        assert all(g <= interval + 0.15 + w for g, w in after_ok), after_ok        # no needless skip
        assert component(snap, "scripted").state is not State.DOWN
        for text in texts_of(snap):
            assert CANARY not in text

    run_scenario(scenario, vt=vt)


def test_a_probe_ignoring_cancellation_is_never_run_twice_at_once():
    probe = ScriptedProbe([("slow", 10.0, 1.0)], deadline=0.2)
    engine = Engine(make_config(interval=0.2, timeout=0.2), [probe])

    async def scenario():
        started, waited = time.monotonic(), cpu_wait_s()
        await engine.poll_round()
        first = time.monotonic() - started
        waited = cpu_wait_s() - waited
        zombie = engine.targets[0].in_flight
        assert not zombie.done()
        assert engine.targets[0].last_sample.error == "timeout"
        assert first <= 0.2 + 0.2 + 0.15 + waited, "the round ends at D plus the cancel grace"
        await engine.poll_round()
        assert len(probe.calls) == 1, "a second call must not start while the first still runs"
        assert "still running" in engine.targets[0].last_sample.error
        await asyncio.wait({zombie}, timeout=2)
        await engine.poll_round()
        assert len(probe.calls) == 2
        assert component(engine.snapshot(), "scripted").state is State.OK
        assert probe.max_running == 1
        assert not any(CANARY in text for text in texts_of(engine.snapshot()))
        await engine.close()

    run_scenario(scenario)


def test_closing_the_engine_mid_probe_leaves_no_unretrieved_error():
    probe = ScriptedProbe([("fail_after", 0.2, leaky_reset())])

    async def scenario():
        engine = Engine(make_config(), [probe])
        engine.start()
        await asyncio.sleep(0.05)               # the first call is in flight
        await engine.close()
        await asyncio.sleep(0.3)                # ...and fails after the engine let go of it
        assert len(probe.calls) == 1
        assert not any(CANARY in text for text in texts_of(engine.snapshot()))
        del engine                              # collected in run_scenario: asyncio reports then

    run_scenario(scenario)                       # fails on "Task exception was never retrieved"


def test_backoff_grows_from_the_interval_and_is_capped_with_jitter():
    interval = 0.05
    probe = ScriptedProbe(default=ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
                          deadline=interval)
    vt = VirtualTime()
    engine = Engine(make_config(interval=interval, timeout=interval), [probe], clock=vt.clock)

    async def scenario():
        engine.start()
        shown = []
        for _ in range(26):
            await asyncio.sleep(0.1)
            shown.append(component(engine.snapshot(), "scripted").next_probe_in_s)
        assert_loops_alive(engine)
        snap = engine.snapshot()
        c = component(snap, "scripted")
        assert c.state is State.DOWN and c.reason == "connection refused"

        # The growth, measured on the real loop: gaps double from 2P after DOWN.
        calls = probe.calls
        gaps = [b - a for a, b in zip(calls, calls[1:])]
        starved = [b - a for a, b in zip(probe.cpu_waits, probe.cpu_waits[1:])]
        print(f"\ncase 12 backoff: {len(calls)} calls in 2.6s at P={interval}; "
              f"gaps {[round(g, 3) for g in gaps]}; max next_probe_in_s shown {max(shown)}")
        assert len(calls) <= 8, "no hot loop: one call per P would be 52"
        for k, gap in enumerate(gaps[1:], start=1):
            expected = interval * 2 ** k
            assert 0.8 * expected - 0.02 <= gap <= 1.2 * expected + 0.15 + starved[k], (k, gaps)
        assert max(shown) >= 0.3, "the next retry time is visible and grows"

        # The cap, with jitter, for a target that has been down for hours (thousands of failures).
        target = engine.targets[0]
        await engine.close()
        for failures in (12, 40, 5000):
            target.failures = failures
            delays = [engine._next_due(target, 0.0, 100.0) - 100.0 for _ in range(200)]
            assert all(0.8 * BACKOFF_CAP_S <= d <= 1.2 * BACKOFF_CAP_S for d in delays), (failures, max(delays))
            assert statistics.pstdev(delays) > 1.0, "jitter spreads the retries of many targets"
        for text in texts_of(snap):
            assert CANARY not in text

    run_scenario(scenario, vt=vt)

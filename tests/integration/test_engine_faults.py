"""The engine against broken targets: RELIABILITY.md cases 1, 2, 3, 8, 9 and 12.

Cases 1-3, 8 and 9 run on real servers (our own PostgreSQL cluster or Redis for
anything destructive; the session fixtures only as healthy neighbours); case 12, engine
logic on scripted probes, lives in tests/test_engine_schedule.py. A `Watch`
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
import os
import signal
import socket
import struct
import time

import pytest

from conftest import CANARY
from fakes import assert_loops_alive, component, cpu_wait_s, run_scenario, source, texts_of
from dashboard.config import Config, validate
from dashboard.engine import Engine
from dashboard.lab.servers import PostgresCluster, RedisServer, free_port, redis_command
from dashboard.model import Failure, Sample, Snapshot, State

P, D = 0.5, 0.4                       # poll interval and per-probe deadline of these tests
SLACK = 1.5                           # the machine is shared: generous bounds on wall time
PG_PASSWORD = "env:SCALEDASH_TEST_PG_PASSWORD"
REDIS_PASSWORD = "env:SCALEDASH_TEST_REDIS_PASSWORD"


# ---------------------------------------------------------------- helpers

def make_config(interval: float = P, timeout: float = D, **sections) -> Config:
    return validate({"interval": interval, "timeout": timeout, **sections})


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
            # A stopped Redis is a target that does not answer, from the first failed probe:
            # its idle connection, closed by the shutdown, is never read as a broken answer.
            assert all(s.failure is Failure.DOWN for s in failed), [(s.failure, s.error) for s in failed]
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

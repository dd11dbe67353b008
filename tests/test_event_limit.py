"""The event log's rate limit per target (dashboard/event_limit.py, RELIABILITY.md case 12)
on the engine, with scripted probes and a clock that moves only when the test moves it.

Each side of every judgement: a target with few changes has each logged at once, a
flapping one is summarised; a settled target gets its final state and a whole budget
back; a change of many rows is logged whole; another target is never held back. The
same on a real flapping target through the fault proxy is
tests/integration/test_fault_matrix.py::test_case_12_notifications_rate_limited.
"""

from __future__ import annotations

import errno

from dashboard.config import validate
from dashboard.engine import Engine
from dashboard.event_limit import BUDGET, SETTLE_POLLS, WINDOW_POLLS
from dashboard.model import Kind, Reading, State
from fakes import Clock, ScriptedProbe, run_scenario

P = 0.5


def reset() -> ConnectionResetError:
    return ConnectionResetError(errno.ECONNRESET, "reset by peer")


def probe(target: str, script, rows: int = 1) -> ScriptedProbe:
    readings = [Reading(Kind.BREAKER, f"{target}-{i}", {"state": "closed"}) for i in range(rows)]
    return ScriptedProbe(target, "scrape", readings=readings, script=script)


class Log:
    """Rounds P apart on a still clock; after each, the snapshot's new event lines and how
    many row states changed (what the log would hold without a limit)."""

    def __init__(self, *probes: ScriptedProbe):
        self.clock = Clock()
        self.engine = Engine(validate({"interval": P, "timeout": 0.4}), list(probes), clock=self.clock)
        self.rounds: list[list[str]] = []          # new lines per round, "target: message"
        self.changed: dict[str, int] = {}          # row state changes per target
        self._states: dict[tuple, State] = {}

    async def run(self, rounds: int) -> None:
        for _ in range(rounds):
            self.clock.now += P
            seen = len(self.engine.events)
            await self.engine.poll_round()
            snap = self.engine.snapshot()
            self.rounds.append([f"{e.target}: {e.message}" for e in list(self.engine.events)[seen:]])
            for c in snap.components:
                before = self._states.get(c.key)
                if before is not None and before is not c.state:
                    self.changed[c.target] = self.changed.get(c.target, 0) + 1
                self._states[c.key] = c.state

    def lines(self, target: str, start: int = 0, end: int | None = None) -> list[str]:
        return [line for r in self.rounds[start:end] for line in r if line.startswith(f"{target}:")]

    def moves(self, target: str, start: int = 0, end: int | None = None) -> list[str]:
        """The state changes logged, as "row: A -> B" (reasons left out)."""
        return [line.split(": ", 1)[1].split(" (")[0] for line in self.lines(target, start, end)]


FLAP = ["ok", reset()] * 12           # 50 % failures: OK -> STALE -> OK ... every round


def test_a_target_with_few_changes_has_each_logged_in_the_round_it_happens():
    log = Log(probe("steady", ["ok", reset(), reset(), "ok"]))

    async def scenario():
        await log.run(6)
        assert [log.moves("steady", i, i + 1) for i in range(5)] == [
            [], ["breaker steady-0: OK -> STALE"], ["breaker steady-0: STALE -> DOWN"], ["breaker steady-0: DOWN -> OK"],
            []]
        assert len(log.lines("steady")) == log.changed["steady"] == 3
        assert not any("flapping" in line or "settled" in line for line in log.lines("steady"))
        await log.engine.close()

    run_scenario(scenario)


def test_a_flapping_target_is_summarised_then_settles_with_its_final_state_and_a_whole_budget():
    log = Log(probe("flappy", FLAP + ["ok"] * (SETTLE_POLLS + 1) + [reset()]))

    async def scenario():
        flapping = len(FLAP)
        await log.run(flapping)
        lines = log.lines("flappy")
        print(f"\n{log.changed['flappy']} state changes while flapping, {len(lines)} lines: {lines}")
        assert log.moves("flappy")[0] == "breaker flappy-0: OK -> STALE", "the first change is logged as it is"
        assert len(lines[:BUDGET]) == BUDGET and not any("flapping" in line for line in lines[:BUDGET])
        assert "flappy flapping: 5 changes in 2s" in lines[BUDGET] and "now STALE" in lines[BUDGET]
        window_rounds = WINDOW_POLLS             # rounds are one interval apart
        assert len(lines) <= BUDGET + 1 + flapping // window_rounds, lines
        assert log.changed["flappy"] > 2 * len(lines), "the limit left the log as busy as the flapping"

        await log.run(SETTLE_POLLS + 1)
        settled = log.lines("flappy", flapping)
        assert settled == [f"flappy: flappy settled: OK after {log.changed['flappy'] - BUDGET} suppressed state changes"]
        assert log.rounds[-1] == settled, "settled only after SETTLE_POLLS quiet intervals"

        await log.run(1)                          # a new failure: shown at once, the budget is whole again
        assert log.moves("flappy", -1) == ["breaker flappy-0: OK -> STALE"]
        await log.engine.close()

    run_scenario(scenario)


def test_a_change_of_many_rows_counts_once_and_is_logged_whole():
    log = Log(probe("wide", ["ok", reset(), reset(), "ok"], rows=6))

    async def scenario():
        await log.run(5)
        assert log.changed["wide"] == 18
        assert len(log.lines("wide")) == 18, "three changes of six rows, within the budget"
        assert [len(r) for r in log.rounds[1:4]] == [6, 6, 6]
        await log.engine.close()

    run_scenario(scenario)


def test_a_flapping_target_never_holds_back_another_targets_down():
    log = Log(probe("flappy", FLAP), probe("other", ["ok"] * 14 + [reset(), reset()]))

    async def scenario():
        await log.run(len(FLAP))
        assert any("flappy flapping" in line for line in log.lines("flappy"))
        assert log.moves("other", 14, 15) == ["breaker other-0: OK -> STALE"]
        assert log.moves("other", 15, 16) == ["breaker other-0: STALE -> DOWN"], "a DOWN is logged in its round"
        assert len(log.lines("other")) == log.changed["other"]
        await log.engine.close()

    run_scenario(scenario)


def test_a_target_flapping_on_gets_one_line_a_window_with_its_state_now():
    rounds = 3 * WINDOW_POLLS
    log = Log(probe("flappy", ["ok", reset()] * (rounds // 2)))

    async def scenario():
        await log.run(rounds)
        summaries = [(i, line) for i, r in enumerate(log.rounds) for line in r if "flapping" in line]
        print(f"\n{log.changed['flappy']} state changes in {rounds} rounds; summaries {summaries}")
        assert len(log.lines("flappy")) == BUDGET + len(summaries)
        assert [line for _, line in summaries[1:]] and all("still flapping" in line and "now " in line
                                                           for _, line in summaries[1:])
        gaps = [b - a for (a, _), (b, _) in zip(summaries, summaries[1:])]
        assert all(gap >= WINDOW_POLLS for gap in gaps), gaps
        assert len(summaries) == 1 + (rounds - summaries[0][0] - 1) // WINDOW_POLLS
        await log.engine.close()

    run_scenario(scenario)

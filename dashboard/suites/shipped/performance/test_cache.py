"""The items cache on one fixed read workload: hit rate, p50 read time, queries saved.

The workload reads a seeded set of catalogue items, each several times, in a seeded
order, from a cold start for its keys as far as this suite knows (it does not warm
them). The "on" side is the stack as it runs; the "off" side is the same reads with
`cache_bypass` (every lookup misses, nothing is stored). The sides alternate slice by
slice (ABAB), which leaves the cache's contents alone: a bypassed lookup stores nothing. Read time is timed at the
client, over a lean HTTP client so that the instrument adds little of its own; hits
are the service's `X-Cache` answers for these very reads, and so are the workload's
own database reads (its MISSes); `db_queries_total{kind="read"}` over all nodes
cross-checks them, though it also counts the stack's other traffic meanwhile (more of
it the longer a side takes), so it is not the figure the saving is judged by.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dashboard.suites.shipped.scaling.moves import node_reads
from dashboard.suites.stack import require

from .workload import TimingClient, catalogue_reads, find_switch, p50_ms, pct, reduction

KEYS, READS_PER_KEY = 30, 10
ROUNDS = 5
HIT_RATE_TARGET = 0.80
SPEED_UP_TARGET = 0.50
SAVED_TARGET = 0.80         # of the workload's queries: the hit-rate target, seen from the database


@dataclass(frozen=True)
class Side:
    seconds: tuple[float, ...]
    hits: int
    db_reads: float

    @property
    def reads(self) -> int:
        return len(self.seconds)

    @property
    def misses(self) -> int:
        """Reads answered by the database (X-Cache: MISS): the workload's own queries."""
        return self.reads - self.hits

    @property
    def hit_rate(self) -> float:
        return self.hits / self.reads

    def __add__(self, other: "Side") -> "Side":
        return Side(self.seconds + other.seconds, self.hits + other.hits, self.db_reads + other.db_reads)


@dataclass(frozen=True)
class Sides:
    cached: Side
    bypassed: Side | None
    why_not: str            # why there is no bypassed side


def _slice(stack, ids: list[int]) -> Side:
    client = TimingClient(stack)
    before = sum(node_reads(stack).values())
    try:
        answers = [client.get(f"/items/{item_id}") for item_id in ids]
    finally:
        client.close()
    db_reads = sum(node_reads(stack).values()) - before
    missing = sorted({i for i, a in zip(ids, answers) if a.status == 404})
    require(not missing, f"the stack has no items {missing[:5]}: the cache workload reads the seeded "
                         "catalogue's ids 1..1000")
    require(all(a.cache is not None for a in answers),
            "the service sets no X-Cache header on item reads: hits cannot be counted")
    return Side(tuple(a.seconds for a in answers), sum(a.cache != "MISS" for a in answers), db_reads)


@pytest.fixture(scope="module")
def sides(stack) -> Sides:
    """The workload in ROUNDS slices, each read cached then bypassed, so that both sides
    see the same machine (a shared machine's load drifts over seconds)."""
    admin, why_not = find_switch(stack, "cache_bypass", "the cache")
    ids = catalogue_reads(KEYS, READS_PER_KEY)
    cached = bypassed = Side((), 0, 0.0)
    for n in range(ROUNDS):
        chunk = ids[n::ROUNDS]
        cached += _slice(stack, chunk)
        if admin is not None:
            with admin.switched(cache_bypass=True):
                bypassed += _slice(stack, chunk)
    return Sides(cached, bypassed if admin is not None else None, why_not)


@pytest.fixture(scope="module")
def cached(sides) -> Side:
    return sides.cached


@pytest.fixture(scope="module")
def bypassed(sides) -> Side:
    require(sides.bypassed, sides.why_not)
    return sides.bypassed


def test_cache_hit_rate_is_over_80_percent_on_the_workload(cached, figures):
    figures.report(f"cache: hit rate {pct(cached.hit_rate)} on {cached.reads} reads of {KEYS} items "
                   f"(target > {pct(HIT_RATE_TARGET)})", cache_hit_rate=cached.hit_rate)
    assert cached.hit_rate > HIT_RATE_TARGET, \
        f"{cached.hits} of {cached.reads} reads of {KEYS} items hit the cache ({pct(cached.hit_rate)}); " \
        f"target > {pct(HIT_RATE_TARGET)}"


def test_cache_takes_the_p50_read_time_down_by_at_least_half(cached, bypassed, figures):
    on, off = p50_ms(cached.seconds), p50_ms(bypassed.seconds)
    down = reduction(on, off)
    figures.report(f"cache: p50 read time {on:.2f} ms with the cache vs {off:.2f} ms bypassed "
                   f"({cached.reads} reads a side): down {pct(down)} (target >= {pct(SPEED_UP_TARGET)})",
                   cache_p50_read_ms_on=on, cache_p50_read_ms_off=off, cache_p50_reduction=down)
    assert down >= SPEED_UP_TARGET, \
        f"the cache took the p50 read time down by {pct(down)} ({on:.2f} ms with it vs {off:.2f} ms " \
        f"bypassed); target >= {pct(SPEED_UP_TARGET)}"


def test_cache_saves_the_database_most_of_the_workload_s_queries(cached, bypassed, figures):
    saved = bypassed.misses - cached.misses
    figures.report(f"cache: the workload read the database {cached.misses} times with the cache vs "
                   f"{bypassed.misses} bypassed: {saved} queries saved on {cached.reads} reads "
                   f"(db_queries_total over the same time, the stack's other traffic included: "
                   f"{cached.db_reads:g} vs {bypassed.db_reads:g})",
                   cache_db_reads_on=cached.misses, cache_db_reads_off=bypassed.misses, cache_db_reads_saved=saved)
    # The service's own counters, not only its X-Cache answers, must show the reads the
    # bypassed side needed: otherwise the "saved" queries were never real ones.
    assert bypassed.db_reads >= 0.9 * bypassed.misses, \
        f"{bypassed.misses} bypassed reads answered MISS but db_queries_total grew by {bypassed.db_reads:g}"
    assert saved >= SAVED_TARGET * cached.reads, \
        f"the cache saved {saved} of the workload's {cached.reads} database reads ({cached.misses} with it vs " \
        f"{bypassed.misses} bypassed); expected at least {pct(SAVED_TARGET)}"

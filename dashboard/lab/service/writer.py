"""Which configured node takes writes: found the way libpq's target_session_attrs=read-write does.

The service does not trust a fixed primary address: a failover drill kills the
primary and promotes a replica, and the service must follow on its own. So every
configured node (the primary DSN and the replicas) is a candidate, and the writable
one is the one that answers `pg_is_in_recovery()` with false. Once found it is kept
while it works; a write that fails in a way that says "this node may not take writes
any more" (connection lost, read-only transaction, timeout) forgets it, and the
search starts again at once.

While no writable node is known the search polls every node every POLL_INTERVAL,
each attempt bounded by CONNECT_TIMEOUT, so the gap after a promotion is one poll
(~50 ms) rather than a backoff step. A SIGKILLed node refuses connections at once on
loopback, so a round costs little. Writes during the gap fail at once (the caller
answers 503) instead of queueing behind the search.
"""

from __future__ import annotations

import asyncio
import logging
import asyncpg

from dashboard.redact import describe_error

log = logging.getLogger("lab.service.writer")

POLL_INTERVAL = 0.05
CONNECT_TIMEOUT = 0.4
QUERY_TIMEOUT = 0.4
IN_RECOVERY = "SELECT pg_is_in_recovery()"
PROBE_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def says_not_writable(exc: BaseException) -> bool:
    """True for a failure that says the node may have stopped taking writes (look again);
    False for one that says only that this statement was wrong (a constraint, bad data)."""
    if isinstance(exc, (OSError, asyncio.TimeoutError, asyncpg.InterfaceError, asyncpg.InternalClientError)):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        code = getattr(exc, "sqlstate", None) or ""
        # 25006 read_only_sql_transaction (a standby, or a demoted node); class 08 connection
        # exceptions; class 57 operator intervention (shutdown, crash of another backend,
        # cannot connect now); 55000 "recovery is in progress" from pg_current_wal_lsn().
        return code == "25006" or code == "55000" or code[:2] in ("08", "57")
    return False


class WritableNode:
    """The name of the node that takes writes, or None while it is being looked for."""

    def __init__(self, nodes: dict[str, str], password: str | None, *,
                 poll_interval: float = POLL_INTERVAL, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self._dsns = dict(nodes)              # in configured order: the first writable one wins
        self._password = password
        self._poll = poll_interval
        self._connect_timeout = connect_timeout
        self._conns: dict[str, asyncpg.Connection] = {}
        self._lost = asyncio.Event()
        self._found = asyncio.Event()
        self.name: str | None = None

    @property
    def names(self) -> list[str]:
        return list(self._dsns)

    def dsn(self, name: str) -> str:
        return self._dsns[name]

    def lost(self, name: str, reason: str) -> None:
        """A call on `name` failed in a way that says it may not take writes: look again
        (unless another caller already did and found a different node)."""
        if self.name != name:
            return
        log.warning("writable node %s lost (%s); looking for the writable node", name, reason)
        self._set(None)
        self._lost.set()

    async def wait_found(self, timeout: float) -> str | None:
        """The writable node, waiting up to `timeout` seconds for the search to find one."""
        if self.name is None:
            try:
                await asyncio.wait_for(self._found.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        return self.name

    async def run(self) -> None:
        """Search whenever no writable node is known; idle otherwise. Runs until cancelled."""
        try:
            while True:
                if self.name is None:
                    found = await self.search_once()
                    if found is None:
                        await asyncio.sleep(self._poll)
                        continue
                    self._set(found)
                    await self._close_probes()
                self._lost.clear()
                if self.name is not None:
                    await self._lost.wait()
        finally:
            await self._close_probes()

    async def search_once(self) -> str | None:
        """Ask every node at once; the first writable one in configured order, or None."""
        names = self.names
        writable = await asyncio.gather(*(self._is_writable(name) for name in names))
        found = [name for name, ok in zip(names, writable) if ok]
        if len(found) > 1:
            log.warning("several writable nodes (%s); writes go to %s, the first configured",
                        ", ".join(found), found[0])
        return found[0] if found else None

    async def _is_writable(self, name: str) -> bool:
        try:
            conn = self._conns.get(name)
            if conn is None or conn.is_closed():
                conn = self._conns[name] = await asyncpg.connect(
                    self._dsns[name], password=self._password, timeout=self._connect_timeout)
            return not await conn.fetchval(IN_RECOVERY, timeout=QUERY_TIMEOUT)
        except PROBE_ERRORS as exc:
            log.debug("node %s not writable: %s", name, describe_error(exc, 80))
            conn = self._conns.pop(name, None)
            if conn is not None:
                conn.terminate()
            return False

    def _set(self, name: str | None) -> None:
        if name == self.name:
            return
        self.name = name
        if name is None:
            self._found.clear()
        else:
            self._found.set()
            log.info("writes go to %s", name)

    async def _close_probes(self) -> None:
        conns, self._conns = self._conns, {}
        for conn in conns.values():
            conn.terminate()

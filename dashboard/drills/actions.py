"""What each step does: SQL on a node, an admin HTTP call, a signal, a command, a wait.

Every action is bounded by its step's timeout and ends in a `StepResult`, never an
exception: "ok", "failed" (it answered no), or "unknown" (a call that may have acted
but did not answer in time: RELIABILITY.md case 28; the runner re-polls its `verify`
condition and never sends it again). Conditions are judged on the engine's snapshot,
the figures the screen shows. Secrets (DSN passwords, the admin token) are revealed
only at the call and never reach a detail line unredacted.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal as signals
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dashboard.config_types import Config
from dashboard.drills.canary import CanaryWriter
from dashboard.drills.conditions import Condition
from dashboard.drills.journal import pid_alive
from dashboard.drills.model import Step, StepResult
from dashboard.model import Kind, Snapshot
from dashboard.redact import describe_error, safe_message
from dashboard.suites import process_group
from dashboard.suites.environment import child_environment, referenced_env_names

POLL_S = 0.1
OUTPUT_TAIL = 4000        # characters of a command's output kept for its detail line


@dataclass
class Context:
    """What the steps of one run share: the config, the engine's snapshots, the canary."""

    config: Config
    snapshot: Callable[[], Snapshot]
    abort: asyncio.Event
    run: str
    clock: Callable[[], float] = time.monotonic
    canary: CanaryWriter | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    # Names known only at run time (the replica promoted): later steps say `{candidate}`.
    values: dict[str, str] = field(default_factory=dict)


class _Keep(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def resolve(value: Any, values: dict[str, str]) -> Any:
    """`{name}` placeholders filled from what earlier steps found; unknown ones stay."""
    if isinstance(value, str):
        return value.format_map(_Keep(values)) if "{" in value else value
    if isinstance(value, (list, tuple)):
        return type(value)(resolve(v, values) for v in value)
    if isinstance(value, dict):
        return {k: resolve(v, values) for k, v in value.items()}
    return value


async def run_step(step: Step, ctx: Context) -> StepResult:
    handler = _HANDLERS.get(step.action)
    if handler is None:
        return StepResult("failed", f"unknown action {step.action}")
    try:
        return await handler(step, ctx)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - a step's failure is a result, not a crash
        return StepResult("failed", f"{type(exc).__name__}: {describe_error(exc)}")


# ---------------------------------------------------------------- database


async def _sql(step: Step, ctx: Context) -> StepResult:
    import asyncpg

    node = next((r for r in ctx.config.replicas if r.name == step.args.get("node")), None)
    if node is None:
        return StepResult("failed", f"no [[replica]] named {step.args.get('node')}")
    password = node.password.reveal() if node.password else None
    try:
        conn = await asyncpg.connect(node.dsn, password=password, timeout=min(step.timeout_s, 5.0),
                                     server_settings={"application_name": "scaledash-drill"})
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
        return StepResult("failed", f"cannot connect to {node.name}: {describe_error(exc)}")   # nothing sent
    try:
        value = await asyncio.wait_for(conn.fetchval(str(step.args["sql"])), step.timeout_s)
    except asyncio.TimeoutError:
        return StepResult("unknown", f"no answer from {node.name} within {step.timeout_s:g}s")
    except asyncpg.PostgresError as exc:
        return StepResult("failed", f"{node.name}: {describe_error(exc)}")
    finally:
        conn.terminate()
    if value is False:      # pg_promote(): false when the promotion did not finish in its wait
        return StepResult("failed", f"{node.name} answered false")
    return StepResult("ok", f"{node.name} answered {safe_message(value, 80)}")


async def _lsn(ctx: Context, name: str) -> int | None:
    """How much WAL a standby has: received (promotion replays all of it), else replayed."""
    import asyncpg

    node = next((r for r in ctx.config.replicas if r.name == name), None)
    if node is None:
        return None
    try:
        conn = await asyncpg.connect(node.dsn, password=node.password.reveal() if node.password else None,
                                     timeout=1.0, server_settings={"application_name": "scaledash-drill"})
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError):
        return None
    try:
        return await asyncio.wait_for(conn.fetchval(
            "SELECT pg_wal_lsn_diff(GREATEST(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), '0/0')::bigint "
            "WHERE pg_is_in_recovery()"), 1.0)
    except (asyncio.TimeoutError, asyncpg.PostgresError):
        return None
    finally:
        conn.terminate()


async def _promote(step: Step, ctx: Context) -> StepResult:
    """Pick the standby holding the most WAL now that the primary is gone, then promote it:
    with the stack's own command, or pg_promote() through its DSN."""
    names = [str(n) for n in step.args.get("nodes") or ()]
    positions = dict(zip(names, await asyncio.gather(*(_lsn(ctx, n) for n in names))))
    known = {n: p for n, p in positions.items() if p is not None}
    if not known:
        return StepResult("failed", f"no standby answered to be promoted ({', '.join(names)})")
    chosen = max(known, key=lambda n: (known[n], -names.index(n)))
    ctx.values["candidate"] = chosen
    seen = ", ".join(f"{n} {p}" if p is not None else f"{n} no answer" for n, p in positions.items())
    if step.args.get("command"):
        argv = resolve(list(step.args["command"]), {"node": chosen, "candidate": chosen})
        result = await _shell(replace(step, args={"command": argv}), ctx)
    else:
        result = await _sql(replace(step, args={"node": chosen, "sql": "SELECT pg_promote(true, 30)"}), ctx)
    return StepResult(result.status, f"{chosen} (WAL received: {seen}): {result.detail}", {"promoted": chosen})


# ---------------------------------------------------------------- HTTP admin


async def _http(step: Step, ctx: Context) -> StepResult:
    import httpx

    service = ctx.config.service
    if service is None:
        return StepResult("failed", "no [service] configured")
    headers = {"Authorization": f"Bearer {service.admin_token.reveal()}"} if service.admin_token else {}
    method = str(step.args.get("method", "POST")).upper()
    url = service.url + str(step.args["path"])
    try:
        async with httpx.AsyncClient(timeout=step.timeout_s, trust_env=False) as client:
            response = await client.request(method, url, json=step.args.get("json"), headers=headers)
    except (httpx.ConnectTimeout, httpx.PoolTimeout):
        # No connection, so nothing was sent: a failure (the rollback runs), not an unknown.
        return StepResult("failed", f"{method} {step.args['path']}: not sent: no connection within "
                                    f"{step.timeout_s:g}s")
    except httpx.TimeoutException:
        return StepResult("unknown", f"{method} {step.args['path']}: no answer within {step.timeout_s:g}s")
    except httpx.HTTPError as exc:
        return StepResult("failed", f"{method} {step.args['path']}: {describe_error(exc)}")
    status = "ok" if 200 <= response.status_code < 300 else "failed"
    return StepResult(status, f"{method} {step.args['path']}: {response.status_code}")


# ---------------------------------------------------------------- processes


def process_table(path: str | None) -> dict[str, dict]:
    """name -> {pid, start_ticks} from a JSON process table ({"processes": [...]}), e.g. a lab's."""
    if not path:
        return {}
    try:
        data = json.loads(Path(path).expanduser().read_text()[:1_000_000])
        return {str(p["name"]): p for p in data.get("processes", []) if isinstance(p, dict) and "name" in p}
    except (OSError, ValueError, TypeError, AttributeError, KeyError, RecursionError):
        return {}


async def _signal(step: Step, ctx: Context) -> StepResult:
    name = str(step.args["process"])
    entry = process_table(ctx.config.drill_settings.processes).get(name)
    if entry is None or not isinstance(entry.get("pid"), int):
        return StepResult("failed", f"no process {name} in the process table {ctx.config.drill_settings.processes}")
    try:
        number = signals.Signals[str(step.args["signal"]).upper()]
    except KeyError:
        return StepResult("failed", f"unknown signal {step.args['signal']}")
    pid = entry["pid"]
    if not pid_alive(pid, entry.get("start_ticks")):
        return StepResult("failed", f"{name} (pid {pid}) is not running")
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        return StepResult("failed", f"{name} (pid {pid}) exited before the signal")
    except PermissionError:
        return StepResult("failed", f"not allowed to signal {name} (pid {pid})")
    return StepResult("ok", f"{number.name} sent to {name} (pid {pid})")


async def _shell(step: Step, ctx: Context) -> StepResult:
    argv = [str(a) for a in step.args.get("command") or ()]
    if not argv:
        return StepResult("failed", "no command configured for this step")
    env = child_environment(ctx.config.path, referenced_env_names(ctx.config))
    try:
        proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                                                    env=env, start_new_session=True)
    except OSError as exc:
        return StepResult("failed", f"cannot run {argv[0]}: {exc.strerror or exc}")
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), step.timeout_s)
    except asyncio.TimeoutError:
        await process_group.stop(proc.pid, 2.0)
        return StepResult("unknown", f"{argv[0]} gave no answer within {step.timeout_s:g}s (stopped)")
    except asyncio.CancelledError:
        await process_group.stop(proc.pid, 2.0)
        raise
    text = out.decode(errors="replace")[-OUTPUT_TAIL:].strip().splitlines()
    last = safe_message(text[-1] if text else "", 200)
    if proc.returncode != 0:
        return StepResult("failed", f"exit {proc.returncode}: {last}")
    return StepResult("ok", last)


# ---------------------------------------------------------------- waiting and watching


async def wait_until(condition: Condition, ctx: Context, deadline_s: float) -> tuple[bool, str]:
    """Poll the engine's snapshot until the condition holds, the deadline passes or an abort."""
    end = ctx.clock() + deadline_s
    while True:
        met, seen = condition.judge(ctx.snapshot())
        if met or ctx.clock() >= end or ctx.abort.is_set():
            return met, seen
        await asyncio.sleep(POLL_S)


async def _wait(step: Step, ctx: Context) -> StepResult:
    condition = Condition.parse(str(step.args["until"]))
    deadline = float(step.args.get("deadline") or step.timeout_s)
    started = ctx.clock()
    met, seen = await wait_until(condition, ctx, deadline)
    took = ctx.clock() - started
    figures = {step.args["figure"]: round(took, 3)} if met and step.args.get("figure") else {}
    if met:
        return StepResult("ok", f"{condition.text} after {took:.2f}s ({seen})", figures)
    if ctx.abort.is_set():
        return StepResult("failed", "aborted while waiting")
    return StepResult("failed", f"not within {deadline:g}s: {condition.text} (seen {seen})")


async def _observe(step: Step, ctx: Context) -> StepResult:
    """Watch for a while; with `record`, keep the worst error rate, the lowest hit rate, and
    the watched node's share of reads at the end."""
    duration = float(step.args.get("duration") or 0)
    record = step.args.get("record")
    end = ctx.clock() + duration
    worst_errors = lowest_hits = None
    while ctx.clock() < end and not ctx.abort.is_set():
        await asyncio.sleep(min(0.25, max(0.0, end - ctx.clock())))
        snap = ctx.snapshot()
        errors, hits = _kpi(snap, "error_rate"), _kpi(snap, "cache_hit_rate")
        if errors is not None:
            worst_errors = errors if worst_errors is None else max(worst_errors, errors)
        if hits is not None:
            lowest_hits = hits if lowest_hits is None else min(lowest_hits, hits)
    if ctx.abort.is_set():
        return StepResult("failed", "aborted while watching")
    figures: dict[str, Any] = {}
    if record:
        figures[f"{record}_error_rate"] = worst_errors
        figures[f"{record}_hit_rate"] = lowest_hits
        if step.args.get("node"):
            figures[f"{record}_read_share"] = read_share(ctx.snapshot(), str(step.args["node"]))
    shown = ", ".join(f"{k} {v:.4g}" for k, v in figures.items() if isinstance(v, float))
    return StepResult("ok", f"watched {duration:g}s" + (f": {shown}" if shown else ""), figures)


def _kpi(snap: Snapshot, name: str) -> float | None:
    return next((k.value for k in snap.kpis if k.name == name), None)


def read_share(snap: Snapshot, node: str) -> float | None:
    reads = {}
    for svc in snap.service:
        if svc.kind is Kind.SERVICE:
            for name, figures in (svc.metrics.get("nodes") or {}).items():
                if figures.get("reads_per_s") is not None:
                    reads[name] = reads.get(name, 0.0) + figures["reads_per_s"]
    total = sum(reads.values())
    return reads.get(node, 0.0) / total if total > 0 else None


# ---------------------------------------------------------------- canary writes


async def _canary_start(step: Step, ctx: Context) -> StepResult:
    if ctx.config.service is None:
        return StepResult("failed", "canary writes need [service] url")
    ctx.canary = CanaryWriter(ctx.config.service, ctx.run, rate=float(step.args.get("rate", 50)), clock=ctx.clock)
    ctx.canary.start()
    ok, detail = await ctx.canary.first_ack(deadline_s=5.0)
    if not ok:
        await ctx.canary.stop()
        return StepResult("failed", f"the service acknowledged no canary write: {detail}")
    return StepResult("ok", f"canary writes acknowledged by {detail}")


async def _canary_wait(step: Step, ctx: Context) -> StepResult:
    if ctx.canary is None:
        return StepResult("failed", "no canary writes running")
    ok, detail = await ctx.canary.ack_from(str(step.args["node"]), float(step.args.get("deadline", 15.0)), ctx.abort)
    return StepResult("ok" if ok else "failed", detail)


async def _canary_stop(step: Step, ctx: Context) -> StepResult:
    if ctx.canary is None:
        return StepResult("skipped", "no canary writes running")
    figures = await ctx.canary.finish()
    ctx.canary = None
    shown = ", ".join(f"{k} {v}" for k, v in figures.items() if v is not None)
    return StepResult("ok" if figures.get("lost_writes") is not None else "failed", shown, figures)


_HANDLERS = {"promote": _promote, "sql": _sql, "http": _http, "signal": _signal, "shell": _shell, "wait": _wait,
             "observe": _observe, "canary_start": _canary_start, "canary_wait": _canary_wait,
             "canary_stop": _canary_stop}

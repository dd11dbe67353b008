"""`scaledash suite list` and `scaledash suite run NAME`: the runner for CI, cron and a shell.

Live output goes to stderr as it comes, so stdout holds only the summary, or only the
JSON with `--json`. Exit codes: 0 passed, 1 failed, 2 no answer (ERROR, TIMEOUT,
CANCELLED: Ctrl-C cancels the suite's whole process group), 3 could not run (unknown
suite, bad config, missing tool, read-only mode). Every line printed has passed the
redaction chokepoint (the runner's lines already have; ours go through safe_message).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Callable

from dashboard import config as config_mod
from dashboard.redact import safe_message
from dashboard.suites.catalog import SuiteSpec, UnknownSuite, all_suites, find_suite
from dashboard.suites.environment import referenced_env_names
from dashboard.suites.invocation import SuiteUnavailable
from dashboard.suites.results import EXIT_COULD_NOT_RUN, SuiteKind, SuiteResult, Verdict, exit_code
from dashboard.suites.runner import SuiteRun

LoadConfig = Callable[[argparse.Namespace], config_mod.Config]
TAIL_SHOWN = 15     # last output lines repeated under a summary that has no answer


def _say(message: str) -> None:
    print(f"scaledash: {safe_message(message, 400)}", file=sys.stderr)


def _optional_config(args: argparse.Namespace, load_config: LoadConfig) -> config_mod.Config | None:
    """The config, or None when none was asked for and none exists (shipped suites still list)."""
    asked = getattr(args, "sub_config", None) or args.config or os.environ.get("SCALEDASH_CONFIG")
    if not asked and not config_mod.find_config(None).exists():
        return None
    return load_config(args)


def cmd_list(args: argparse.Namespace, load_config: LoadConfig) -> int:
    cfg = _optional_config(args, load_config)
    suites = all_suites(cfg)
    if cfg is None:
        _say("no config file found: listing the shipped suites only")
    if not suites:
        print("no suites (none shipped, none configured)")
        return 0
    width = max(len(s.name) for s in suites)
    for spec in suites:
        load = ", generates load" if spec.generates_load else ""
        print(f"{safe_message(spec.name, 60):<{width}}  {spec.kind.value:<7}  {spec.source:<10}  "
              f"{safe_message(spec.description, 120)}{load}")
    return 0


def _timeout(args: argparse.Namespace) -> float | None:
    if not args.suite_timeout:
        return None
    try:
        value = config_mod.parse_duration(args.suite_timeout)
    except ValueError as exc:
        raise SuiteUnavailable(f"--timeout: {exc}") from None
    if value <= 0:
        raise SuiteUnavailable("--timeout must be more than 0 seconds")
    return value


def _junit(args: argparse.Namespace, spec: SuiteSpec) -> Path | None:
    if not args.junit:
        return None
    if spec.kind is not SuiteKind.PYTEST:
        raise SuiteUnavailable(f"--junit: suite {spec.name} is a {spec.kind.value} suite; only pytest suites "
                               "write a JUnit report")
    path = Path(args.junit).expanduser().resolve()
    if not path.parent.is_dir():
        raise SuiteUnavailable(f"--junit: {path.parent} is not a directory")
    return path


def cmd_run(args: argparse.Namespace, load_config: LoadConfig) -> int:
    if args.readonly:
        _say("read-only mode: suites are not run (drop --readonly)")
        return EXIT_COULD_NOT_RUN
    cfg = load_config(args)
    try:
        spec = find_suite(args.name, cfg)
        run = SuiteRun(spec, config_path=cfg.path, env_names=referenced_env_names(cfg),
                       timeout_s=_timeout(args), junit_path=_junit(args, spec),
                       on_line=lambda line: print(line, file=sys.stderr, flush=True))
        result = asyncio.run(_run(run))
    except (UnknownSuite, SuiteUnavailable) as exc:
        _say(str(exc))
        return EXIT_COULD_NOT_RUN
    if args.json:
        print(json.dumps(result.to_json(), indent=2, allow_nan=False))
    else:
        print_summary(result)
    if result.verdict is Verdict.CANCELLED:
        _say("cancelled: the suite's processes were stopped")
    return exit_code(result.verdict)


async def _run(run: SuiteRun) -> SuiteResult:
    """Start and wait, with Ctrl-C and SIGTERM cancelling the suite instead of us."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):   # before start: a Ctrl-C while it starts cancels too
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, run.cancel)
    await run.start()
    return await run.wait()


def print_summary(result: SuiteResult, stream=None) -> None:
    """The human summary: verdict line, failing cases, request stats, last lines when no answer."""
    out = stream or sys.stdout
    c = result.counts
    exit_text = "" if result.exit_code is None else f", exit code {result.exit_code}"
    print(f"suite {result.name}: {result.verdict.value} in {result.duration_s:.1f} s{exit_text}"
          + (f": {result.reason}" if result.reason else ""), file=out)
    if result.kind is SuiteKind.PYTEST:
        print(f"  {c.passed} passed, {c.failed} failed, {c.skipped} skipped, {c.errors} errors", file=out)
    for failure in result.failures:
        word = "ERROR" if failure.error else "FAILED"
        print(f"  {word} {failure.name} ({failure.duration_s:.2f} s): {failure.message}", file=out)
    for skip in result.skips:
        print(f"  SKIPPED {skip.name}: {skip.reason}", file=out)
    for stats in result.requests + ((result.requests_total,) if result.requests_total else ()):
        print(f"  {stats.method or 'all':<6} {stats.name}: {stats.requests} requests, {stats.failures} failures "
              f"({stats.failure_rate:.1%}), {stats.rps:.1f} req/s, p50 {_ms(stats.p50_ms)}, "
              f"p95 {_ms(stats.p95_ms)}, p99 {_ms(stats.p99_ms)}", file=out)
    if result.verdict in (Verdict.ERROR, Verdict.TIMEOUT) and result.tail:
        print("  last lines of output:", file=out)
        for line in result.tail[-TAIL_SHOWN:]:
            print(f"    {line}", file=out)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g} ms"

"""`scaledash drill list` and `scaledash drill run NAME`: a drill from a shell, CI or the dashboard.

`drill run` is the drill's own process: the dashboard starts it too (in its own
session, so an SSH drop or a closed dashboard does not kill it halfway; see
runner.py for the dead-man's switch). Without `--confirm TARGET` a terminal asks the
operator to type the target's name; with no terminal it is refused. Exit codes: 0
passed (or a dry run whose checks all passed), 1 failed verdict, 2 aborted or result
unknown, 3 refused or could not run. The timeline goes to stderr as it happens;
stdout holds the summary, or only the JSON with `--json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

from dashboard import config as config_mod
from dashboard.drills import audit, catalog
from dashboard.drills.model import EXIT_CODES, Entry, Verdict
from dashboard.drills.runner import DrillRunner, Outcome, state_dir
from dashboard.redact import safe_message

LoadConfig = Callable[[argparse.Namespace], config_mod.Config]


def _say(message: str) -> None:
    print(f"scaledash: {safe_message(message, 400)}", file=sys.stderr)


def add_parser(sub) -> None:
    drill = sub.add_parser("drill", help="list and run failover drills (only on targets the config allows)")
    drill_sub = drill.add_subparsers(dest="drill_command")
    listing = drill_sub.add_parser("list", help="every configured drill: target, safety, state")
    listing.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    run = drill_sub.add_parser("run", help="run one drill; exit 0 passed, 1 failed, 2 aborted/unknown, 3 refused")
    run.add_argument("name", help="the drill's name (see `scaledash drill list`)")
    run.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    run.add_argument("--target", help="the target to act on, where the drill lets you choose")
    run.add_argument("--dry-run", action="store_true", help="run every check and pre-flight, act on nothing")
    run.add_argument("--confirm", metavar="TARGET", help="the target's name, typed in advance (no prompt)")
    run.add_argument("--json", action="store_true", help="print the outcome as JSON on stdout")
    run.add_argument("--unattended", action="store_true",
                     help="no dead-man's switch: carry on when the terminal or the watching dashboard goes away")
    run.add_argument("--heartbeat", help=argparse.SUPPRESS)    # the dashboard's watcher file
    run.add_argument("--run-id", help=argparse.SUPPRESS)       # the dashboard names the run it follows


def cmd_list(args: argparse.Namespace, load_config: LoadConfig) -> int:
    config = load_config(args)
    drills = catalog.listed(config)
    if not drills:
        print("no drills configured (see README, \"Drills\": [[drill]] and [drills] allow)")
        return 0
    width = max(len(d.name) for d in drills)
    for d in drills:
        state = f"disabled: {d.disabled}" if d.disabled else "ready"
        targets = ",".join(d.targets) or "?"
        print(f"{safe_message(d.name, 60):<{width}}  {d.use:<14}  {d.safety:<12}  on {safe_message(targets, 60)}  "
              f"{safe_message(state, 200)}")
    return 0


def cmd_run(args: argparse.Namespace, load_config: LoadConfig) -> int:
    config = load_config(args)
    try:
        drill = catalog.find(config, args.name)
    except catalog.UnknownDrill as exc:
        _say(str(exc))
        return EXIT_CODES[Verdict.COULD_NOT_RUN]
    if args.target:
        drill = replace(drill, target=args.target)
    folder = state_dir(config)
    if getattr(args, "readonly", False):
        return _refuse(folder, drill.name, drill.target or "?", "read-only mode: drills never run with --readonly")
    if not args.dry_run and args.confirm is None:
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            return _refuse(folder, drill.name, drill.target or "?",
                           "no terminal to confirm in: pass --confirm <target> (the target's name)")
        confirmed = asyncio.run(_ask(config, drill))
        if confirmed is None:
            return EXIT_CODES[Verdict.CANCELLED]
        args.confirm, confirmation = confirmed, "typed"
    else:
        confirmation = "dry-run" if args.dry_run else "--confirm"
    heartbeat = Path(args.heartbeat) if args.heartbeat else None
    runner = DrillRunner(config, drill, dry_run=args.dry_run, confirmation=confirmation, heartbeat=heartbeat,
                         unattended=args.unattended, run=args.run_id,
                         on_entry=None if args.json else _print_entry)
    runner.expected_target = None if args.dry_run else args.confirm
    outcome = asyncio.run(runner.run())
    _report(outcome, args.json)
    return outcome.exit_code


def _refuse(folder: Path, drill: str, target: str, reason: str) -> int:
    try:
        attempt = audit.Attempt(folder, drill=drill, target=target, mode="run", steps=[], confirmation="none")
        attempt.intent()
        attempt.outcome(Verdict.REFUSED.value, reason)
    except (audit.AuditError, OSError) as exc:
        _say(f"audit journal: {exc}")
    _say(f"drill {drill}: refused: {reason}")
    return EXIT_CODES[Verdict.REFUSED]


async def _ask(config: config_mod.Config, drill) -> str | None:
    """Show the plan on the stack as it is now; the operator types the target's name."""
    from dashboard.engine import Engine

    engine = Engine(config)
    try:
        await engine.poll_round()
        await asyncio.sleep(1.0)
        await engine.poll_round()
        plan = catalog.plan(drill, config, engine.snapshot())
    finally:
        await engine.close()
    for line in plan.describe():
        print(safe_message(line, 300), file=sys.stderr)
    if plan.problems:
        return plan.target      # the runner refuses it with the reasons and an audit record
    prompt = f"type the target's name ({plan.target}) to run drill {drill.name}, anything else cancels: "
    # The question goes to the terminal (stderr), never to stdout: that holds the outcome
    # alone, the JSON one with --json.
    print(prompt, end="", file=sys.stderr, flush=True)
    try:
        typed = await asyncio.to_thread(sys.stdin.readline)
    except KeyboardInterrupt:
        typed = ""
    if typed.strip()[:200] != plan.target:
        audit.record_cancelled(state_dir(config), drill.name, plan.target, [s.label for s in plan.method],
                               "the name typed did not match the target" if typed.strip() else "nothing typed")
        _say(f"drill {drill.name}: cancelled (nothing acted)")
        return None
    return plan.target


def _print_entry(entry: Entry) -> None:
    at = entry.at
    import time

    stamp = time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"
    status = f" [{entry.status}]" if entry.status and entry.kind in ("step", "check") else ""
    print(f"{stamp} {entry.kind:<6} {safe_message(entry.text, 300)}{status}", file=sys.stderr, flush=True)


def _report(outcome: Outcome, as_json: bool) -> None:
    if as_json:
        print(json.dumps(outcome.as_dict(), indent=2))
        return
    figures = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in outcome.figures.items() if v is not None)
    print(f"drill {outcome.drill} on {outcome.target}: {outcome.verdict.value}: {safe_message(outcome.reason, 400)}")
    if figures:
        print(f"figures: {safe_message(figures, 600)}")
    if outcome.report_md:
        print(f"report: {outcome.report_md} (json: {outcome.report_json})")
    print(f"journal: {outcome.journal}")

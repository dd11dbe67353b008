"""`scaledash lab up|down|status|topology|promote|repoint|rejoin|restart` and `scaledash demo`.

The verbs after status are the lab's side of the drills: the drill engine runs them as
commands and reads one line back (exit 0 done, 1 refused or failed with the reason on
stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

from dashboard.lab.servers import ServerError
from dashboard.lab import failover, restart, topology
from dashboard.lab.stack import Lab
from dashboard.redact import safe_message

# Verbs that act on one node or process, and whether they need --primary.
NAMED = {"promote": False, "repoint": True, "rejoin": True, "restart": False}


def _status(lab: Lab) -> int:
    rows = lab.status()
    if not rows:
        print(f"lab: not running ({lab.dir})")
        return 3
    width = max(len(e.name) for e, _ in rows)
    for entry, alive in rows:
        print(f"{entry.name:<{width}}  pid {entry.pid:<7} port {entry.port:<6} {'alive' if alive else 'DEAD'}")
    dead = [e.name for e, alive in rows if not alive]
    print(f"lab: {len(rows) - len(dead)}/{len(rows)} processes alive; config {lab.config_path}")
    return 1 if dead else 0


def run(args: argparse.Namespace, dashboard: Callable[[Path], int] | None = None) -> int:
    """`lab up|down|status`, or `demo` when `dashboard` is given: the product's CLI passes
    the function that runs the dashboard on a config path, so the lab never imports it."""
    lab = Lab(args.dir)
    try:
        if args.command == "demo" and dashboard is not None:
            return demo(lab, keep=args.keep, dashboard=dashboard)
        if args.action == "up":
            if lab.up(log=lambda line: print(f"lab: {line}", flush=True)) == "running":
                print(f"lab: already running in {lab.dir}; nothing changed (config {lab.config_path})")
            return 0
        if args.action == "down":
            stopped = lab.down()
            print(f"lab: stopped {len(stopped)} processes" + (f" ({', '.join(stopped)})" if stopped else ""))
            return 0
        if args.action == "status":
            return _status(lab)
        print(safe_message(_drill_verb(lab, args), 8000))
        return 0
    except ServerError as exc:
        print(f"lab: {safe_message(exc, 400)}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        # A drill step reads this line: a failed verb says what failed, never a traceback.
        print(f"lab: {args.action} failed: {type(exc).__name__}: {safe_message(exc, 300)}", file=sys.stderr)
        return 1


def _drill_verb(lab: Lab, args: argparse.Namespace) -> str:
    """Run topology|promote|repoint|rejoin|restart; its one answer line. ServerError when refused."""
    if args.action == "topology":
        report = topology.topology(lab)
        return json.dumps(report) if getattr(args, "json", False) else topology.topology_line(report)
    name, primary = getattr(args, "name", None), getattr(args, "primary", None)
    if not name:
        raise ServerError(f"usage: scaledash lab {args.action} NAME" + (" --primary NODE" if NAMED[args.action]
                                                                       else "") + " [--dir D]")
    if NAMED[args.action] and not primary:
        raise ServerError(f"lab {args.action} needs --primary NODE (the node that is the primary now)")
    if args.action == "promote":
        return failover.promote(lab, name)
    if args.action == "repoint":
        return failover.repoint(lab, name, primary)
    if args.action == "rejoin":
        return failover.rejoin(lab, name, primary)
    return restart.restart(lab, name)


def demo(lab: Lab, keep: bool, dashboard: Callable[[Path], int]) -> int:
    """Lab up, the dashboard on its config, lab down on exit unless --keep."""
    started_here = lab.up(log=lambda line: print(f"lab: {line}", flush=True)) == "started"
    try:
        return dashboard(lab.config_path)
    finally:
        if started_here and not keep:
            stopped = lab.down()
            print(f"lab: stopped {len(stopped)} processes")
        elif keep:
            print(f"lab: still running in {lab.dir} (scaledash lab down --dir {lab.dir})")

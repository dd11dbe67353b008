"""`scaledash lab up|down|status` and `scaledash demo`."""

from __future__ import annotations

import argparse
import sys

from dashboard.lab.servers import ServerError
from dashboard.lab.stack import Lab
from dashboard.redact import safe_message


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


def run(args: argparse.Namespace) -> int:
    lab = Lab(args.dir)
    try:
        if args.command == "demo":
            return demo(lab, keep=args.keep, readonly=getattr(args, "readonly", False))
        if args.action == "up":
            if lab.up(log=lambda line: print(f"lab: {line}", flush=True)) == "running":
                print(f"lab: already running in {lab.dir}; nothing changed (config {lab.config_path})")
            return 0
        if args.action == "down":
            stopped = lab.down()
            print(f"lab: stopped {len(stopped)} processes" + (f" ({', '.join(stopped)})" if stopped else ""))
            return 0
        return _status(lab)
    except ServerError as exc:
        print(f"lab: {safe_message(exc, 400)}", file=sys.stderr)
        return 1


def demo(lab: Lab, keep: bool, readonly: bool) -> int:
    """Lab up, the dashboard on its config, lab down on exit unless --keep."""
    from dashboard import config as config_mod
    from dashboard.app import run_app

    started_here = lab.up(log=lambda line: print(f"lab: {line}", flush=True)) == "started"
    try:
        cfg = config_mod.load(str(lab.config_path))
        return run_app(cfg, readonly=readonly)
    finally:
        if started_here and not keep:
            stopped = lab.down()
            print(f"lab: stopped {len(stopped)} processes")
        elif keep:
            print(f"lab: still running in {lab.dir} (scaledash lab down --dir {lab.dir})")

"""Entry point: `scaledash [check|config check|record|daemon|replay|attach|serve|suite list|suite run|drill list|drill run|lab|demo]`.

Every path ends in an exit code and at most a few clean lines: config problems are
`config error: <path>: <reason>` with exit 3, and anything unexpected goes through
`crash.report` (one redacted line, details in a file), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from dashboard import config as config_mod
from dashboard.output import EXIT_UNKNOWN
from dashboard.recording.store import RecordingError
from dashboard.redact import safe_message


class UsageError(Exception):
    """Bad arguments: one line, exit 3."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would exit 2, which means CRITICAL here
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="scaledash", description="Terminal dashboard for scaling infrastructure.")
    parser.add_argument("--config", help="config file (default: $SCALEDASH_CONFIG, ./scaledash.toml, "
                                         "~/.config/scaledash/scaledash.toml)")
    parser.add_argument("--interval", help="poll interval, e.g. 1s or 500ms (overrides the config)")
    parser.add_argument("--timeout", help="per-probe deadline (overrides the config; <= interval)")
    parser.add_argument("--readonly", action="store_true", help="never run drills or suites")
    parser.add_argument("--record", metavar="FILE", help="also record every snapshot the dashboard shows to FILE")
    parser.add_argument("--keep", dest="record_keep", help="with --record: drop what is older than this, e.g. 24h")
    sub = parser.add_subparsers(dest="command")

    check = sub.add_parser("check", help="one round of probes, no TUI; Nagios-style exit code")
    check.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    check.add_argument("--json", action="store_true", help="print the JSON contract instead of a table")
    check.add_argument("--window", default="1s", help="time between the two rounds used for rates (default 1s)")
    check.add_argument("--from", dest="from_file", metavar="FILE",
                       help="no probes: the recorded snapshot of FILE (see --at)")
    check.add_argument("--at", metavar="TIME", help="with --from: the moment, e.g. 2026-12-02T10:40:00Z, 10:40 "
                       "(UTC), end-5m (default: the end)")

    record = sub.add_parser("record", help="poll and record every snapshot to FILE, no screen")
    record.add_argument("file", help="the recording (SQLite; created, or appended to)")
    record.add_argument("--keep", help="drop what is older than this, e.g. 24h or 7d (default: keep everything)")
    record.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)

    replay = sub.add_parser("replay", help="the dashboard on a recording, with a timeline; acts on nothing")
    replay.add_argument("file", help="a recording (scaledash record, daemon or --record)")
    replay.add_argument("--at", metavar="TIME", help="start there (the forms of check --at; default: the start)")
    replay.add_argument("--speed", type=int, default=1, choices=(1, 2, 5, 10, 30, 60), help="1x-60x (default 1)")

    attach = sub.add_parser("attach", help="a read-only live view of a recording a daemon is writing")
    attach.add_argument("file", help="the daemon's recording")

    serve = sub.add_parser("serve", help="the dashboard in a browser (textual-serve), attached to a recording")
    serve.add_argument("file", help="the daemon's recording (or any recording, with --replay)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other "
                       "requires the token printed at start)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    serve.add_argument("--replay", action="store_true", help="each tab replays the recording instead of following it")
    serve.add_argument("--public-url", help="the URL browsers reach this server by (behind a proxy)")

    daemon = sub.add_parser("daemon", help="record as `record` does, keeping 24h unless --keep says otherwise, "
                            "and optionally serve Prometheus metrics")
    daemon.add_argument("file", help="the recording (SQLite; created, or appended to)")
    daemon.add_argument("--keep", default="24h", help="drop what is older than this (default 24h)")
    daemon.add_argument("--metrics", metavar="ADDR",
                        help="serve scaledash_* metrics on host:port or a port (127.0.0.1), e.g. 9465")
    daemon.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)

    cfg = sub.add_parser("config", help="configuration commands")
    cfg_sub = cfg.add_subparsers(dest="config_command")
    cfg_check = cfg_sub.add_parser("check", help="validate the config without connecting")
    cfg_check.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)

    suite = sub.add_parser("suite", help="list and run the stack's test suites (shipped and [[suite]])")
    suite_sub = suite.add_subparsers(dest="suite_command")
    suite_list = suite_sub.add_parser("list", help="every suite: name, kind, source, description")
    suite_list.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    suite_run = suite_sub.add_parser("run", help="run one suite; exit 0 passed, 1 failed, 2 no answer, 3 could not run")
    suite_run.add_argument("name", help="the suite's name (see `scaledash suite list`)")
    suite_run.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    suite_run.add_argument("--junit", help="also write pytest's JUnit XML report here (pytest suites)")
    suite_run.add_argument("--json", action="store_true", help="print the parsed result as JSON on stdout")
    suite_run.add_argument("--timeout", dest="suite_timeout",
                           help="stop the suite after this long, e.g. 10m (default: the suite's own)")

    from dashboard.drills.cli import add_parser as add_drill_parser

    add_drill_parser(sub)

    lab = sub.add_parser("lab", help="the local lab: a real stack to watch, test and drill")
    lab.add_argument("action", choices=("up", "down", "status", "topology", "promote", "repoint", "rejoin",
                                        "restart"))
    lab.add_argument("name", nargs="?", help="the node (promote, repoint, rejoin) or process (restart)")
    lab.add_argument("--primary", help="repoint, rejoin: the node that is the primary now")
    lab.add_argument("--json", action="store_true", help="topology: print JSON")
    lab.add_argument("--dir", default=None, help="lab state directory (default ./.lab)")

    demo = sub.add_parser("demo", help="lab up, the dashboard on it, lab down on exit")
    demo.add_argument("--dir", default=None, help="lab state directory (default ./.lab)")
    demo.add_argument("--keep", action="store_true", help="leave the lab running on exit")
    return parser


def _overrides(args: argparse.Namespace) -> dict:
    """Precedence: defaults < file < environment (SCALEDASH_INTERVAL/_TIMEOUT) < flags."""
    out = {}
    for key in ("interval", "timeout"):
        from_env = os.environ.get(f"SCALEDASH_{key.upper()}")
        if from_env:
            out[key] = from_env
        if getattr(args, key):
            out[key] = getattr(args, key)
    return out


def load_config(args: argparse.Namespace) -> config_mod.Config:
    explicit = getattr(args, "sub_config", None) or args.config
    cfg = config_mod.load(explicit, _overrides(args))
    for warning in cfg.warnings:
        print(config_mod.report_line("config warning", cfg.path, warning), file=sys.stderr)
    return cfg


def cmd_config_check(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    print(f"config ok: {cfg.path}: {cfg.target_count} targets, {len(cfg.suites)} suites, "
          f"interval {cfg.interval:g}s, timeout {cfg.timeout:g}s")
    print(f"dashboard name: {safe_message(cfg.name, 80)}")
    from dashboard.suites.catalog import configured_suite

    for suite in cfg.suites:
        cwd = f" (in {safe_message(suite.cwd, 120)})" if suite.cwd else ""
        print(f"suite {safe_message(suite.name, 80)}: {safe_message(' '.join(suite.command), 200)}{cwd}: "
              f"{configured_suite(suite).kind.value}, run with `scaledash suite run {safe_message(suite.name, 80)}`")
    from dashboard.drills.catalog import listed

    for drill in listed(cfg):
        state = f"disabled: {drill.disabled}" if drill.disabled else \
            f"{drill.safety}, run with `scaledash drill run {drill.name}`"
        print(f"drill {safe_message(drill.name, 80)} ({drill.use}): {safe_message(state, 300)}")
    return 0


async def run_check(cfg: config_mod.Config, window: float):
    """Two rounds `window` apart (rates need two), then the snapshot."""
    from dashboard.engine import Engine

    engine = Engine(cfg)
    engine.failover_seconds = last_failover(cfg)
    try:
        await engine.poll_round()
        await asyncio.sleep(window)
        await engine.poll_round()
        return engine.snapshot()
    finally:
        await engine.close()


def last_failover(cfg: config_mod.Config) -> float | None:
    """The failover time the newest failover drill on this config measured (its reports)."""
    if not cfg.drills:
        return None
    from dashboard.drills.reports import last_figure
    from dashboard.drills.runner import state_dir

    found = last_figure(state_dir(cfg), "failover_seconds", cfg.path)
    return found[0] if found else None


def cmd_check(args: argparse.Namespace) -> int:
    from dashboard import output

    if args.from_file:
        snap = recorded_snapshot(args.from_file, args.at or "end")
        if args.json:
            print(output.dumps(snap))
        else:
            output.render_table(snap, _table_console())
        return output.exit_code(snap)
    if args.at:
        raise UsageError("--at needs --from FILE (a recording)")
    try:
        window = config_mod.parse_duration(args.window)
    except ValueError as exc:
        raise UsageError(f"--window: {exc}") from None
    if not 0 < window <= 60:
        # Rates divide by the window: 0 is refused, so the message must not say "between 0".
        raise UsageError(f"--window must be more than 0s and at most 60s (got {args.window})")
    cfg = load_config(args)
    if cfg.target_count == 0:
        print(f"scaledash: nothing to check: {cfg.path} has no targets", file=sys.stderr)
        return EXIT_UNKNOWN
    snap = asyncio.run(run_check(cfg, window))
    if args.json:
        print(output.dumps(snap))
    else:
        output.render_table(snap, _table_console())
    return output.exit_code(snap)


def _table_console():
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:     # piped to a file or a monitoring system: room to read
        console = Console(highlight=False, width=max(console.width, 132))
    return console


def recorded_snapshot(path: str, when: str):
    """The snapshot a recording held at `when` (see recording.moments.parse_moment)."""
    from dashboard.recording import Recording
    from dashboard.recording.moments import parse_moment

    recording = Recording(path)
    try:
        try:
            at = parse_moment(when, recording)
        except ValueError as exc:
            raise UsageError(f"--at: {exc}") from None
        snap = recording.at(at)
        if snap is None:
            first = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(recording.span()[0]))
            raise UsageError(f"--at: {path} starts at {first}, after {when}")
        return snap
    finally:
        recording.close()


def cmd_record(args: argparse.Namespace) -> int:
    from dashboard.recording import headless

    keep = _keep(args.keep)
    metrics = None
    if getattr(args, "metrics", None):
        from dashboard.export import parse_address

        try:
            metrics = parse_address(args.metrics)
        except ValueError as exc:
            raise UsageError(f"--metrics: {exc}") from None
    cfg = load_config(args)
    if cfg.target_count == 0:
        print(f"scaledash: nothing to record: {cfg.path} has no targets", file=sys.stderr)
        return EXIT_UNKNOWN
    return headless.run(cfg, Path(args.file), keep, failover_seconds=last_failover(cfg), metrics=metrics)


def cmd_lab(args: argparse.Namespace) -> int:
    from dashboard.lab import cli as lab_cli

    def dashboard(config_path) -> int:
        from dashboard.app import run_app

        cfg = config_mod.load(str(config_path))
        return run_app(cfg, readonly=getattr(args, "readonly", False),
                       recorder=_recorder(args, cfg, _keep(args.record_keep)))

    return lab_cli.run(args, dashboard if args.command == "demo" else None)


def cmd_dashboard(args: argparse.Namespace) -> int:
    keep = _keep(args.record_keep)
    if keep and not args.record:
        raise UsageError("--keep needs --record FILE")
    cfg = load_config(args)
    from dashboard.app import run_app

    return run_app(cfg, readonly=args.readonly, recorder=_recorder(args, cfg, keep))


def _recorder(args: argparse.Namespace, cfg: config_mod.Config, keep: float | None):
    """The dashboard's --record FILE, opened before the screen takes the terminal, so a
    file that cannot be used is one line and exit 3, not a notice lost in the TUI."""
    if not args.record:
        return None
    from dashboard.drills.runner import state_dir
    from dashboard.recording import Recorder

    return Recorder(args.record, keep_s=keep, name=cfg.name, announce_in=state_dir(cfg))


def _keep(text: str | None) -> float | None:
    """--keep: a span of at least a minute (retention is looked at once a minute)."""
    if not text:
        return None
    from dashboard.recording.moments import parse_span

    try:
        keep = parse_span(text)
    except ValueError as exc:
        raise UsageError(f"--keep: {exc}") from None
    if keep < 60:
        raise UsageError(f"--keep must be at least 1m (got {text})")
    return keep


def cmd_serve(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be 1-65535 (got {args.port})")
    try:
        from dashboard import serve
    except ImportError:
        raise UsageError("serve needs textual-serve: pip install 'scaledash[serve]' (make test installs it)") from None
    return serve.run(args.file, args.host, args.port, replay=args.replay, public_url=args.public_url)


def cmd_replay(args: argparse.Namespace) -> int:
    from dashboard.replay_app import run_replay

    if args.command == "attach":
        return run_replay(args.file, follow=True)
    try:
        return run_replay(args.file, follow=False, at=args.at, speed=args.speed)
    except ValueError as exc:
        raise UsageError(f"--at: {exc}") from None


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "check":
        return cmd_check(args)
    if args.command in ("record", "daemon"):
        return cmd_record(args)
    if args.command in ("replay", "attach"):
        return cmd_replay(args)
    if args.command == "serve":
        return cmd_serve(args)
    if args.command == "config":
        if args.config_command != "check":
            raise UsageError("usage: scaledash config check [--config FILE]")
        return cmd_config_check(args)
    if args.command == "suite":
        from dashboard.suites import cli as suite_cli

        if args.suite_command == "list":
            return suite_cli.cmd_list(args, load_config)
        if args.suite_command == "run":
            return suite_cli.cmd_run(args, load_config)
        raise UsageError("usage: scaledash suite list | scaledash suite run NAME [--json] [--junit PATH]")
    if args.command == "drill":
        from dashboard.drills import cli as drill_cli

        if args.drill_command == "list":
            return drill_cli.cmd_list(args, load_config)
        if args.drill_command == "run":
            return drill_cli.cmd_run(args, load_config)
        raise UsageError("usage: scaledash drill list | scaledash drill run NAME [--dry-run] [--confirm TARGET]")
    if args.command in ("lab", "demo"):
        return cmd_lab(args)
    return cmd_dashboard(args)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return dispatch(args)
    except UsageError as exc:
        print(f"scaledash: {safe_message(exc, 300)} (see scaledash --help)", file=sys.stderr)
        return EXIT_UNKNOWN
    except config_mod.ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return EXIT_UNKNOWN
    except RecordingError as exc:
        print(f"scaledash: {safe_message(exc, 300)}", file=sys.stderr)
        return EXIT_UNKNOWN
    except KeyboardInterrupt:
        print("scaledash: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except BaseException as exc:  # noqa: BLE001 - the one place that must catch everything
        from dashboard import crash

        crash.report(exc)
        return EXIT_UNKNOWN


if __name__ == "__main__":
    sys.exit(main())

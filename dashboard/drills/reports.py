"""A finished run's reports: Markdown to read, JSON to compare runs; and the last failover.

Both hold the same things: the drill, target, operator and host, the verdict and its
reason, the figures against their targets, each step with its time and result, the
timeline (every step and every state change the engine saw, with timestamps), and
the rollbacks done. The newest report holding `failover_seconds` is what the
dashboard's Failover KPI shows, also in a dashboard started after the drill.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import time
from pathlib import Path
from typing import Any

from dashboard.drills import recordings
from dashboard.drills.audit import operator
from dashboard.drills.journal import RunFiles, clean
from dashboard.drills.model import Entry, Plan


def _real(path: str) -> str:
    return os.path.realpath(path) if path and not path.startswith("<") else path


def _stamp(wall: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall)) + f".{int(wall * 1000) % 1000:03d}"


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    tmp.replace(path)


def write(files: RunFiles, outcome, plan: Plan | None, steps: list[dict], rollbacks: list[dict],
          timeline: list[Entry], ended: float, config_path: str = "") -> tuple[Path, Path]:
    started = timeline[0].at if timeline else ended
    data = clean({
        "drill": outcome.drill, "target": outcome.target, "run": outcome.run, "operator": operator(),
        "host": socket.gethostname(), "started": started, "ended": ended, "verdict": outcome.verdict.value,
        "reason": outcome.reason, "figures": outcome.figures,
        "targets": {name: {"op": op, "limit": limit, "value": outcome.figures.get(name)}
                    for name, (op, limit) in (plan.limits.items() if plan else ())},
        "safety": plan.drill.safety if plan else None, "plan": plan.describe() if plan else [],
        "steps": steps, "rollbacks": rollbacks,
        "timeline": [{"at": e.at, "kind": e.kind, "text": e.text, "status": e.status} for e in timeline],
        "journal": str(files.journal), "config": _real(config_path),
        "recordings": [{"path": r["path"], "replay": f"scaledash replay {shlex.quote(r['path'])} --at "
                                                     f"{_iso(started - 10)}"}
                       for r in recordings.active(files.state_dir)],
    })
    files.prepare()
    _write_private(files.report_json, json.dumps(data, indent=2, allow_nan=False))
    _write_private(files.report_md, markdown(data))
    return files.report_md, files.report_json


def _iso(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|")


def markdown(d: dict) -> str:
    lines = [f"# Drill {d['drill']} on {d['target']}: {d['verdict'].upper()}", "",
             f"- run: `{d['run']}` ({d.get('safety') or '?'})",
             f"- operator: {d['operator']} on {d['host']}",
             f"- started {_stamp(d['started'])}, ended {_stamp(d['ended'])} "
             f"({d['ended'] - d['started']:.1f} s)",
             f"- verdict: **{d['verdict']}**: {d['reason']}", "", "## Figures", "",
             "| figure | value | target | met |", "|---|---|---|---|"]
    for name, value in sorted(d["figures"].items()):
        target = d["targets"].get(name)
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        if target:
            from dashboard.drills.conditions import compare

            met = "yes" if value is not None and compare(value, target["op"], float(target["limit"])) else "NO"
            lines.append(f"| {name} | {shown} | {target['op']} {target['limit']:g} | {met} |")
        else:
            lines.append(f"| {name} | {shown} | | |")
    for name, target in d["targets"].items():
        if name not in d["figures"]:
            lines.append(f"| {name} | not measured | {target['op']} {target['limit']:g} | NO |")
    lines += ["", "## Steps", "", "| step | result | seconds | detail |", "|---|---|---|---|"]
    for s in d["steps"]:
        mark = " (irreversible)" if s.get("irreversible") else ""
        lines.append(f"| {_cell(s['label'])}{mark} | {s['status']} | {s['seconds']:.2f} | {_cell(s['detail'])} |")
    lines += ["", "## Rollbacks", ""]
    lines += [f"- {r['label']}: {r['status']} ({r['seconds']:.2f} s) {r['detail']}" for r in d["rollbacks"]] \
        or ["- none"]
    lines += ["", "## Recordings", ""]
    lines += [f"- `{r['path']}`: `{r['replay']}`" for r in d.get("recordings") or ()] or \
        ["- none (record the stack with `scaledash daemon FILE` to replay a drill afterwards)"]
    lines += ["", "## Timeline", "", "```"]
    lines += [f"{_stamp(e['at'])}  {e['kind']:<6} {e['text']}" for e in d["timeline"]]
    lines += ["```", "", "## Plan", "", "```", *d["plan"], "```", ""]
    return "\n".join(lines)


def last_figure(state_dir: Path, name: str, config_path: str | None = None,
                limit: int = 50) -> tuple[float, dict] | None:
    """The newest report that measured `name` (of drills run with `config_path`, when
    given: state dirs are shared, another stack's failover is not this one's)."""
    folder = state_dir / "reports"
    try:
        paths = sorted(folder.glob("*.json"), key=lambda p: p.name, reverse=True)[:limit]
    except OSError:
        return None
    for path in paths:
        try:
            data: Any = json.loads(path.read_text()[:2_000_000])
            value = data["figures"].get(name)
            if config_path is not None and data.get("config") != _real(config_path):
                continue
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), data
    return None

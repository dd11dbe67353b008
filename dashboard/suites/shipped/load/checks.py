"""The load suite's thresholds, judged from the figures of one run, and how a verdict is printed.

Pure functions over plain figures so the same judgement holds whether Locust or a test
produced them. A request's kind is the first word of its Locust name ("read /items/[id]",
"edge hello"): thresholds are declared per kind. A kind that made no request fails its
checks: a threshold met by nothing proves nothing.

The lines printed here are the suite's contract with the runner's judge
(dashboard/suites/judge.py): `load check failed: <kind>.<threshold>: <detail>` names a
missed threshold, `load check skipped: <what>: <why>` a part that could not run.
"""

from __future__ import annotations

from dataclasses import dataclass

FAILED_PREFIX = "load check failed: "
SKIPPED_PREFIX = "load check skipped: "


@dataclass(frozen=True)
class KindFigures:
    """One request kind over the whole run: every Locust row of that kind merged."""

    kind: str
    requests: int
    failures: int
    p95_ms: float | None
    frames: int | None = None     # WebSocket frames received (subscribe only)

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def kind_of(name: str) -> str:
    return name.split(" ", 1)[0]


def missed(thresholds: dict[str, dict[str, float]], figures: dict[str, KindFigures]) -> list[tuple[str, str]]:
    """(`kind.threshold`, what was seen) for every threshold the run missed, in declaration order."""
    out: list[tuple[str, str]] = []
    for kind, limits in thresholds.items():
        seen = figures.get(kind)
        if seen is None or seen.requests == 0:
            out.append((f"{kind}.requests", "no request of this kind was made: nothing to judge"))
            continue
        if "error_rate" in limits and seen.error_rate > limits["error_rate"]:
            out.append((f"{kind}.error_rate", f"{seen.error_rate:.2%} of {seen.requests} requests failed "
                                              f"(limit {limits['error_rate']:.2%})"))
        if "p95_ms" in limits and (seen.p95_ms is None or seen.p95_ms > limits["p95_ms"]):
            shown = "no timing" if seen.p95_ms is None else f"{seen.p95_ms:g} ms"
            out.append((f"{kind}.p95_ms", f"p95 {shown} over {seen.requests} requests "
                                          f"(limit {limits['p95_ms']:g} ms)"))
        if "min_frames" in limits and (seen.frames or 0) < limits["min_frames"]:
            out.append((f"{kind}.min_frames", f"{seen.frames or 0} WebSocket frames received "
                                              f"(at least {limits['min_frames']:g} expected)"))
    return out


def failed_line(name: str, detail: str) -> str:
    return f"{FAILED_PREFIX}{name}: {detail}"


def skipped_line(name: str, why: str) -> str:
    return f"{SKIPPED_PREFIX}{name}: {why}"


def figures_line(f: KindFigures) -> str:
    p95 = "n/a" if f.p95_ms is None else f"{f.p95_ms:g} ms"
    frames = f", {f.frames} frames" if f.frames is not None else ""
    return f"load figures: {f.kind}: {f.requests} requests, {f.error_rate:.2%} failed, p95 {p95}{frames}"

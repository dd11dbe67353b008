"""Batcher rows: messages in, frames out, reduction = 1 - out/in, flush p95."""

from __future__ import annotations

from dashboard import format as fmt
from dashboard.kinds.base import assess_finite, counter_rate, histogram_delta, histogram_quantile, ratio
from dashboard.model import Reading

METRIC_KEYS = ("messages_in_per_s", "frames_out_per_s", "reduction", "avg_batch_size", "flush_p95_ms")
HISTORY = ("reduction", "messages_in_per_s", "frames_out_per_s")


def derive(cur: Reading, prev: Reading | None, dt: float | None) -> dict:
    messages = counter_rate(cur, prev, dt, "messages")
    frames = counter_rate(cur, prev, dt, "frames")
    reduction = None
    if messages and frames is not None:
        reduction = 1.0 - frames / messages
    p95 = histogram_quantile(0.95, histogram_delta(cur.figures, prev.figures if prev else None, "flush_buckets"))
    return {
        "messages_in_per_s": messages,
        "frames_out_per_s": frames,
        "reduction": reduction,
        "avg_batch_size": (messages / frames) if messages is not None and frames else None,
        "flush_p95_ms": p95 * 1000.0 if p95 is not None else None,
        "subscribers": cur.figures.get("subscribers"),
        "_frame_ratio": ratio(frames, messages),
    }


assess = assess_finite


def brief(m: dict) -> str:
    return (f"in {fmt.rate(m.get('messages_in_per_s'))} out {fmt.rate(m.get('frames_out_per_s'))} "
            f"cut {fmt.pct(m.get('reduction'))} p95 {fmt.ms(m.get('flush_p95_ms'))}")

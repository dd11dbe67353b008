"""The `scaling` suite: replica routing, health and lag, breakers, cache layers, batching, errors."""

SUITE = {
    "kind": "pytest",
    "description": "replicas take reads, breakers fall back, cache layers answer and invalidate, batching",
    "generates_load": False,
    "timeout_s": 600,
}

"""The `load` suite: Locust traffic on the configured stack, judged by per-kind thresholds."""

SUITE = {
    "kind": "locust",
    "description": "Zipf reads, writes, edge calls and WebSocket subscribers under load, p95/error thresholds",
    "generates_load": True,
    "users": 10,
    "spawn_rate": 5,
    "run_time_s": 30,
    # Locust's run, then k6's run of the same scenarios when k6 is installed, then the stats.
    "timeout_s": 150,
}

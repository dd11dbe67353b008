"""The `performance` suite: each promised improvement measured as an A/B on one fixed workload."""

SUITE = {
    "kind": "pytest",
    "description": "A/B on fixed workloads: replica offload, cache speed-up and hits, batching, breakers",
    # A few hundred requests per side, and while a side runs a feature is off on the live stack.
    "generates_load": True,
    "timeout_s": 300,
}

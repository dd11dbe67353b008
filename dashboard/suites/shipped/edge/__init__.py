"""The `edge` suite: each configured edge function answers with its status, content type and body shape, in time."""

SUITE = {
    "kind": "pytest",
    "description": "each [[edge]] function answers its status, content type and body shape within its latency budget",
    "generates_load": False,
    "timeout_s": 300,
}

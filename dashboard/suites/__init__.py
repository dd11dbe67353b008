"""Suites: the stack's own checks (integration, load, edge, performance), shipped and run from a key."""

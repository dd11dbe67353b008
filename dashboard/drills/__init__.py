"""Failover drills: break the stack on purpose, measured, reversible where it can be, audited."""

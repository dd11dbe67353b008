"""The lab's sample service: a small real system that does what the seed system did.

It routes reads to healthy replicas and writes to the primary (whichever configured
node that is: it follows a failover on its own), takes canary writes for failover
drills, guards a flaky upstream, the replica reads and Redis with circuit breakers,
serves items through a memory -> Redis -> PostgreSQL cache, batches database change
events into WebSocket frames, and serves edge functions -- and exports every figure
the dashboard reads under the scaledash metric convention (DESIGN.md, "Metric
convention").

Run it with `python -m dashboard.lab.service SETTINGS.json`; `app.build_app()` is the
one place that wires the parts together.
"""

"""Canary writes for failover drills: POST /canary and GET /admin/canary.

A drill writes numbered rows of one run at a steady rate through POST /canary while
it crashes the primary, then reads the run back from the new primary with GET
/admin/canary: an acknowledged seq missing there is a lost write. So a 200 means the
row is committed on the writable node and written by a standby (see
`Database.write_canary`), and every other outcome is not an acknowledgement: 503 when
no writable node took it in time, 400 for a request that is not a canary write.
"""

from __future__ import annotations

import json
import re

from aiohttp import web

from dashboard.lab.service.database import Database, DatabaseUnavailable

RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_SEQ = 2_147_483_647          # the column is a PostgreSQL int
# A drill writes ~50 rows a second for a few minutes at most; the answer stays bounded
# (~100 KB) whatever a run holds, and says when it was cut.
MAX_SEQS = 10_000


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


def _run_id(value: object) -> str:
    if not isinstance(value, str) or not RUN_ID.fullmatch(value):
        raise _bad("run must be 1 to 64 characters from A-Z a-z 0-9 _ -")
    return value


def _unavailable(exc: DatabaseUnavailable) -> web.Response:
    return web.json_response({"error": "database unavailable", "detail": str(exc)}, status=503)


async def _canary_body(request: web.Request) -> tuple[str, int]:
    """{"run": "<id>", "seq": N}, nothing else."""
    try:
        data = await request.json()
    except ValueError:
        raise _bad("body must be JSON") from None
    if not isinstance(data, dict) or set(data) != {"run", "seq"}:
        raise _bad('body must be {"run": "<id>", "seq": <integer>}')
    seq = data["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
        raise _bad(f"seq must be an integer from 0 to {MAX_SEQ}")
    return _run_id(data["run"]), seq


class CanaryHandlers:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def write(self, request: web.Request) -> web.Response:
        run, seq = await _canary_body(request)
        try:
            node = await self._db.write_canary(run, seq)
        except DatabaseUnavailable as exc:
            return _unavailable(exc)
        return web.json_response({"node": node, "seq": seq})

    async def seqs(self, request: web.Request) -> web.Response:
        run = _run_id(request.query.get("run"))
        try:
            node, seqs = await self._db.canary_seqs(run, MAX_SEQS + 1)
        except DatabaseUnavailable as exc:
            return _unavailable(exc)
        return web.json_response({"node": node, "seqs": seqs[:MAX_SEQS], "truncated": len(seqs) > MAX_SEQS,
                                  "max_seqs": MAX_SEQS})

"""HTTP handlers for items: cached reads, writes that invalidate every cache layer.

GET /items/{id} answers from memory, Redis or the database and says which in
`X-Cache` (HIT-memory | HIT-redis | MISS); PUT /items/{id} upserts on the primary
and returns only after the cache no longer holds the old value anywhere.
POST /items/prices sets many prices in one transaction (a price feed tick), with
the same guarantee for every key it touched.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation

from aiohttp import web

from dashboard.lab.service import queries
from dashboard.lab.service.cache import LayeredCache
from dashboard.lab.service.database import Database, DatabaseUnavailable

MAX_ID = 2_147_483_647
MAX_NAME = 100
MAX_BULK = 100
X_CACHE = {"memory": "HIT-memory", "redis": "HIT-redis", None: "MISS"}


def encode_item(row) -> bytes:
    return json.dumps({"id": row["id"], "name": row["name"],
                       "price": None if row["price"] is None else float(row["price"]),
                       "updated_at": row["updated_at"].isoformat() if row["updated_at"] else None}).encode()


def unavailable(detail: str) -> web.Response:
    return web.json_response({"error": "database unavailable", "detail": detail}, status=503)


def _item_id(request: web.Request) -> int:
    try:
        item_id = int(request.match_info["id"])
    except ValueError:
        raise _bad("item id must be an integer") from None
    if not 1 <= item_id <= MAX_ID:
        raise _bad("item id out of range")
    return item_id


class ItemHandlers:
    def __init__(self, db: Database, cache: LayeredCache) -> None:
        self._db = db
        self._cache = cache

    async def read(self, request: web.Request) -> web.Response:
        item_id = _item_id(request)
        node: list[str] = []

        async def load() -> bytes | None:
            row, answered_by = await self._db.read_row(item_id, queries.SELECT_ITEM, item_id)
            node.append(answered_by)
            return None if row is None else encode_item(row)

        try:
            body, layer = await self._cache.get(item_id, load)
        except DatabaseUnavailable as exc:
            return unavailable(f"no replica or primary could answer ({exc})")
        headers = {"X-Cache": X_CACHE[layer]}
        if node:
            headers["X-Db-Node"] = node[0]
        if body is None:
            return web.json_response({"error": "no such item"}, status=404, headers=headers)
        return web.Response(body=body, content_type="application/json", headers=headers)

    async def write(self, request: web.Request) -> web.Response:
        item_id = _item_id(request)
        name, price = await _parse_write(request)
        try:
            row = await self._db.write_row(item_id, queries.UPSERT_ITEM, item_id, name, price)
        except DatabaseUnavailable as exc:
            return unavailable(f"the primary could not take the write ({exc})")
        finally:
            # Also after a failure: a write that timed out may still have committed.
            await self._cache.invalidate(item_id)
        return web.Response(body=encode_item(row), content_type="application/json")

    async def write_prices(self, request: web.Request) -> web.Response:
        ids, prices = await _parse_prices(request)
        try:
            rows = await self._db.write_rows(ids, queries.UPSERT_PRICES, ids, prices)
        except DatabaseUnavailable as exc:
            return unavailable(f"the primary could not take the write ({exc})")
        finally:
            await self._cache.invalidate(*ids)
        return web.json_response({"updated": sorted(row["id"] for row in rows)})


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


def _price(value) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _bad("price must be a number")
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise _bad("price must be a number") from None
    if not price.is_finite() or not 0 <= price < 10**9:
        raise _bad("price must be a finite number from 0 to 1e9")
    return price


async def _json_object(request: web.Request) -> dict:
    try:
        data = await request.json()
    except ValueError:
        raise _bad("body must be JSON") from None
    if not isinstance(data, dict):
        raise _bad("body must be a JSON object")
    return data


async def _parse_prices(request: web.Request) -> tuple[list[int], list[Decimal]]:
    """{"prices": {"<id>": <price>, ...}} with 1..MAX_BULK distinct ids."""
    prices = (await _json_object(request)).get("prices")
    if not isinstance(prices, dict) or not 1 <= len(prices) <= MAX_BULK:
        raise _bad(f'body must be {{"prices": {{"<id>": <price>, ...}}}} with 1 to {MAX_BULK} entries')
    try:
        ids = [int(key) for key in prices]
    except ValueError:
        raise _bad("item ids must be integers") from None
    if len(set(ids)) != len(ids) or not all(1 <= i <= MAX_ID for i in ids):
        raise _bad("item ids must be distinct and in range")
    return ids, [_price(value) for value in prices.values()]


async def _parse_write(request: web.Request) -> tuple[str | None, Decimal | None]:
    data = await _json_object(request)
    name, price = data.get("name"), data.get("price")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME):
        raise _bad(f"name must be a string of at most {MAX_NAME} characters")
    return name, None if price is None else _price(price)

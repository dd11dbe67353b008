"""Every SQL statement the service runs, by name (PostgreSQL 14 and later).

Kept together so a reader sees the whole database contract at once: the schema
the service creates, the notify trigger the batcher listens to, the item queries
and the replica health probe.
"""

# Serialises schema set-up between services starting at the same moment.
SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(7355608)"

CREATE_ITEMS = """
CREATE TABLE IF NOT EXISTS items (
    id int PRIMARY KEY,
    name text,
    price numeric,
    updated_at timestamptz DEFAULT now()
)"""

COUNT_ITEMS = "SELECT count(*) FROM items"

SEED_ITEMS = """
INSERT INTO items (id, name, price)
SELECT g, 'item-' || g, round((1 + random() * 99)::numeric, 2)
FROM generate_series(1, $1::int) AS g
ON CONFLICT (id) DO NOTHING"""

# One notification per changed row; the payload stays far below NOTIFY's 8000 bytes
# because names are short (writes cap them, see items.py).
CREATE_NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION items_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed items;
BEGIN
    IF TG_OP = 'DELETE' THEN changed := OLD; ELSE changed := NEW; END IF;
    PERFORM pg_notify('items_changes', json_build_object(
        'op', lower(TG_OP), 'id', changed.id, 'name', changed.name, 'price', changed.price,
        'updated_at', changed.updated_at)::text);
    RETURN NULL;
END $$"""

CREATE_NOTIFY_TRIGGER = """
CREATE OR REPLACE TRIGGER items_notify
AFTER INSERT OR UPDATE OR DELETE ON items
FOR EACH ROW EXECUTE FUNCTION items_notify()"""

NOTIFY_CHANNEL = "items_changes"

# Canary rows a failover drill writes through POST /canary and counts afterwards on the
# new primary (GET /admin/canary): `node` is the configured name of the node that
# committed the row. A seq sent again (its first answer was lost) keeps its first row.
CREATE_CANARY = """
CREATE TABLE IF NOT EXISTS canary (
    run text NOT NULL,
    seq int NOT NULL,
    node text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run, seq)
)"""

INSERT_CANARY = "INSERT INTO canary (run, seq, node) VALUES ($1, $2, $3) ON CONFLICT (run, seq) DO NOTHING"

SELECT_CANARY = "SELECT seq FROM canary WHERE run = $1 ORDER BY seq LIMIT $2"

# For one transaction (a canary write): the commit returns once a synchronous standby
# (synchronous_standby_names = 'ANY 1 (*)' on the lab primary) has written the WAL to
# its OS. remote_write, not remote_apply: a standby that is promoted replays all the WAL
# it has received before it takes writes, so "written there" already survives the
# primary's crash; waiting for replay as well would add the replay delay to every
# canary write and stall them while a drill pauses replay on a replica.
# With no standby connected (a node just promoted, its replicas not yet repointed) the
# commit is local instead: waiting for a standby that does not exist would stall every
# write until one comes back (Patroni's non-strict synchronous mode, decided per commit).
SYNC_COMMIT_REMOTE_WRITE = ("SELECT set_config('synchronous_commit', CASE WHEN (SELECT count(*) "
                            "FROM pg_stat_replication) > 0 THEN 'remote_write' ELSE 'local' END, true)")

SELECT_ITEM = "SELECT id, name, price, updated_at FROM items WHERE id = $1"

# Upsert; the returned row is what the writer sees, and the WAL position after the
# commit is what a replica must have replayed before it may answer for this key.
UPSERT_ITEM = """
INSERT INTO items AS i (id, name, price, updated_at)
VALUES ($1::int, coalesce($2::text, 'item-' || $1::int), coalesce($3::numeric, 0), now())
ON CONFLICT (id) DO UPDATE
SET name = coalesce($2::text, i.name), price = coalesce($3::numeric, i.price), updated_at = now()
RETURNING id, name, price, updated_at"""

# Many prices in one transaction (a price feed tick): one commit, so all its
# notifications reach the batcher together.
UPSERT_PRICES = """
INSERT INTO items AS i (id, name, price, updated_at)
SELECT v.id, 'item-' || v.id, v.price, now() FROM unnest($1::int[], $2::numeric[]) AS v(id, price)
ON CONFLICT (id) DO UPDATE SET price = excluded.price, updated_at = now()
RETURNING i.id"""

# The insert position, not pg_current_wal_lsn(): with synchronous_commit off (as in
# the lab) the write position can still be short of the commit record just made.
CURRENT_WAL_LSN = "SELECT pg_current_wal_insert_lsn()"

# The primary's position, read before each replica health check: a replica's lag is this
# minus its replay position (its own received-minus-replayed reads ~0 once its WAL
# receiver is cut, while the primary moves on).
PRIMARY_WAL_LSN = "SELECT pg_current_wal_lsn()"

# Replica health, once a second per replica. pg_is_wal_replay_paused() raises on a
# server not in recovery, hence the CASE (its branches are evaluated lazily). A role
# without pg_read_all_stats (the service's own) sees only the receiver's pid: no row
# means no WAL receiver runs at all; its status shows when the role may see it.
REPLICA_HEALTH = """
SELECT pg_is_in_recovery() AS in_recovery,
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END AS replay_paused,
       CASE WHEN pg_is_in_recovery()
            THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) END AS lag_bytes,
       pg_last_wal_replay_lsn() AS replay_lsn,
       receiver.pid AS receiver_pid,
       receiver.status AS receiver_status
FROM (SELECT 1) AS one
LEFT JOIN pg_stat_wal_receiver AS receiver ON true"""

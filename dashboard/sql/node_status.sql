-- One round of a replica/primary probe, in one round trip. Serves PostgreSQL 10+ (the
-- pg_wal_* and pg_last_wal_* function names, pg_monitor and pg_read_all_stats arrived
-- in 10; pg_stat_wal_receiver and pg_control_system() in 9.6). LSNs come back as numeric
-- byte positions so the engine can subtract them across nodes: a replica's lag is the
-- primary's current position minus the replica's replay position.
--
-- Without pg_read_all_stats (pg_monitor grants it) the server hides every column of
-- pg_stat_replication and pg_stat_wal_receiver but pid: a primary with streaming
-- replicas would count 0. Those figures come back NULL with can_read_stats false, so
-- the probe can say "n/a (privilege)" instead of a wrong number. The receiver's pid
-- stays visible to everyone: no row at all means no WAL receiver is running.
-- system_identifier (shared by a primary and its replicas) and the postmaster's start
-- time tell nodes apart when two targets reach the same node by different DSNs.
SELECT
    pg_is_in_recovery() AS in_recovery,
    CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END AS replay_paused,
    CASE WHEN pg_is_in_recovery() THEN NULL
         ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') END AS current_lsn,
    CASE WHEN pg_is_in_recovery()
         THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), '0/0') END AS receive_lsn,
    CASE WHEN pg_is_in_recovery()
         THEN pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0') END AS replay_lsn,
    CASE WHEN pg_is_in_recovery()
         THEN extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) END AS replay_age_s,
    priv.can_read_stats,
    quote_ident(current_user) AS role_name,
    CASE WHEN priv.can_read_stats
         THEN (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming') END AS streaming_replicas,
    receiver.pid AS receiver_pid,
    receiver.status AS receiver_status,
    extract(epoch FROM clock_timestamp() - receiver.last_msg_receipt_time) AS receiver_msg_age_s,
    (SELECT extract(epoch FROM clock_timestamp() - backend_start)
       FROM pg_stat_activity WHERE backend_type = 'walreceiver' LIMIT 1) AS receiver_up_s,
    (SELECT system_identifier FROM pg_control_system()) AS system_identifier,
    extract(epoch FROM pg_postmaster_start_time()) AS started_at,
    (SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database) AS xact_total,
    current_setting('server_version_num')::int AS version_num
FROM (SELECT pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS can_read_stats) AS priv
LEFT JOIN pg_stat_wal_receiver AS receiver ON true

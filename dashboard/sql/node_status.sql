-- One round of a replica/primary probe. Serves PostgreSQL 10+ (the pg_wal_* and
-- pg_last_wal_* function names arrived in 10). LSNs come back as numeric byte
-- positions so the engine can subtract them across nodes.
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
    (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming') AS streaming_replicas,
    (SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database) AS xact_total,
    current_setting('server_version_num')::int AS version_num

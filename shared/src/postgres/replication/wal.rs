//! Where the WAL is now, and how much of it a slot keeps: SQL shared by `cdc-sync` (the slot's
//! health) and `monitor doctor`.

/// The end of the WAL logical decoding can read now: the flushed position on a primary (a
/// peek reads no further, and with asynchronous commit the written position may be ahead of
/// it), the replayed one on a standby (where logical decoding also works from Postgres 16).
pub const CURRENT_WAL_LSN: &str = "(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
     ELSE pg_current_wal_flush_lsn() END)";

/// The WAL Postgres keeps for a slot, in bytes, over `pg_replication_slots` (as `slots`): from
/// its `restart_lsn` (what `max_slot_wal_keep_size` measures) to the current position. NULL
/// when the slot has none.
pub fn retained_wal(slots: &str) -> String {
    format!("pg_wal_lsn_diff({CURRENT_WAL_LSN}, {slots}.restart_lsn)::int8")
}

/// The WAL Postgres keeps for slot `$1` (`retained_wal`).
pub fn retained_wal_sql() -> String {
    format!(
        "SELECT {} FROM pg_replication_slots s WHERE s.slot_name = $1",
        retained_wal("s")
    )
}

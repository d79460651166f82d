//! The publication and the replication slot: creating them, checking their health, reading
//! committed changes in bounded batches, and advancing the slot once BigQuery has them.

use sluice::config::CdcConfig;
use sluice::error::ErrorKind;
use sluice::postgres::pgoutput::Lsn;
use sluice::postgres::replication::{
    retained_wal, Assessment, Facts, PublicationStep, Wanted, CURRENT_WAL_LSN,
};
use sluice::postgres::PgConnection;
use sluice::{Error, Result};

fn permanent(context: &str, message: String) -> Error {
    Error::Postgres {
        context: context.to_string(),
        message,
        kind: ErrorKind::Permanent,
        source: None,
    }
}

/// What `init` found and did.
#[derive(Debug, Clone, Default)]
pub struct InitReport {
    pub publication_created: bool,
    /// The publication existed, made by another role, and covers what is configured.
    pub publication_adopted: bool,
    pub tables_added: Vec<String>,
    pub slot_created: bool,
    pub slot_lsn: Option<String>,
}

/// Checks what the role may do, then creates the publication (or adopts one its tables' owner
/// made) and the slot unless they exist; adds configured tables missing from an existing
/// publication where the role may. Anything missing fails before anything is created, with one
/// line saying what and the SQL for whoever holds the rights.
pub async fn init(conn: &PgConnection, source: &str, cdc: &CdcConfig) -> Result<InitReport> {
    let wanted = Wanted::for_source(source, cdc);
    let (publication, slot) = (&wanted.publication, &wanted.slot);
    let facts = Facts::read(conn, &wanted).await?;
    let verdict = facts.assess(&wanted);
    if !verdict.is_ready() {
        return Err(permanent(
            &format!("checking source {source} for logical replication"),
            not_ready_message(&facts, &verdict),
        ));
    }
    if let Some(why) = facts.slot.as_ref().and_then(|s| s.unusable(slot)) {
        return Err(permanent("checking the replication slot", why));
    }
    let mut report = InitReport::default();
    match verdict.publication {
        PublicationStep::Adopt => {
            // One another role made (the tables' owner, as the README's rights require).
            if let Some(p) = facts.publication.as_ref().filter(|p| !p.owned) {
                report.publication_adopted = true;
                tracing::info!(source, publication = %publication, owner = %p.owner, "publication adopted");
            }
        }
        PublicationStep::Create(sql) => {
            conn.batch_execute(&format!("CREATE PUBLICATION {publication}"), &sql)
                .await?;
            report.publication_created = true;
        }
        PublicationStep::Add(steps) => {
            for (what, sql) in steps {
                conn.batch_execute(&format!("adding {what} to {publication}"), &sql)
                    .await?;
                report.tables_added.push(what);
            }
        }
    }
    if facts.slot.is_none() {
        let r = conn
            .query_one(
                &format!("creating replication slot {slot}"),
                "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
                &[slot],
            )
            .await?;
        report.slot_created = true;
        report.slot_lsn = Some(r.get(0));
    }
    Ok(report)
}

/// The first line says what is missing; then the SQL, by who must run it; then what to do.
fn not_ready_message(facts: &Facts, verdict: &Assessment) -> String {
    let mut lines = vec![format!(
        "role {} cannot replicate from database {}: {}",
        facts.role,
        facts.database,
        verdict.missing.join("; ")
    )];
    let sql = verdict.sql_block();
    if !sql.is_empty() {
        lines.push(sql.trim_end().to_string());
    }
    lines.push("then run `cdc-sync init` again".into());
    lines.join("\n")
}

/// The (schema, table) pairs a publication covers now.
pub async fn publication_tables(
    conn: &PgConnection,
    publication: &str,
) -> Result<Vec<(String, String)>> {
    let exists = conn
        .query_opt(
            "reading publications",
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await?
        .is_some();
    if !exists {
        return Err(permanent(
            "reading the publication",
            format!("publication {publication} does not exist in this database; run `cdc-sync init` to create it"),
        ));
    }
    let rows = conn
        .query(
            "reading the publication's tables",
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2",
            &[&publication],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The slot's position and how much WAL it holds back.
#[derive(Debug, Clone, Copy)]
pub struct SlotHealth {
    pub confirmed_flush: Lsn,
    /// WAL Postgres keeps for the slot: from its `restart_lsn` to the server's current
    /// position (what `max_slot_wal_keep_size` measures), not from `confirmed_flush_lsn`.
    pub retained_wal_bytes: i64,
}

/// A slot as `pg_replication_slots` shows it, read through `to_jsonb` so the columns later
/// versions added (`conflicting` in 16, `invalidation_reason` in 17) are read where they exist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlotRow {
    /// The slot belongs to the database we are connected to.
    pub same_database: bool,
    pub confirmed_flush: Option<Lsn>,
    pub wal_status: Option<String>,
    /// Postgres 16+: invalidated by a recovery conflict on a standby.
    pub conflicting: Option<bool>,
    /// Postgres 17+: why the slot was invalidated.
    pub invalidation_reason: Option<String>,
    pub retained_wal_bytes: i64,
}

impl SlotRow {
    /// Why Postgres no longer keeps what the slot needs, if it does not.
    pub fn invalidated(&self) -> Option<String> {
        if let Some(r) = &self.invalidation_reason {
            return Some(format!("invalidation_reason {r}"));
        }
        if self.conflicting == Some(true) {
            return Some("a recovery conflict on the standby".into());
        }
        if self.wal_status.as_deref() == Some("lost") {
            return Some(
                "wal_status lost: the server removed WAL the slot still needed, see max_slot_wal_keep_size"
                    .into(),
            );
        }
        if self.confirmed_flush.is_none() {
            return Some("it has no confirmed position".into());
        }
        None
    }
}

/// Reads the slot, if it exists.
pub async fn read(conn: &PgConnection, slot: &str) -> Result<Option<SlotRow>> {
    let row = conn
        .query_opt(
            "checking the replication slot",
            &format!(
                "SELECT to_jsonb(s)::text, s.database::text = current_database(), {}
                 FROM pg_replication_slots s WHERE s.slot_name = $1",
                retained_wal("s")
            ),
            &[&slot],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let (j, same, retained): (String, Option<bool>, Option<i64>) =
        (row.get(0), row.get(1), row.get(2));
    let j: serde_json::Value = serde_json::from_str(&j)
        .map_err(|e| permanent("checking the replication slot", e.to_string()))?;
    let text = |k: &str| j[k].as_str().map(String::from);
    Ok(Some(SlotRow {
        same_database: same == Some(true),
        confirmed_flush: text("confirmed_flush_lsn").and_then(|l| l.parse().ok()),
        wal_status: text("wal_status"),
        conflicting: j["conflicting"].as_bool(),
        invalidation_reason: text("invalidation_reason"),
        retained_wal_bytes: retained.unwrap_or(0),
    }))
}

/// Reads the slot; a missing or invalidated slot is a clear error with the recovery command
/// (a run checks this first, with the ledger, in `continuity`).
pub async fn health(conn: &PgConnection, slot: &str) -> Result<SlotHealth> {
    let ctx = "checking the replication slot";
    let Some(row) = read(conn, slot).await? else {
        return Err(missing(slot));
    };
    if !row.same_database {
        return Err(permanent(
            ctx,
            format!("replication slot {slot} belongs to another database"),
        ));
    }
    if let Some(why) = row.invalidated() {
        return Err(permanent(
            ctx,
            format!("replication slot {slot} was invalidated ({why}); run `cdc-sync resync --all` to replace it and snapshot every table"),
        ));
    }
    Ok(SlotHealth {
        confirmed_flush: row.confirmed_flush.unwrap_or_default(),
        retained_wal_bytes: row.retained_wal_bytes,
    })
}

/// A source whose slot was never made: `init` makes it.
pub fn missing(slot: &str) -> Error {
    permanent(
        "checking the replication slot",
        format!("replication slot {slot} does not exist; run `cdc-sync init` to create it (then the first run snapshots every table)"),
    )
}

/// The server's current WAL position (`CURRENT_WAL_LSN`).
pub async fn wal_position(conn: &PgConnection) -> Result<Lsn> {
    let r = conn
        .query_one(
            "reading the server's WAL position",
            &format!("SELECT {CURRENT_WAL_LSN}::text"),
            &[],
        )
        .await?;
    let text: String = r.get(0);
    text.parse()
        .map_err(|e: sluice::postgres::pgoutput::DecodeError| {
            permanent("reading the server's WAL position", e.0)
        })
}

/// Drops a slot Postgres invalidated, so `init` can make a new one.
pub async fn drop_slot(conn: &PgConnection, slot: &str) -> Result<()> {
    conn.query_one(
        &format!("dropping replication slot {slot}"),
        "SELECT pg_drop_replication_slot($1)::text",
        &[&slot],
    )
    .await?;
    Ok(())
}

/// The query that reads up to `$3` rows (whole transactions) of the changes committed before
/// `$2` (NULL: all), without consuming them.
pub const PEEK_SQL: &str =
    "SELECT data FROM pg_logical_slot_peek_binary_changes($1, $2::text::pg_lsn, $3, \
     'proto_version', '1', 'publication_names', $4, 'binary', 'true')";

/// Moves the slot past everything up to `lsn`: Postgres may then recycle that WAL.
pub async fn advance(conn: &PgConnection, slot: &str, lsn: Lsn) -> Result<()> {
    conn.query_one(
        &format!("advancing slot {slot} to {lsn}"),
        "SELECT end_lsn::text FROM pg_replication_slot_advance($1, $2::text::pg_lsn)",
        &[&slot, &lsn.to_string()],
    )
    .await?;
    Ok(())
}

/// A slot in use by another session gives this error: say that another run holds it.
pub fn explain_active(e: Error, slot: &str) -> Error {
    match &e {
        Error::Postgres { message, .. } if message.contains("is active for PID") => permanent(
            "reading the replication slot",
            format!("slot {slot} is in use by another session (is another cdc-sync run still going?): {message}"),
        ),
        _ => e,
    }
}

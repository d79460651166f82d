//! The publication and the replication slot: creating them, checking their health, reading
//! committed changes in bounded batches, and advancing the slot once BigQuery has them.

use sluice::catalog::qualify;
use sluice::config::CdcConfig;
use sluice::error::ErrorKind;
use sluice::postgres::catalog::quote_ident;
use sluice::postgres::pgoutput::Lsn;
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
    pub tables_added: Vec<String>,
    pub slot_created: bool,
    pub slot_lsn: Option<String>,
}

/// Checks that logical decoding can work here, saying exactly what is missing.
pub async fn preflight(conn: &PgConnection, cdc: &CdcConfig) -> Result<()> {
    let ctx = "checking logical replication";
    let row = conn
        .query_one(
            ctx,
            "SELECT current_setting('wal_level'), current_setting('max_replication_slots')::int,
                    r.rolsuper, r.rolreplication,
                    EXISTS (SELECT 1 FROM pg_roles g WHERE g.rolname = 'cloudsqlsuperuser'),
                    current_user::text
             FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await?;
    let settings = Settings {
        wal_level: row.get(0),
        max_slots: row.get(1),
        superuser: row.get(2),
        replication: row.get(3),
        cloud_sql: row.get(4),
        user: row.get(5),
    };
    match settings.problem(cdc.all_tables || !cdc.schemas.is_empty()) {
        Some(p) => Err(permanent(ctx, p)),
        None => Ok(()),
    }
}

/// What the server says about logical replication and the current role.
#[derive(Debug, Clone)]
struct Settings {
    wal_level: String,
    max_slots: i32,
    superuser: bool,
    replication: bool,
    /// A Cloud SQL instance (its flags differ from postgresql.conf).
    cloud_sql: bool,
    user: String,
}

impl Settings {
    /// The first thing that stops logical replication, with its fix.
    fn problem(&self, needs_superuser: bool) -> Option<String> {
        let user = &self.user;
        if self.wal_level != "logical" {
            let fix = if self.cloud_sql {
                "set the Cloud SQL flag cloudsql.logical_decoding=on (the instance restarts)"
            } else {
                "set wal_level = logical in postgresql.conf and restart the server"
            };
            return Some(format!(
                "wal_level is `{}`, logical decoding needs `logical`: {fix}",
                self.wal_level
            ));
        }
        if self.max_slots < 1 {
            return Some(
                "max_replication_slots is 0: raise it (and restart) to create a slot".into(),
            );
        }
        if !self.superuser && !self.replication {
            return Some(format!(
                "role {user} may not use replication slots: ALTER ROLE {user} WITH REPLICATION"
            ));
        }
        if needs_superuser && !self.superuser {
            return Some(format!(
                "a publication FOR ALL TABLES or TABLES IN SCHEMA needs a superuser, and {user} is not; list `tables:` instead"
            ));
        }
        None
    }
}

/// Creates the publication and the slot unless they exist; adds configured tables missing from
/// an existing publication.
pub async fn init(
    conn: &PgConnection,
    cdc: &CdcConfig,
    publication: &str,
    slot: &str,
) -> Result<InitReport> {
    preflight(conn, cdc).await?;
    let ctx = "creating the publication";
    let mut report = InitReport::default();
    let exists = conn
        .query_opt(
            ctx,
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await?
        .is_some();
    let tables: Vec<String> = cdc
        .tables
        .iter()
        .map(|t| {
            let (s, t) = qualify(t);
            format!("{}.{}", quote_ident(&s), quote_ident(&t))
        })
        .collect();
    if !exists {
        let what = if cdc.all_tables {
            "ALL TABLES".to_string()
        } else if !cdc.schemas.is_empty() {
            let s: Vec<String> = cdc.schemas.iter().map(|s| quote_ident(s)).collect();
            format!("TABLES IN SCHEMA {}", s.join(", "))
        } else {
            format!("TABLE {}", tables.join(", "))
        };
        conn.batch_execute(
            &format!("CREATE PUBLICATION {publication}"),
            &format!("CREATE PUBLICATION {} FOR {what}", quote_ident(publication)),
        )
        .await?;
        report.publication_created = true;
    } else if !cdc.tables.is_empty() {
        let present = publication_tables(conn, publication).await?;
        for name in &cdc.tables {
            let (s, t) = qualify(name);
            if !present.contains(&(s.clone(), t.clone())) {
                conn.batch_execute(
                    &format!("adding {s}.{t} to {publication}"),
                    &format!(
                        "ALTER PUBLICATION {} ADD TABLE {}.{}",
                        quote_ident(publication),
                        quote_ident(&s),
                        quote_ident(&t)
                    ),
                )
                .await?;
                report.tables_added.push(format!("{s}.{t}"));
            }
        }
    }
    let slot_row = conn
        .query_opt(
            "reading replication slots",
            "SELECT plugin::text, database::text = current_database() FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
    match slot_row {
        Some(r) => {
            let (plugin, same_db): (Option<String>, Option<bool>) = (r.get(0), r.get(1));
            if plugin.as_deref() != Some("pgoutput") || same_db != Some(true) {
                return Err(permanent(
                    "checking the replication slot",
                    format!("slot {slot} exists but is not a pgoutput slot of this database; set `cdc.slot` to another name"),
                ));
            }
        }
        None => {
            let r = conn
                .query_one(
                    &format!("creating replication slot {slot}"),
                    "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
                    &[&slot],
                )
                .await?;
            report.slot_created = true;
            report.slot_lsn = Some(r.get(0));
        }
    }
    Ok(report)
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
    /// `pg_current_wal_lsn() - confirmed_flush_lsn`.
    pub retained_wal_bytes: i64,
}

/// Reads the slot; a missing or invalidated slot is a clear error with the recovery command.
pub async fn health(conn: &PgConnection, slot: &str) -> Result<SlotHealth> {
    let ctx = "checking the replication slot";
    let row = conn
        .query_opt(
            ctx,
            "SELECT confirmed_flush_lsn::text, wal_status,
                    pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::int8,
                    database::text = current_database()
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
    let Some(row) = row else {
        return Err(permanent(
            ctx,
            format!("replication slot {slot} does not exist; run `cdc-sync init` to create it (then the first run snapshots every table)"),
        ));
    };
    let (lsn, wal_status, retained, same_db): (
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<bool>,
    ) = (row.get(0), row.get(1), row.get(2), row.get(3));
    if same_db != Some(true) {
        return Err(permanent(
            ctx,
            format!("replication slot {slot} belongs to another database"),
        ));
    }
    if wal_status.as_deref() == Some("lost") || lsn.is_none() {
        return Err(permanent(
            ctx,
            format!(
                "replication slot {slot} was invalidated (the server removed WAL it still needed, see max_slot_wal_keep_size); \
                 recover with: SELECT pg_drop_replication_slot('{slot}'); then `cdc-sync init` and `cdc-sync resync --all`"
            ),
        ));
    }
    let confirmed_flush = lsn
        .unwrap_or_default()
        .parse()
        .map_err(|e: sluice::postgres::pgoutput::DecodeError| permanent(ctx, e.0))?;
    Ok(SlotHealth {
        confirmed_flush,
        retained_wal_bytes: retained.unwrap_or(0),
    })
}

/// The query that reads up to `$2` changes (whole transactions) without consuming them.
pub const PEEK_SQL: &str = "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, \
     'proto_version', '1', 'publication_names', $3, 'binary', 'true')";

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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            wal_level: "logical".into(),
            max_slots: 10,
            superuser: false,
            replication: true,
            cloud_sql: false,
            user: "app".into(),
        }
    }

    #[test]
    fn preflight_names_what_is_missing_and_the_fix() {
        assert_eq!(settings().problem(false), None);
        let replica = Settings {
            wal_level: "replica".into(),
            ..settings()
        };
        assert!(replica
            .problem(false)
            .unwrap()
            .contains("wal_level = logical in postgresql.conf"));
        let cloud = Settings {
            cloud_sql: true,
            ..replica
        };
        assert!(cloud
            .problem(false)
            .unwrap()
            .contains("cloudsql.logical_decoding=on"));
        let no_repl = Settings {
            replication: false,
            ..settings()
        };
        assert!(no_repl
            .problem(false)
            .unwrap()
            .contains("ALTER ROLE app WITH REPLICATION"));
        assert!(settings()
            .problem(true)
            .unwrap()
            .contains("needs a superuser"));
        let no_slots = Settings {
            max_slots: 0,
            ..settings()
        };
        assert!(no_slots
            .problem(false)
            .unwrap()
            .contains("max_replication_slots"));
    }
}

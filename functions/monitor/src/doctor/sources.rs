//! Each source, as the workers reach it: over its TLS mode, the tables pg-copy reads, and
//! what CDC needs (wal_level, the role's rights, the publication, the slot, retained WAL).

use std::collections::BTreeMap;

use sluice::config::{Pipeline, Target};
use sluice::postgres::PgConnection;
use sluice::secret::DsnRef;
use sluice::secret_manager::resolve_dsn;
use sluice::Result;

use super::report::{Mark, Report};

/// Each source: reachable over its TLS mode, and what its tables and CDC need.
pub(super) async fn sources(
    r: &mut Report,
    p: &Pipeline,
    t: &Target,
    resolved: &BTreeMap<String, Option<DsnRef>>,
) {
    for (name, source) in &p.sources {
        let what = format!("source {name}");
        let Some(Some(dsn)) = resolved.get(name) else {
            r.add(
                Mark::Skip,
                &what,
                "its DSN is not available here (see above)",
            );
            continue;
        };
        let dsn = match resolve_dsn(dsn, t).await {
            Ok(d) => d,
            Err(e) => {
                r.add(
                    Mark::Skip,
                    &what,
                    format!("cannot read its DSN: {}", e.into_message()),
                );
                continue;
            }
        };
        if let Some(dir) = absent_socket(&dsn) {
            r.add(
                Mark::Skip,
                &what,
                format!(
                    "its DSN connects through the socket directory {dir}, which exists only where the Cloud SQL connector mounts it (the Cloud Run jobs); to check it from here, run `cloud-sql-proxy <PROJECT:REGION:INSTANCE>` and set the DSN's variable to postgres://USER:PASSWORD@127.0.0.1:5432/DB"
                ),
            );
            continue;
        }
        let conn = match sluice::postgres::connect(name, &dsn, "sluice-doctor", &t.timeouts).await {
            Ok(c) => c,
            Err(e) => {
                r.add(Mark::Fail, &what, e.into_message());
                continue;
            }
        };
        match tls_line(&conn).await {
            Ok((mark, text)) => r.add(mark, &what, text),
            Err(e) => r.add(Mark::Fail, &what, e.into_message()),
        }
        let tables: Vec<String> = source.tables.keys().cloned().collect();
        if !tables.is_empty() {
            match table_rights(&conn, source, &tables).await {
                Ok(missing) if missing.is_empty() => r.add(
                    Mark::Ok,
                    format!("{what} tables"),
                    format!("{} readable", tables.join(", ")),
                ),
                Ok(missing) => r.add(Mark::Fail, format!("{what} tables"), missing.join("; ")),
                Err(e) => r.add(Mark::Fail, format!("{what} tables"), e.into_message()),
            }
        }
        if let Some(cdc) = &source.cdc {
            for (mark, line) in cdc_lines(&conn, name, cdc).await {
                r.add(mark, format!("{what} cdc"), line);
            }
        }
    }
}

/// The DSN's Unix socket directory, when it has one and it is not on this machine.
fn absent_socket(dsn: &sluice::secret::Secret) -> Option<String> {
    let (config, _) = sluice::postgres::tls::parse(dsn.expose()).ok()?;
    config.get_hosts().iter().find_map(|h| match h {
        tokio_postgres::config::Host::Unix(dir) if !dir.exists() => Some(dir.display().to_string()),
        _ => None,
    })
}

/// Whether the session is encrypted, as the server sees it, and what the mode checked.
async fn tls_line(conn: &PgConnection) -> Result<(Mark, String)> {
    let row = conn
        .query_one(
            "reading the session's TLS",
            "SELECT COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false),
                    (SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid())",
            &[],
        )
        .await?;
    let (ssl, version): (bool, Option<String>) = (row.get(0), row.get(1));
    let s = conn.tls();
    let at = format!("reachable at {}", conn.endpoint());
    Ok(if ssl {
        (
            Mark::Ok,
            format!(
                "{at} over {} ({})",
                version.unwrap_or_else(|| "TLS".into()),
                s.describe()
            ),
        )
    } else if s.unix_socket {
        (Mark::Ok, format!("{at} ({})", s.describe()))
    } else if loopback(conn.host()) {
        (
            Mark::Ok,
            format!(
                "{at} without TLS over loopback, where nothing crosses a network ({})",
                s.describe()
            ),
        )
    } else {
        (
            Mark::Warn,
            format!(
                "{at} without TLS ({}): the password and the data cross the network in clear — turn ssl on in the server and set sslmode=verify-full",
                s.describe()
            ),
        )
    })
}

/// The host is this machine.
fn loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Tables pg-copy reads that are missing or not readable by the role, each with its fix.
async fn table_rights(
    conn: &PgConnection,
    source: &sluice::config::Source,
    tables: &[String],
) -> Result<Vec<String>> {
    let mut missing = vec![];
    for table in tables {
        let schema = source.tables[table].schema.clone();
        let row = conn
            .query_one(
                "checking table rights",
                "SELECT c.oid IS NOT NULL,
                        c.oid IS NOT NULL AND has_table_privilege(c.oid, 'SELECT'),
                        current_user::text
                 FROM (SELECT 1) one
                 LEFT JOIN pg_class c ON c.relname = $2
                   AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)",
                &[&schema, &table],
            )
            .await?;
        let (exists, select, user): (bool, bool, String) = (row.get(0), row.get(1), row.get(2));
        let q = format!(
            "{}.{}",
            sluice::postgres::catalog::quote_ident(&schema),
            sluice::postgres::catalog::quote_ident(table)
        );
        if !exists {
            missing.push(format!("{schema}.{table} does not exist"));
        } else if !select {
            missing.push(format!(
                "{user} may not read {schema}.{table} — GRANT SELECT ON {q} TO {};",
                sluice::postgres::catalog::quote_ident(&user)
            ));
        }
    }
    Ok(missing)
}

/// A CDC source's server settings, the role's rights (the assessment `cdc-sync init` makes,
/// with the SQL for whoever must run it), the publication, the slot and the WAL it retains.
async fn cdc_lines(
    conn: &PgConnection,
    source: &str,
    cdc: &sluice::config::CdcConfig,
) -> Vec<(Mark, String)> {
    use sluice::postgres::replication::{Facts, PublicationStep, Wanted};
    let wanted = Wanted::for_source(source, cdc);
    let facts = match Facts::read(conn, &wanted).await {
        Ok(f) => f,
        Err(e) => return vec![(Mark::Fail, e.into_message())],
    };
    let mut out = vec![];
    if facts.wal_level == "logical" {
        out.push((Mark::Ok, "wal_level = logical".to_string()));
    }
    let a = facts.assess(&wanted);
    let (publication, slot) = (&wanted.publication, &wanted.slot);
    if a.is_ready() {
        out.push((
            Mark::Ok,
            format!(
                "role {} has what cdc-sync needs (replication, and SELECT on the {} tables it replicates)",
                facts.role,
                facts.tables.len()
            ),
        ));
        match a.publication {
            PublicationStep::Adopt => out.push((Mark::Ok, format!("publication {publication} covers what pipeline.yaml replicates"))),
            PublicationStep::Create(_) => out.push((Mark::Fail, format!("publication {publication} does not exist — run `cdc-sync init --source {source}` (the role may create it)"))),
            PublicationStep::Add(missing) => {
                let what: Vec<String> = missing.into_iter().map(|(w, _)| w).collect();
                out.push((Mark::Fail, format!("publication {publication} lacks {} — run `cdc-sync init --source {source}`", what.join(", "))));
            }
        }
    } else {
        out.push((
            Mark::Fail,
            format!(
                "{} — as `cdc-sync init` prints it, run:\n{}",
                a.missing.join("; "),
                a.sql_block().trim_end()
            ),
        ));
    }
    match &facts.slot {
        None => out.push((
            Mark::Fail,
            format!("slot {slot} does not exist — run `cdc-sync init --source {source}` (the first run then snapshots every table)"),
        )),
        Some(s) if s.unusable(slot).is_some() => {
            out.push((Mark::Fail, s.unusable(slot).unwrap_or_default()))
        }
        Some(s) if s.wal_status.as_deref() == Some("lost") => out.push((
            Mark::Fail,
            format!("slot {slot} was invalidated by the server — SELECT pg_drop_replication_slot('{slot}'); then `cdc-sync init` and `cdc-sync resync --all`"),
        )),
        Some(_) => out.push(retained_wal(conn, slot, cdc.retained_wal_warn_mib).await),
    }
    out
}

/// The WAL the slot holds back, against the pipeline's warning level.
async fn retained_wal(conn: &PgConnection, slot: &str, warn_mib: u64) -> (Mark, String) {
    let row = conn
        .query_one(
            "reading the slot's retained WAL",
            &sluice::postgres::replication::retained_wal_sql(),
            &[&slot],
        )
        .await;
    match row {
        Err(e) => (Mark::Fail, e.into_message()),
        Ok(row) => {
            let bytes: Option<i64> = row.get(0);
            let mib = bytes.unwrap_or(0) as f64 / (1024.0 * 1024.0);
            if mib > warn_mib as f64 {
                (
                    Mark::Warn,
                    format!("slot {slot} retains {mib:.1} MiB of WAL, above retained_wal_warn_mib ({warn_mib}): is cdc-sync running?"),
                )
            } else {
                (Mark::Ok, format!("slot {slot} retains {mib:.1} MiB of WAL"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_that_is_not_here_and_loopback_hosts_are_told_apart() {
        let dsn = |s: &str| sluice::secret::Secret::new(s);
        assert_eq!(
            absent_socket(&dsn(
                "postgres://app:pw@/shop?host=/cloudsql/p:us-central1:shop"
            )),
            Some("/cloudsql/p:us-central1:shop".to_string())
        );
        assert_eq!(absent_socket(&dsn("postgres://app:pw@10.0.0.5/shop")), None);
        assert_eq!(
            absent_socket(&dsn("postgres://app:pw@/shop?host=/tmp")),
            None
        );
        assert!(loopback("127.0.0.1") && loopback("::1") && loopback("localhost"));
        assert!(!loopback("10.0.0.5") && !loopback("db.internal") && !loopback("/cloudsql/p:r:i"));
    }
}

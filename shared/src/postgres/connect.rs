//! Connecting to a source database, with transient failures retried and secrets kept out of messages.

use std::time::Duration;

use tokio_postgres::{Client, NoTls};

use crate::error::{Error, Result};
use crate::retry;
use crate::secret::Secret;

/// A live connection; the driver task ends when this is dropped.
pub struct PgConnection {
    pub client: Client,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Connects to `dsn` (a `postgres://` URL or key=value string). `label` names the source in
/// errors. Sessions run in UTC so date windows and timestamp text are zone-independent.
pub async fn connect(label: &str, dsn: &Secret, app: &str) -> Result<PgConnection> {
    let mut config: tokio_postgres::Config = dsn.expose().parse().map_err(|e| {
        Error::config(format!(
            "source {label}: the connection string is not valid ({e}); expected postgres://user:password@host:port/db"
        ))
    })?;
    config
        .application_name(app)
        .connect_timeout(Duration::from_secs(10))
        .options("-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=3");
    let where_ = describe(&config);
    retry::transient(&format!("connecting to source {label}"), || {
        let config = config.clone();
        let where_ = where_.clone();
        async move {
            let (client, connection) = config.connect(NoTls).await.map_err(|e| {
                Error::postgres(format!("connecting to source {label} at {where_}"), e)
            })?;
            let driver = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "postgres connection ended");
                }
            });
            Ok(PgConnection { client, driver })
        }
    })
    .await
}

/// `host:port/db as user`, never the password.
fn describe(c: &tokio_postgres::Config) -> String {
    let host = c
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{host}:{port}/{} as {}",
        c.get_dbname().unwrap_or("?"),
        c.get_user().unwrap_or("?")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_has_no_password() {
        let c: tokio_postgres::Config = "postgres://alice:hunter2@db.internal:6543/shop"
            .parse()
            .unwrap();
        let d = describe(&c);
        assert_eq!(d, "db.internal:6543/shop as alice");
        assert!(!d.contains("hunter2"));
    }

    #[tokio::test]
    async fn bad_connection_string_is_a_config_error_without_the_secret() {
        let dsn = Secret::new("postgres://bob:s3cret@host:notaport/db");
        let err = connect("shop", &dsn, "test").await.err().unwrap();
        let msg = err.to_string();
        assert!(msg.starts_with("config: source shop"), "{msg}");
        assert!(!msg.contains("s3cret"), "{msg}");
    }
}

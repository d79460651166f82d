//! Connecting to a source database, and every statement on it, in bounded time: transient
//! failures retried, secrets kept out of messages.
//!
//! tokio-postgres bounds only the TCP connect (`connect_timeout`), not the startup and
//! authentication after it, and has no timeout on a statement's answer; a server or proxy that
//! accepts the connection and never answers would hang a worker. So the whole connect is
//! bounded here, TCP keepalives notice a dead peer, and `PgConnection`'s statements and streams
//! each get `timeouts.statement` to answer (for a stream: for each next part of its answer).
//! TLS follows the DSN's `sslmode` (see `tls`): a certificate the mode refuses, or a server
//! that refuses the mode, fails at once with what was checked, and is not retried.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

use crate::config::Timeouts;
use crate::error::{Error, ErrorKind, Result};
use crate::retry;
use crate::secret::Secret;
use crate::time::secs;

use super::tls::{self, TlsSettings};

/// A live connection; the driver task ends when this is dropped. Statements go through its
/// methods, each bounded by `timeouts.statement` and named by `what` in errors.
pub struct PgConnection {
    client: Client,
    driver: tokio::task::JoinHandle<()>,
    /// `host:port/db as user`, never the password.
    endpoint: String,
    statement: Duration,
    tls: TlsSettings,
    /// The DSN's first host: a name, an address or a socket directory.
    host: String,
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Connects to `dsn` (a `postgres://` URL or key=value string). `label` names the source in
/// errors. Sessions run in UTC so date windows and timestamp text are zone-independent.
pub async fn connect(
    label: &str,
    dsn: &Secret,
    app: &str,
    timeouts: &Timeouts,
) -> Result<PgConnection> {
    let (mut config, tls) =
        tls::parse(dsn.expose()).map_err(|m| Error::config(format!("source {label}: {m}")))?;
    let connector =
        tls::connector(&tls).map_err(|m| Error::config(format!("source {label}: {m}")))?;
    config
        .application_name(app)
        .connect_timeout(timeouts.connect)
        // A peer that vanished (a firewall dropping packets) is noticed in about 30 s.
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(15))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(30))
        .options("-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=3");
    let endpoint = describe(&config);
    // Every host of the DSN may take the whole connect time.
    let hosts = config
        .get_hosts()
        .len()
        .max(config.get_hostaddrs().len())
        .max(1) as u32;
    let context = format!("connecting to source {label} at {endpoint}");
    let host = first_host(&config);
    retry::transient(&context, || {
        let config = config.clone();
        let context = context.clone();
        let endpoint = endpoint.clone();
        let connector = connector.clone();
        let tls = tls.clone();
        let host = host.clone();
        async move {
            let connected = tokio::time::timeout(timeouts.connect * hosts, config.connect(connector))
                .await
                .map_err(|_| Error::Postgres {
                    context: context.clone(),
                    message: format!(
                        "accepted the connection but did not answer its startup within {} (timeouts.connect of the target)",
                        secs(timeouts.connect)
                    ),
                    kind: ErrorKind::Unanswered,
                    source: None,
                })?;
            let (client, connection) = connected.map_err(|e| {
                if timed_out(&e) {
                    Error::Postgres {
                        context: context.clone(),
                        message: format!(
                            "could not connect within {} (timeouts.connect of the target)",
                            secs(timeouts.connect)
                        ),
                        kind: ErrorKind::Unanswered,
                        source: Some(e),
                    }
                } else if let Some(message) = tls::explain(&e, &tls, &host) {
                    Error::Postgres {
                        context: context.clone(),
                        message,
                        kind: ErrorKind::Permanent,
                        source: Some(e),
                    }
                } else {
                    refused_without_tls(Error::postgres(context.clone(), e), &tls)
                }
            })?;
            let lost = endpoint.clone();
            let driver = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(endpoint = %lost, error = %e, "postgres connection lost");
                }
            });
            Ok(PgConnection {
                client,
                driver,
                endpoint,
                statement: timeouts.statement,
                tls,
                host,
            })
        }
    })
    .await
}

/// A server whose pg_hba.conf admits only TLS (`hostssl`) refuses a client that did not ask
/// for it with "no encryption": say which setting to change.
fn refused_without_tls(e: Error, tls: &TlsSettings) -> Error {
    match e {
        Error::Postgres {
            context,
            message,
            kind,
            source,
        } if message.contains("no encryption") => Error::Postgres {
            context,
            message: format!(
                "{message}: the server accepts this connection only over TLS, and sslmode={} did not use it (set sslmode=require or stronger in the DSN)",
                tls.mode.as_str()
            ),
            kind,
            source,
        },
        e => e,
    }
}

/// A socket-level timeout (tokio-postgres' `connect_timeout`) somewhere in the error's causes.
fn timed_out(e: &tokio_postgres::Error) -> bool {
    crate::error::causes(e).any(|s| {
        s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    })
}

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl PgConnection {
    /// `host:port/db as user`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The DSN's first host: a name, an address or a socket directory.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TLS settings the connection was opened with.
    pub fn tls(&self) -> &TlsSettings {
        &self.tls
    }

    fn unanswered(&self, what: &str) -> Error {
        Error::Postgres {
            context: what.to_string(),
            message: format!(
                "{} did not answer within {} (timeouts.statement of the target)",
                self.endpoint,
                secs(self.statement)
            ),
            kind: ErrorKind::Unanswered,
            source: None,
        }
    }

    /// Awaits a statement's answer for at most `timeouts.statement`.
    async fn answer<T>(
        &self,
        what: &str,
        f: impl Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.statement, f).await {
            Ok(r) => r.map_err(|e| Error::postgres(what, e)),
            Err(_) => Err(self.unanswered(what)),
        }
    }

    /// Runs statements without parameters (several separated by `;`).
    pub async fn batch_execute(&self, what: &str, sql: &str) -> Result<()> {
        self.answer(what, self.client.batch_execute(sql)).await
    }

    /// Runs one statement; returns the rows it changed.
    pub async fn execute(&self, what: &str, sql: &str, params: Params<'_>) -> Result<u64> {
        self.answer(what, self.client.execute(sql, params)).await
    }

    /// Every row of a query.
    pub async fn query(&self, what: &str, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        self.answer(what, self.client.query(sql, params)).await
    }

    /// The one row of a query.
    pub async fn query_one(&self, what: &str, sql: &str, params: Params<'_>) -> Result<Row> {
        self.answer(what, self.client.query_one(sql, params)).await
    }

    /// The row of a query, if it has one.
    pub async fn query_opt(
        &self,
        what: &str,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>> {
        self.answer(what, self.client.query_opt(sql, params)).await
    }

    /// A query's rows as they arrive, each within `timeouts.statement`.
    pub async fn query_stream(
        &self,
        what: &str,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Answer<tokio_postgres::RowStream>> {
        let rows = self
            .answer(what, self.client.query_raw(sql, params.iter().copied()))
            .await?;
        Ok(self.bounded(what, rows))
    }

    /// `COPY … TO STDOUT`: the data as it arrives, each chunk within `timeouts.statement`.
    pub async fn copy_out(
        &self,
        what: &str,
        sql: &str,
    ) -> Result<Answer<tokio_postgres::CopyOutStream>> {
        let data = self.answer(what, self.client.copy_out(sql)).await?;
        Ok(self.bounded(what, data))
    }

    fn bounded<S>(&self, what: &str, inner: S) -> Answer<S> {
        Answer {
            inner: Box::pin(inner),
            deadline: Box::pin(tokio::time::sleep(self.statement)),
            waiting: false,
            unanswered: Some(self.unanswered(what)),
            what: what.to_string(),
            limit: self.statement,
        }
    }
}

/// A stream of a statement's answer that fails (once, then ends) when the server leaves the
/// reader waiting longer than the statement timeout for the next part. Time the reader spends
/// away (writing Parquet) does not count.
pub struct Answer<S> {
    inner: Pin<Box<S>>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// The reader is waiting for the next part since the deadline was set.
    waiting: bool,
    /// The error to give when the deadline passes (taken when given).
    unanswered: Option<Error>,
    what: String,
    limit: Duration,
}

impl<S, T> Stream for Answer<S>
where
    S: Stream<Item = std::result::Result<T, tokio_postgres::Error>>,
{
    type Item = Result<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(_) = this.unanswered.as_ref() else {
            return Poll::Ready(None);
        };
        if let Poll::Ready(item) = this.inner.as_mut().poll_next(cx) {
            this.waiting = false;
            return Poll::Ready(item.map(|r| r.map_err(|e| Error::postgres(&this.what, e))));
        }
        if !this.waiting {
            this.waiting = true;
            let at = tokio::time::Instant::now() + this.limit;
            this.deadline.as_mut().reset(at);
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(this.unanswered.take().map(Err)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The first host of the DSN: a name, an address or a socket directory.
fn first_host(c: &tokio_postgres::Config) -> String {
    c.get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into())
}

/// `host:port/db as user`, never the password.
fn describe(c: &tokio_postgres::Config) -> String {
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}:{port}/{} as {}",
        first_host(c),
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
        let err = connect("shop", &dsn, "test", &Timeouts::default())
            .await
            .err()
            .unwrap();
        let msg = err.to_string();
        assert!(msg.starts_with("config: source shop"), "{msg}");
        assert!(!msg.contains("s3cret"), "{msg}");
    }
}

//! The one error type of the library, classified as transient (retry) or permanent (fail fast).

use std::fmt;

/// Whether trying the same thing again can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Network blips, 5xx, rate limits, serialization failures: retry with backoff, then fail the run.
    Transient,
    /// Bad config, permissions, missing tables, bad data: fail fast with a clear message.
    Permanent,
    /// An endpoint did not answer within its timeout (a firewall dropping packets, a stuck
    /// proxy): retried, but only twice, since each try costs the whole timeout.
    Unanswered,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Transient => "transient",
            ErrorKind::Permanent => "permanent",
            ErrorKind::Unanswered => "unanswered",
        })
    }
}

/// Errors of the sluice library. Each message says what failed and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `pipeline.yaml` (or a command-line value) is wrong; the message names the key and line.
    #[error("config: {0}")]
    Config(String),

    /// A Postgres column has a type sluice cannot map to BigQuery.
    #[error("unsupported type: column {table}.{column} has type {pg_type}, which sluice does not map to BigQuery (set `on_unsupported: skip` on the table to skip such columns)")]
    UnsupportedType {
        table: String,
        column: String,
        pg_type: String,
    },

    /// A value cannot be represented in the BigQuery column chosen for it.
    #[error("value out of range: {table}.{column}: {detail}")]
    ValueOutOfRange {
        table: String,
        column: String,
        detail: String,
    },

    /// Postgres said no or went away.
    #[error("postgres ({context}): {message}")]
    Postgres {
        context: String,
        message: String,
        kind: ErrorKind,
        #[source]
        source: Option<tokio_postgres::Error>,
    },

    /// The COPY stream did not have the shape of PostgreSQL's binary format.
    #[error("decoding COPY data of {table}: {detail}")]
    Decode { table: String, detail: String },

    /// BigQuery refused a request or failed a job.
    #[error("bigquery ({context}): {message}")]
    BigQuery {
        context: String,
        message: String,
        kind: ErrorKind,
    },

    /// Reading or writing the lake failed.
    #[error("lake ({context}): {source}")]
    Lake {
        context: String,
        kind: ErrorKind,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// Pub/Sub refused a request or the stream broke.
    #[error("pub/sub ({context}): {message}")]
    PubSub {
        context: String,
        message: String,
        kind: ErrorKind,
    },

    /// No token for Google's APIs: no credentials found, or the token endpoint refused or did
    /// not answer. The message names the credentials.
    #[error("credentials: {message}")]
    Auth { message: String, kind: ErrorKind },

    /// Fetching a secret failed.
    #[error("secret {name}: {message}")]
    Secret { name: String, message: String },

    /// One of the pipeline's own gates stopped a unit: a tripped fail condition, built rows
    /// outside their partition, an input not fresh in time. The message says which, and what
    /// was left as it was.
    #[error("{0}")]
    Gate(String),

    /// A failure a test asked for (the `failpoints` feature).
    #[cfg(feature = "failpoints")]
    #[error("injected {0}")]
    Injected(String),
}

impl Error {
    /// Transient or permanent: only transient errors are retried.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Postgres { kind, .. }
            | Error::BigQuery { kind, .. }
            | Error::Lake { kind, .. }
            | Error::PubSub { kind, .. }
            | Error::Auth { kind, .. } => *kind,
            Error::Config(_)
            | Error::UnsupportedType { .. }
            | Error::ValueOutOfRange { .. }
            | Error::Decode { .. }
            | Error::Secret { .. }
            | Error::Gate(_) => ErrorKind::Permanent,
            #[cfg(feature = "failpoints")]
            Error::Injected(_) => ErrorKind::Permanent,
        }
    }

    /// Transient or unanswered: worth trying again.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::Transient | ErrorKind::Unanswered)
    }

    /// The same error, its context prefixed with what the caller was doing
    /// (`reading the run ledger: bigquery (query …): …`). Its kind stays.
    pub fn within(mut self, what: &str) -> Self {
        match &mut self {
            Error::Postgres { context, .. }
            | Error::BigQuery { context, .. }
            | Error::Lake { context, .. }
            | Error::PubSub { context, .. } => *context = format!("{what}: {context}"),
            Error::Config(m) => *m = format!("{what}: {m}"),
            _ => {}
        }
        self
    }

    /// What to put in a list of problems: a config error's own words (the list says
    /// `config:` once), any other error whole.
    pub fn into_message(self) -> String {
        match self {
            Error::Config(m) => m,
            other => other.to_string(),
        }
    }

    pub fn config(msg: impl Into<String>) -> Self {
        Error::Config(msg.into())
    }

    /// A Postgres error, classified by its SQLSTATE: connection trouble, serialization
    /// failures and deadlocks are transient; auth, missing objects and syntax are permanent.
    pub fn postgres(context: impl Into<String>, e: tokio_postgres::Error) -> Self {
        let (kind, message) = classify_postgres(&e);
        Error::Postgres {
            context: context.into(),
            message,
            kind,
            source: Some(e),
        }
    }

    pub fn bigquery(
        context: impl Into<String>,
        kind: ErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Error::BigQuery {
            context: context.into(),
            message: message.into(),
            kind,
        }
    }

    pub fn lake(context: impl Into<String>, e: object_store::Error) -> Self {
        let kind = match &e {
            object_store::Error::NotFound { .. }
            | object_store::Error::InvalidPath { .. }
            | object_store::Error::NotSupported { .. }
            | object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. }
            | object_store::Error::UnknownConfigurationKey { .. }
            | object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => ErrorKind::Permanent,
            _ => ErrorKind::Transient,
        };
        Error::Lake {
            context: context.into(),
            kind,
            source: Box::new(e),
        }
    }

    pub fn lake_other(
        context: impl Into<String>,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Lake {
            context: context.into(),
            kind: ErrorKind::Permanent,
            source: Box::new(e),
        }
    }
}

fn classify_postgres(e: &tokio_postgres::Error) -> (ErrorKind, String) {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        // Class 08 connection exception, 40001 serialization failure, 40P01 deadlock,
        // 53 insufficient resources, 57P01-03 admin shutdown / cannot connect now.
        let transient = code.starts_with("08")
            || code == "40001"
            || code == "40P01"
            || code.starts_with("53")
            || matches!(code, "57P01" | "57P02" | "57P03");
        let kind = if transient {
            ErrorKind::Transient
        } else {
            ErrorKind::Permanent
        };
        return (kind, format!("{} (SQLSTATE {code})", db.message()));
    }
    if e.is_closed() {
        return (ErrorKind::Transient, "connection closed".into());
    }
    // Connection-level errors (refused, reset, timed out) have no DbError; tokio-postgres
    // puts the io error underneath.
    (ErrorKind::Transient, with_causes(e))
}

/// The errors under `e`, nearest first (not `e` itself).
pub fn causes<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(e.source(), |s| s.source())
}

/// `e` and every cause under it, as one line (`what: why: why`): client crates keep the
/// cause (refused, reset, a certificate) out of their own message.
pub fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    causes(e).fold(e.to_string(), |m, s| format!("{m}: {s}"))
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

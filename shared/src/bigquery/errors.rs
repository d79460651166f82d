//! What BigQuery's answers mean: an HTTP error or a failed job as a `sluice::Error`,
//! transient (retried) or permanent, by status and reason.

use serde_json::Value;

use crate::error::{Error, ErrorKind};

/// Reasons BigQuery gives for errors worth retrying.
pub(super) fn reason_is_transient(reason: &str) -> bool {
    matches!(
        reason,
        "backendError"
            | "internalError"
            | "rateLimitExceeded"
            | "jobRateLimitExceeded"
            | "tableUnavailable"
    )
}

/// BigQuery aborts one of two transactions that change the same table at once; the statement
/// can be retried.
pub(super) fn is_concurrent_update(message: &str) -> bool {
    message.contains("concurrent update") || message.contains("Could not serialize access")
}

pub(super) fn http_error(ctx: &str, status: u16, body: &Value) -> Error {
    let message = body["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| body.to_string());
    let reason = body["error"]["errors"][0]["reason"].as_str().unwrap_or("");
    let kind = if status >= 500
        || status == 429
        || reason_is_transient(reason)
        || is_concurrent_update(&message)
    {
        ErrorKind::Transient
    } else {
        ErrorKind::Permanent
    };
    Error::bigquery(ctx, kind, format!("HTTP {status}: {message}"))
}

pub(super) fn job_error(ctx: &str, err: &Value, all: &Value) -> Error {
    let reason = err["reason"].as_str().unwrap_or("");
    let kind = if reason_is_transient(reason)
        || is_concurrent_update(err["message"].as_str().unwrap_or(""))
    {
        ErrorKind::Transient
    } else {
        ErrorKind::Permanent
    };
    let mut message = format!("{}: {}", reason, err["message"].as_str().unwrap_or(""));
    if let Some(more) = all.as_array().filter(|a| a.len() > 1) {
        message.push_str(&format!(" (+{} more errors)", more.len() - 1));
    }
    Error::bigquery(ctx, kind, message)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn http_errors_are_classified() {
        let body =
            json!({"error": {"message": "Access Denied", "errors": [{"reason": "accessDenied"}]}});
        assert_eq!(http_error("x", 403, &body).kind(), ErrorKind::Permanent);
        let body =
            json!({"error": {"message": "slow down", "errors": [{"reason": "rateLimitExceeded"}]}});
        assert_eq!(http_error("x", 403, &body).kind(), ErrorKind::Transient);
        assert_eq!(
            http_error("x", 503, &Value::Null).kind(),
            ErrorKind::Transient
        );
        let e = http_error(
            "creating table d.t",
            400,
            &json!({"error": {"message": "Invalid field name"}}),
        );
        assert_eq!(
            e.to_string(),
            "bigquery (creating table d.t): HTTP 400: Invalid field name"
        );
    }

    #[test]
    fn job_errors_are_classified() {
        let e = job_error(
            "job j",
            &json!({"reason": "invalid", "message": "bad parquet"}),
            &json!([{}, {}]),
        );
        assert_eq!(e.kind(), ErrorKind::Permanent);
        assert!(e
            .to_string()
            .contains("invalid: bad parquet (+1 more errors)"));
        let e = job_error(
            "job j",
            &json!({"reason": "backendError", "message": "retry"}),
            &Value::Null,
        );
        assert!(e.is_retryable());
    }
}

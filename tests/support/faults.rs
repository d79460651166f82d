//! Faults injected in front of real services, for the outage tests.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::response::IntoResponse;

use crate::proxy;

/// A proxy in front of the BigQuery emulator that answers insertAll with 503 while `failing`,
/// counting the inserts it refused in `refused`; returns its URL.
pub async fn flaky_bigquery(
    upstream: String,
    failing: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
) -> String {
    proxy::http(upstream, move |req| {
        if failing.load(Ordering::Relaxed) && req.path_and_query.contains("/insertAll") {
            refused.fetch_add(1, Ordering::Relaxed);
            return Some(
                (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    r#"{"error": {"code": 503, "message": "injected outage"}}"#,
                )
                    .into_response(),
            );
        }
        None
    })
    .await
}

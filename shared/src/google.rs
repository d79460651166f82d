//! Calls through Google's client crates (Secret Manager, Cloud Run, Resource Manager): each
//! bounded in time, and their errors read the same way everywhere (refused, not found, said in
//! words).

use std::time::Duration;

use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::error::Error;

/// Awaits `call` for at most three attempts' time (its own retries included); the error says
/// which timeout ran out.
pub async fn bounded<T>(
    request: Duration,
    call: impl std::future::Future<Output = T>,
) -> Result<T, String> {
    let limit = request * 3;
    tokio::time::timeout(limit, call).await.map_err(|_| {
        format!(
            "no answer within {} (3 × timeouts.request of the target)",
            crate::time::secs(limit)
        )
    })
}

/// The caller may not do this (401/403, PERMISSION_DENIED, UNAUTHENTICATED).
pub fn refused(e: &Error) -> bool {
    matches!(e.http_status_code(), Some(401 | 403))
        || e.status()
            .is_some_and(|s| matches!(s.code, Code::PermissionDenied | Code::Unauthenticated))
}

/// The resource does not exist.
pub fn not_found(e: &Error) -> bool {
    e.http_status_code() == Some(404) || e.status().is_some_and(|s| s.code == Code::NotFound)
}

/// The error in words: the service's status and message where it gave one.
pub fn describe(e: &Error) -> String {
    match e.status() {
        Some(s) => format!("{:?}: {}", s.code, s.message),
        None => e.to_string(),
    }
}

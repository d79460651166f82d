//! Retries driven by error classification: only transient errors are tried again.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::error::{Error, Result};

/// The backoff every worker uses: 0.5 s doubling to 8 s, five tries more, with jitter.
pub fn policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(8))
        .with_max_times(5)
        .with_jitter()
}

/// Runs `op`, retrying it while it fails with a transient error; permanent errors return at once.
pub async fn transient<T, F, Fut>(what: &str, op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    op.retry(policy())
        .when(Error::is_retryable)
        .notify(|e: &Error, after: Duration| {
            tracing::warn!(error = %e, retry_in_ms = after.as_millis() as u64, "{what}: transient error, retrying");
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn retries_transient_then_succeeds() {
        let calls = AtomicU32::new(0);
        let r = transient("t", || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(Error::bigquery("x", ErrorKind::Transient, "503"))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_fails_at_once() {
        let calls = AtomicU32::new(0);
        let r: Result<()> = transient("t", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Error::bigquery("x", ErrorKind::Permanent, "403 denied"))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}

//! Retries driven by error classification: only transient errors are tried again.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::error::{Error, ErrorKind, Result};

/// A named backoff: how long to wait before each further try of a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub factor: u32,
    pub max: Duration,
    /// Tries after the first.
    pub retries: u32,
}

/// For work nobody waits on: 0.5 s doubling to 8 s, five tries more (with jitter).
pub const STANDARD: Backoff = Backoff {
    first: Duration::from_millis(500),
    factor: 2,
    max: Duration::from_secs(8),
    retries: 5,
};

/// For a request a caller is waiting on (log-ingest's insertAll under a Pub/Sub push, whose
/// answer is due within seconds): 0.1 s tripling to 2 s, two tries more.
pub const QUICK: Backoff = Backoff {
    first: Duration::from_millis(100),
    factor: 3,
    max: Duration::from_secs(2),
    retries: 2,
};

impl Backoff {
    fn builder(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.first)
            .with_factor(self.factor as f32)
            .with_max_delay(self.max)
            .with_max_times(self.retries as usize)
            .with_jitter()
    }

    /// The waits before each further try, for loops that retry by hand (no jitter).
    pub fn delays(&self) -> impl Iterator<Item = Duration> + '_ {
        (0..self.retries).map(|i| (self.first * self.factor.pow(i)).min(self.max))
    }
}

/// How many times an attempt that got no answer in time is tried again: each try costs the
/// whole timeout, so a silent endpoint fails the run in about three timeouts.
pub const UNANSWERED_RETRIES: u32 = 2;

/// Runs `op` with the STANDARD backoff, retrying it while it fails with a transient error (an
/// unanswered attempt at most `UNANSWERED_RETRIES` times); permanent errors return at once.
pub async fn transient<T, F, Fut>(what: &str, op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    with(STANDARD, what, op).await
}

/// Like `transient`, with another backoff.
pub async fn with<T, F, Fut>(backoff: Backoff, what: &str, op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let unanswered = std::sync::atomic::AtomicU32::new(0);
    op.retry(backoff.builder())
        .when(|e: &Error| match e.kind() {
            ErrorKind::Unanswered => {
                unanswered.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < UNANSWERED_RETRIES
            }
            _ => e.is_retryable(),
        })
        .notify(|e: &Error, after: Duration| {
            let retry_in_ms = after.as_millis() as u64;
            if e.kind() == ErrorKind::Unanswered {
                tracing::warn!(error = %e, retry_in_ms, "{what}: no answer, trying again");
            } else {
                tracing::warn!(error = %e, retry_in_ms, "{what}: transient error, retrying");
            }
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
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
    async fn unanswered_is_tried_twice_more() {
        let calls = AtomicU32::new(0);
        let r: Result<()> = transient("t", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Error::bigquery("x", ErrorKind::Unanswered, "no answer"))
        })
        .await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::Unanswered);
        assert_eq!(calls.load(Ordering::SeqCst), 1 + UNANSWERED_RETRIES);
    }

    #[test]
    fn named_backoffs_grow_to_their_cap() {
        let ms = |b: Backoff| b.delays().map(|d| d.as_millis()).collect::<Vec<_>>();
        assert_eq!(ms(QUICK), [100, 300]);
        assert_eq!(ms(STANDARD), [500, 1000, 2000, 4000, 8000]);
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

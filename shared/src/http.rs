//! HTTP clients for Google's APIs (BigQuery, the metadata server): bounded time on
//! every request, and failures described by what did not answer.

use crate::config::Timeouts;
use crate::error::ErrorKind;
use crate::time::secs;

/// A client whose every request connects within `timeouts.connect` and is answered in full
/// within `timeouts.request`.
pub fn client(timeouts: &Timeouts) -> reqwest::Result<reqwest::Client> {
    crate::install_crypto();
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .tcp_keepalive(std::time::Duration::from_secs(15))
        .build()
}

/// A request that timed out got no answer; any other transport failure is transient.
pub fn kind(e: &reqwest::Error) -> ErrorKind {
    if e.is_timeout() {
        ErrorKind::Unanswered
    } else {
        ErrorKind::Transient
    }
}

/// What went wrong, in words: which timeout ran out, or the transport error with its causes.
pub fn describe(e: &reqwest::Error, timeouts: &Timeouts) -> String {
    if e.is_timeout() {
        return if e.is_connect() {
            format!(
                "could not connect within {} (timeouts.connect of the target)",
                secs(timeouts.connect)
            )
        } else {
            format!(
                "accepted the connection but did not answer within {} (timeouts.request of the target)",
                secs(timeouts.request)
            )
        };
    }
    // reqwest's own message hides the cause (refused, reset, DNS) in its sources.
    crate::error::with_causes(e)
}

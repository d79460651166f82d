//! HTTP clients for Google's APIs (BigQuery, the metadata server): bounded time on
//! every request, and failures described by what did not answer.

use crate::config::Timeouts;
use crate::error::ErrorKind;

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

/// `10 s`, `1.5 s`, `250 ms`.
pub fn secs(d: std::time::Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(secs(Duration::from_secs(10)), "10 s");
        assert_eq!(secs(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(secs(Duration::from_millis(250)), "250 ms");
    }
}

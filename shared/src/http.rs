//! HTTP clients for Google's APIs (BigQuery, Secret Manager, token endpoints): bounded time on
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
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    message
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

const METADATA_TOKEN: &str =
    "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token";

/// A token of the runtime's service account from the metadata server (Cloud Run, GCE), and
/// how long it stays valid. The one place sluice asks the metadata server.
pub async fn metadata_token(
    http: &reqwest::Client,
) -> reqwest::Result<(String, std::time::Duration)> {
    let resp: serde_json::Value = http
        .get(METADATA_TOKEN)
        .header("Metadata-Flavor", "Google")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = resp["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ttl = resp["expires_in"].as_u64().unwrap_or(300);
    Ok((token, std::time::Duration::from_secs(ttl)))
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

//! Reading Google resources for the doctor: within the target's request timeout, and a
//! refusal told apart from other errors (with the right the read needs).

use sluice::config::Target;
use sluice::google;

/// A Google client call within three attempts' time.
pub(super) async fn bounded<T>(
    t: &Target,
    call: impl std::future::Future<Output = T>,
) -> std::result::Result<T, String> {
    google::bounded(t.timeouts.request, call).await
}

/// A refusal says the right the read needs; anything else as Google said it.
pub(super) fn refusal(e: &google_cloud_gax::error::Error, needs: &str) -> String {
    let said = google::describe(e);
    if google::refused(e) {
        format!("not readable here ({said}; it needs {needs})")
    } else {
        said
    }
}

//! Faults injected in front of real services, for the outage tests.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;

/// A proxy in front of the BigQuery emulator that answers insertAll with 503 while `failing`.
pub async fn flaky_bigquery(
    upstream: String,
    failing: Arc<AtomicBool>,
    refused: Arc<AtomicUsize>,
) -> String {
    use axum::extract::Request;
    use axum::response::IntoResponse;
    let http = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |req: Request| {
        let (http, upstream, failing, refused) = (
            http.clone(),
            upstream.clone(),
            failing.clone(),
            refused.clone(),
        );
        async move {
            let path = req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            if failing.load(Ordering::Relaxed) && path.contains("/insertAll") {
                refused.fetch_add(1, Ordering::Relaxed);
                return (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    r#"{"error": {"code": 503, "message": "injected outage"}}"#,
                )
                    .into_response();
            }
            let method = req.method().clone();
            let body = axum::body::to_bytes(req.into_body(), usize::MAX)
                .await
                .unwrap();
            let resp = http
                .request(method, format!("{upstream}{path}"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = axum::http::StatusCode::from_u16(resp.status().as_u16()).unwrap();
            (status, resp.bytes().await.unwrap()).into_response()
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

//! The push endpoint: `POST /` takes one Pub/Sub push envelope, answers 2xx only once the
//! event is committed (in its table or in `ops.dead_letter`), 5xx/429 so Pub/Sub redelivers.
//! `serve` runs it on a TCP listener; `push_app` is the router with its writer and ledger
//! started, for a listener or the Lambda runtime.

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sluice::{Error, Result};
use tokio::net::TcpListener;

use crate::auth::{Refused, Verifier};
use crate::event::{Incoming, PushEnvelope, Via};
use crate::ingest::{Ingest, Running};
use crate::writer::{Outcome, Writer};

/// Largest request body taken: a 10 MB Pub/Sub message in base64 plus its envelope. Larger
/// bodies cannot come from Pub/Sub and get 413.
pub const MAX_BODY_BYTES: usize = 14 * 1024 * 1024;

#[derive(Clone)]
struct AppState {
    ingest: Arc<Ingest>,
    writer: Writer,
    verifier: Option<Arc<Verifier>>,
}

/// The router: `POST /` for pushes, `GET /healthz`.
pub fn router(ingest: Arc<Ingest>, writer: Writer, verifier: Option<Arc<Verifier>>) -> Router {
    Router::new()
        .route("/", post(push))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(AppState {
            ingest,
            writer,
            verifier,
        })
}

fn refuse(status: StatusCode, why: String) -> Response {
    tracing::warn!(status = status.as_u16(), why, "push request refused");
    (status, format!("{why}\n")).into_response()
}

async fn push(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(v) = &s.verifier {
        match v.verify(v.token_header(&headers)).await {
            Ok(()) => {}
            Err(Refused::Missing) => {
                return refuse(
                    StatusCode::UNAUTHORIZED,
                    "no bearer token: push subscriptions must send an OIDC token".into(),
                )
            }
            Err(Refused::Invalid(why)) => {
                return refuse(StatusCode::FORBIDDEN, format!("push token refused: {why}"))
            }
        }
    }
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        if !ct.trim_start().starts_with("application/json") {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content type `{ct}`: a Pub/Sub push envelope is application/json"),
            );
        }
    }
    let mut envelope: PushEnvelope = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("body is not a Pub/Sub push envelope: {e}"),
            )
        }
    };
    let Some(message) = envelope.message.take() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "push envelope has no `message`".into(),
        );
    };
    if message.message_id.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "push envelope's message has no messageId".into(),
        );
    }
    let incoming = Incoming::from_push(envelope, message);
    let routed = s.ingest.route(incoming);
    match s.writer.submit(routed).await {
        Ok(Outcome::Loaded) | Ok(Outcome::DeadLettered(_)) => {
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) if e.transient => refuse(StatusCode::SERVICE_UNAVAILABLE, e.message),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.message),
    }
}

/// What `serve` did.
#[derive(Debug, Default)]
pub struct ServeReport {
    pub addr: String,
}

/// The push router (`POST /`, `GET /healthz`) with its writer and ledger started, for a TCP
/// listener or the Lambda runtime; `Running::finish` drains them.
pub async fn push_app(
    ingest: &Arc<Ingest>,
    verifier: Option<Arc<Verifier>>,
) -> Result<(axum::Router, Running)> {
    let running = ingest.start(Via::Push).await?;
    let app = router(ingest.clone(), running.writer.clone(), verifier);
    Ok((app, running))
}

/// Serves push requests on `listener` until `shutdown` resolves; then stops taking requests,
/// commits every batch in flight, answers those requests and writes the last ledger window.
pub async fn serve(
    ingest: Arc<Ingest>,
    listener: TcpListener,
    verifier: Option<Arc<Verifier>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<ServeReport> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let (app, running) = push_app(&ingest, verifier).await?;
    tracing::info!(addr, "log-ingest listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::config(format!("serving on {addr}: {e}")))?;
    tracing::info!("stopped taking requests; committing what is in flight");
    running.finish().await;
    tracing::info!("log-ingest stopped");
    Ok(ServeReport { addr })
}

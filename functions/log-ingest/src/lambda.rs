//! log-ingest under AWS Lambda (cargo feature `lambda`): the push router that `serve` runs on
//! Cloud Run, behind lambda_http instead of a TCP listener, for a team whose events arrive
//! through API Gateway, a function URL or an ALB. Each event is one push envelope, answered
//! 2xx only once committed, exactly as on Cloud Run.

use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use tower::ServiceExt;

use crate::auth::Verifier;
use crate::ingest::Ingest;
use crate::service::push_app;
use sluice::{Error, Result};

/// Serves Lambda invocations until the runtime stops, then commits what is in flight.
pub async fn serve(ingest: Arc<Ingest>, verifier: Option<Arc<Verifier>>) -> Result<()> {
    let (app, running) = push_app(&ingest, verifier).await?;
    tracing::info!("log-ingest serving Lambda invocations");
    let served = lambda_http::run(app).await;
    running.finish().await;
    served.map_err(|e| Error::config(format!("the Lambda runtime stopped: {e}")))
}

/// One Lambda HTTP event (API Gateway v1/v2, ALB), as JSON, through the router: the request
/// lambda_http would build from it, and the router's answer.
pub async fn handle(app: Router, event: &str) -> Result<axum::http::Response<Body>> {
    let request = lambda_http::request::from_str(event)
        .map_err(|e| Error::config(format!("not a Lambda HTTP event: {e}")))?;
    let request = request.map(|b| Body::from(b.to_vec()));
    Ok(app
        .oneshot(request)
        .await
        .unwrap_or_else(|never| match never {}))
}

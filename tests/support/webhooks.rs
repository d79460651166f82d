//! A local webhook receiver standing in for Slack and Teams: it records every body posted to
//! it and answers each path with a scripted sequence of statuses (the last one repeats), so
//! tests and the demo see exactly what the monitor would post and how it copes with 429 and
//! 5xx answers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::response::IntoResponse;
use serde_json::Value;
use tokio::net::TcpListener;

/// One request the receiver took.
#[derive(Debug, Clone)]
pub struct Received {
    /// The path posted to, like `/slack`.
    pub path: String,
    /// The body as JSON (`null` when it was not JSON).
    pub body: Value,
    /// What the receiver answered.
    pub status: u16,
}

/// A running receiver.
#[derive(Clone)]
pub struct Sink {
    /// `http://127.0.0.1:<port>`; post to `{url}/<path>`.
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Sink {
    /// Starts a receiver on `port` (0: any free one). `answers` scripts the statuses per path
    /// (`"/flaky" => [429, 500, 200]`); paths not listed answer 200. A 429 carries
    /// `Retry-After: 1`.
    pub async fn start(port: u16, answers: BTreeMap<String, Vec<u16>>) -> std::io::Result<Sink> {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let record = got.clone();
        let app = axum::Router::new().fallback(move |req: Request| {
            let (record, answers) = (record.clone(), answers.clone());
            async move {
                let path = req.uri().path().to_string();
                let bytes = axum::body::to_bytes(req.into_body(), 1 << 20)
                    .await
                    .unwrap_or_default();
                let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let mut got = record.lock().expect("receiver state");
                let seen = got.iter().filter(|r| r.path == path).count();
                let status = answers
                    .get(&path)
                    .map(|a| a.get(seen).or(a.last()).copied().unwrap_or(200))
                    .unwrap_or(200);
                got.push(Received { path, body, status });
                let code =
                    axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK);
                let mut resp = (code, if status < 300 { "ok" } else { "refused" }).into_response();
                if status == 429 {
                    resp.headers_mut()
                        .insert("retry-after", axum::http::HeaderValue::from_static("1"));
                }
                resp
            }
        });
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Sink { url, got })
    }

    /// Everything received so far, in order.
    pub fn all(&self) -> Vec<Received> {
        self.got.lock().expect("receiver state").clone()
    }

    /// The bodies posted to `path` that were answered 2xx.
    pub fn taken(&self, path: &str) -> Vec<Value> {
        self.all()
            .into_iter()
            .filter(|r| r.path == path && r.status < 300)
            .map(|r| r.body)
            .collect()
    }

    /// How many requests `path` got, whatever the answer.
    pub fn attempts(&self, path: &str) -> usize {
        self.all().iter().filter(|r| r.path == path).count()
    }
}

//! Proxies the tests put in front of real services: an HTTP proxy that sees every request and
//! may answer it itself (an injected outage, a fake token endpoint, a refusal) before passing
//! the rest on, and a TCP proxy that forwards until frozen (a connection stuck mid-session).

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as the HTTP proxy took it, body read.
pub struct Request {
    pub method: Method,
    /// The path and query, like `/bigquery/v2/projects/p/queries?prettyPrint=false`.
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Request {
    /// Reads a request whole (no size limit: BigQuery inserts can be large).
    pub async fn read(req: axum::extract::Request) -> Request {
        let method = req.method().clone();
        let path_and_query = req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let headers = req.headers().clone();
        let body = axum::body::to_bytes(req.into_body(), usize::MAX)
            .await
            .expect("the request's body");
        Request {
            method,
            path_and_query,
            headers,
            body,
        }
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(p, _)| p)
    }

    /// A header's value as text (empty when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// Serves `app` on a free loopback port; returns its base URL, `http://127.0.0.1:<port>`.
pub async fn serve(app: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free loopback port");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Passes `req` on to `upstream` (its method, path, query and body, sent as JSON, which is
/// what the Google APIs the tests proxy take); returns the upstream's status and body.
pub async fn forward(http: &reqwest::Client, upstream: &str, req: Request) -> (StatusCode, Bytes) {
    let resp = http
        .request(req.method, format!("{upstream}{}", req.path_and_query))
        .header("content-type", "application/json")
        .body(req.body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{upstream} did not answer the proxy: {e}"));
    let status = StatusCode::from_u16(resp.status().as_u16()).expect("an HTTP status");
    (status, resp.bytes().await.expect("the upstream's body"))
}

/// An HTTP proxy in front of `upstream` on a free loopback port: `answer` sees each request
/// first and either answers it itself (`Some`) or lets it through to `upstream` (`None`).
/// Returns the proxy's base URL.
pub async fn http(
    upstream: String,
    answer: impl Fn(&Request) -> Option<Response> + Send + Sync + 'static,
) -> String {
    sluice::install_crypto();
    let answer = Arc::new(answer);
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (answer, client, upstream) = (answer.clone(), client.clone(), upstream.clone());
        async move {
            let req = Request::read(req).await;
            if let Some(resp) = answer(&req) {
                return resp;
            }
            forward(&client, &upstream, req).await.into_response()
        }
    });
    serve(app).await
}

/// A TCP proxy to `upstream` that forwards both ways until frozen, then holds the
/// connections open and forwards nothing: a proxy that got stuck mid-session.
pub struct TcpProxy {
    pub port: u16,
    frozen: tokio::sync::watch::Sender<bool>,
}

impl TcpProxy {
    /// Starts forwarding from a free loopback port to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (frozen, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&upstream).await.unwrap();
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, rx.clone()));
                tokio::spawn(pump(sr, cw, rx.clone()));
            }
        });
        TcpProxy { port, frozen }
    }

    /// Stops forwarding, for good, on every connection.
    pub fn freeze(&self) {
        let _ = self.frozen.send(true);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: tokio::sync::watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if *frozen.borrow() {
            // Hold both halves open and forward nothing, for good.
            let _ = frozen.wait_for(|f| !*f).await;
            std::future::pending::<()>().await;
        }
        tokio::select! {
            n = from.read(&mut buf) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if to.write_all(&buf[..n]).await.is_err() { return },
            },
            _ = frozen.changed() => {}
        }
    }
}

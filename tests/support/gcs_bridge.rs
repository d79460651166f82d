//! Lets object_store's GCS client write to fake-gcs-server, and a lake in a fresh bucket there
//! (`fake_gcs_lake`).
//!
//! object_store writes through GCS's XML API (PUT object, XML multipart upload), which
//! fake-gcs-server does not implement; it reads, lists and deletes fine. This bridge answers
//! those writes itself, storing through fake-gcs-server's JSON upload API, and passes every
//! other request through unchanged. The object's content type is the upload's `Content-Type`
//! (for a multipart upload, the one its initiating request gave), as in GCS's XML API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// Multipart uploads in flight, by upload id: the content type and the (part number, bytes).
type Uploads = Arc<Mutex<HashMap<String, (Option<String>, Vec<(usize, Bytes)>)>>>;

#[derive(Clone)]
struct Bridge {
    upstream: String,
    http: reqwest::Client,
    uploads: Uploads,
}

/// Starts the bridge in front of fake-gcs-server at `upstream`; returns its base URL.
pub async fn start(upstream: &str) -> String {
    sluice::install_crypto();
    let bridge = Bridge {
        upstream: upstream.trim_end_matches('/').to_string(),
        http: reqwest::Client::new(),
        uploads: Arc::default(),
    };
    let app = axum::Router::new()
        .fallback(handle)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(bridge);
    crate::proxy::serve(app).await
}

fn query(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// `/bucket/encoded%2Fobject` → (bucket, object name).
fn bucket_object(uri: &Uri) -> Option<(String, String)> {
    let (bucket, object) = uri.path().trim_start_matches('/').split_once('/')?;
    let name = object_store::path::Path::from_url_path(object).ok()?;
    Some((bucket.to_string(), name.to_string()))
}

impl Bridge {
    async fn upload(
        &self,
        bucket: &str,
        name: &str,
        content_type: Option<String>,
        body: Bytes,
    ) -> Response {
        let mut req = self
            .http
            .post(format!("{}/upload/storage/v1/b/{bucket}/o", self.upstream))
            .query(&[("uploadType", "media"), ("name", name)]);
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        let r = req.body(body).send().await;
        match r {
            Ok(r) if r.status().is_success() => {
                let v: serde_json::Value = r.json().await.unwrap_or_default();
                let etag = v["etag"].as_str().unwrap_or("etag").to_string();
                (StatusCode::OK, [("ETag", format!("\"{etag}\""))], "").into_response()
            }
            Ok(r) => (StatusCode::BAD_GATEWAY, format!("upstream {}", r.status())).into_response(),
            Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
        }
    }

    async fn forward(
        &self,
        method: Method,
        uri: &Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        let url = format!(
            "{}{}",
            self.upstream,
            uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
        );
        let mut req = self.http.request(method, url).body(body);
        for (k, v) in &headers {
            if k != "host" {
                req = req.header(k, v);
            }
        }
        match req.send().await {
            Ok(r) => {
                let status = r.status();
                let mut out = HeaderMap::new();
                for (k, v) in r.headers() {
                    if k != "transfer-encoding" && k != "content-length" {
                        out.insert(k, v.clone());
                    }
                }
                let body = r.bytes().await.unwrap_or_default();
                (status, out, body).into_response()
            }
            Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
        }
    }
}

async fn handle(
    State(b): State<Bridge>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let q = query(&uri);
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let target = bucket_object(&uri)
        .filter(|_| !uri.path().starts_with("/storage/") && !uri.path().starts_with("/upload/"));
    match (&method, target) {
        (&Method::PUT, Some((bucket, name))) if !q.contains_key("uploadId") => {
            b.upload(&bucket, &name, content_type, body).await
        }
        (&Method::POST, Some(_)) if q.contains_key("uploads") => {
            let id = uuid::Uuid::new_v4().simple().to_string();
            b.uploads
                .lock()
                .expect("not poisoned")
                .insert(id.clone(), (content_type, vec![]));
            let xml = format!("<InitiateMultipartUploadResult><UploadId>{id}</UploadId></InitiateMultipartUploadResult>");
            (StatusCode::OK, xml).into_response()
        }
        (&Method::PUT, Some(_)) => {
            let n: usize = q
                .get("partNumber")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let id = q.get("uploadId").cloned().unwrap_or_default();
            match b.uploads.lock().expect("not poisoned").get_mut(&id) {
                Some((_, parts)) => parts.push((n, body)),
                None => return (StatusCode::NOT_FOUND, "no such upload").into_response(),
            }
            (StatusCode::OK, [("ETag", format!("\"part-{n}\""))], "").into_response()
        }
        (&Method::POST, Some((bucket, name))) if q.contains_key("uploadId") => {
            let parts = b
                .uploads
                .lock()
                .expect("not poisoned")
                .remove(&q["uploadId"]);
            let Some((content_type, mut parts)) = parts else {
                return (StatusCode::NOT_FOUND, "no such upload").into_response();
            };
            parts.sort_by_key(|(n, _)| *n);
            let whole: Vec<u8> = parts.into_iter().flat_map(|(_, p)| p.to_vec()).collect();
            let r = b.upload(&bucket, &name, content_type, whole.into()).await;
            if !r.status().is_success() {
                return r;
            }
            let xml = "<CompleteMultipartUploadResult><ETag>\"complete\"</ETag></CompleteMultipartUploadResult>";
            (StatusCode::OK, xml).into_response()
        }
        (&Method::DELETE, Some(_)) if q.contains_key("uploadId") => {
            b.uploads
                .lock()
                .expect("not poisoned")
                .remove(&q["uploadId"]);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => b.forward(method, &uri, headers, body).await,
    }
}

/// A lake in a fresh bucket of fake-gcs-server, through object_store's real GCS client.
pub async fn fake_gcs_lake(stack: &crate::Stack) -> sluice::lake::Lake {
    use object_store::gcp::GoogleCloudStorageBuilder;
    use object_store::ClientOptions;
    sluice::install_crypto();
    let bucket = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let created = reqwest::Client::new()
        .post(format!("{}/storage/v1/b", stack.gcs_endpoint))
        .json(&serde_json::json!({"name": bucket}))
        .send()
        .await
        .expect("fake-gcs-server is up (scripts/local-stack.sh up)");
    assert!(
        created.status().is_success(),
        "creating bucket {bucket}: {}",
        created.status()
    );
    let base = start(&stack.gcs_endpoint).await;
    let key = serde_json::json!({
        "gcs_base_url": base, "disable_oauth": true,
        "client_email": "", "private_key": "", "private_key_id": ""
    });
    let store = GoogleCloudStorageBuilder::new()
        .with_bucket_name(&bucket)
        .with_service_account_key(key.to_string())
        .with_client_options(ClientOptions::new().with_allow_http(true))
        .build()
        .expect("a GCS client");
    sluice::lake::Lake::with_store(std::sync::Arc::new(store), &bucket)
}

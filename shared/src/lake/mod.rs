//! The lake: Parquet files in GCS (or a local directory) that stage every load and allow replays.

pub mod manifest;
pub mod parquet;
pub mod path;

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::buffered::BufWriter;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, ObjectMeta, ObjectStore, ObjectStoreExt, PutOptions, PutPayload,
};

use crate::auth::Auth;
use crate::config::LakeLocation;
use crate::error::{Error, Result};

pub use manifest::{Manifest, PartFile};
pub use parquet::ParquetSink;

/// object_store's GCS client with sluice's credentials: its own chain reads neither external
/// accounts nor impersonated service accounts, and every Google call should act as one
/// principal.
#[derive(Debug)]
struct Tokens(Auth);

#[async_trait::async_trait]
impl object_store::CredentialProvider for Tokens {
    type Credential = object_store::gcp::GcpCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<Self::Credential>> {
        let token = self.0.token().await.map_err(|e| {
            if e.is_retryable() {
                object_store::Error::Generic {
                    store: "GCS",
                    source: Box::new(e),
                }
            } else {
                object_store::Error::Unauthenticated {
                    path: String::new(),
                    source: Box::new(e),
                }
            }
        })?;
        Ok(Arc::new(object_store::gcp::GcpCredential {
            bearer: token.unwrap_or_default(),
        }))
    }
}

/// One bucket of the lake, wherever it is.
#[derive(Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    /// The store keeps a content type per object (GCS does; a local directory cannot).
    typed: bool,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lake(gs://{})", self.bucket)
    }
}

impl Lake {
    /// Opens the lake of a target: a local directory `<dir>/<bucket>/` or a GCS bucket, read
    /// and written with the target's credentials (`crate::auth`, the same as BigQuery's).
    pub fn open(location: &LakeLocation, auth: &Auth) -> Result<Lake> {
        crate::install_crypto();
        match location {
            LakeLocation::Local { dir, bucket } => {
                let root = dir.join(bucket);
                std::fs::create_dir_all(&root).map_err(|e| {
                    Error::lake_other(format!("creating the lake directory {}", root.display()), e)
                })?;
                let fs = LocalFileSystem::new_with_prefix(&root)
                    .map_err(|e| Error::lake(format!("opening {}", root.display()), e))?
                    .with_automatic_cleanup(true);
                Ok(Lake {
                    typed: false,
                    ..Lake::with_store(Arc::new(fs), bucket)
                })
            }
            LakeLocation::Gcs { bucket } => {
                let gcs = GoogleCloudStorageBuilder::new()
                    .with_bucket_name(bucket)
                    .with_credentials(Arc::new(Tokens(auth.clone())))
                    .build()
                    .map_err(|e| Error::lake(format!("opening gs://{bucket}"), e))?;
                Ok(Lake::with_store(Arc::new(gcs), bucket))
            }
        }
    }

    /// A lake over any object store that keeps content types (tests use this for
    /// fake-gcs-server).
    pub fn with_store(store: Arc<dyn ObjectStore>, bucket: &str) -> Lake {
        Lake {
            store,
            bucket: bucket.to_string(),
            typed: true,
        }
    }

    /// The object's content type, by its name (`path::content_type`), where the store keeps
    /// one: a browser shows the status page instead of downloading it, and the console
    /// previews JSON.
    fn attributes(&self, path: &Path) -> Attributes {
        let mut a = Attributes::new();
        if let Some(t) = path::content_type(path).filter(|_| self.typed) {
            a.insert(Attribute::ContentType, t.into());
        }
        a
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The `gs://` URI a BigQuery load job reads for `path`.
    pub fn gs_uri(&self, path: &Path) -> String {
        format!("gs://{}/{}", self.bucket, path)
    }

    pub async fn put(&self, path: &Path, data: Bytes) -> Result<()> {
        let opts = PutOptions {
            attributes: self.attributes(path),
            ..Default::default()
        };
        self.store
            .put_opts(path, PutPayload::from(data), opts)
            .await
            .map(|_| ())
            .map_err(|e| Error::lake(format!("writing {}", self.gs_uri(path)), e))
    }

    pub async fn get(&self, path: &Path) -> Result<Bytes> {
        let ctx = || format!("reading {}", self.gs_uri(path));
        let r = self
            .store
            .get(path)
            .await
            .map_err(|e| Error::lake(ctx(), e))?;
        r.bytes().await.map_err(|e| Error::lake(ctx(), e))
    }

    /// Like `get`, but a missing object is `None`.
    pub async fn get_opt(&self, path: &Path) -> Result<Option<Bytes>> {
        match self.get(path).await {
            Ok(b) => Ok(Some(b)),
            Err(Error::Lake { source, .. })
                if matches!(
                    source.downcast_ref::<object_store::Error>(),
                    Some(object_store::Error::NotFound { .. })
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn list(&self, prefix: &Path) -> Result<Vec<ObjectMeta>> {
        let mut v: Vec<ObjectMeta> = self
            .store
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|e| Error::lake(format!("listing {}", self.gs_uri(prefix)), e))?;
        v.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(v)
    }

    /// The folders directly under `prefix` (one listing call with a delimiter, however many
    /// objects they hold).
    pub async fn folders(&self, prefix: &Path) -> Result<Vec<Path>> {
        let r = self
            .store
            .list_with_delimiter(Some(prefix))
            .await
            .map_err(|e| Error::lake(format!("listing {}", self.gs_uri(prefix)), e))?;
        let mut v = r.common_prefixes;
        v.sort();
        Ok(v)
    }

    /// Deletes one object; a missing one is not an error.
    pub async fn delete(&self, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::lake(format!("deleting {}", self.gs_uri(path)), e)),
        }
    }

    /// Deletes every object under `prefix`.
    pub async fn delete_prefix(&self, prefix: &Path) -> Result<usize> {
        let objects = self.list(prefix).await?;
        for o in &objects {
            self.store
                .delete(&o.location)
                .await
                .map_err(|e| Error::lake(format!("deleting {}", self.gs_uri(&o.location)), e))?;
        }
        Ok(objects.len())
    }

    /// A streaming writer: multipart upload in GCS, a temp file renamed at the end locally.
    /// At most two 8 MiB parts are in flight, so a writer's buffers stay under ~24 MiB
    /// (object_store's default of eight parts would allow 64 MiB per writer).
    pub fn writer(&self, path: &Path) -> BufWriter {
        BufWriter::with_capacity(self.store.clone(), path.clone(), 5 * 1024 * 1024)
            .with_max_concurrency(2)
            .with_attributes(self.attributes(path))
    }
}

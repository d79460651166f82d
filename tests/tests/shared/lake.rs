//! One conformance suite for every lake backend: the local directory and GCS (fake-gcs-server
//! through object_store's real GCS client).

use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use arrow::array::{Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use object_store::path::Path;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use sluice::config::LakeLocation;
use sluice::lake::parquet::SinkLimits;
use sluice::lake::{path, Lake, ParquetSink};
use sluice_tests::{fake_gcs_lake, Stack};

async fn conformance(lake: &Lake) {
    let part = path::raw_partition("src", "t", "2024-01-01");
    assert!(lake
        .get_opt(&path::manifest(&part))
        .await
        .unwrap()
        .is_none());

    lake.put(&path::manifest(&part), "{}".into()).await.unwrap();
    assert_eq!(
        lake.get(&path::manifest(&part)).await.unwrap().as_ref(),
        b"{}"
    );

    // Streaming Parquet: ~60 MB of text that compresses to ~19 MB, in files rolled at 10 MB,
    // so each file goes through a multipart upload (object_store buffers 8 MB before one).
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("s", DataType::Utf8, false),
    ]));
    let limits = SinkLimits {
        file_bytes: 10 << 20,
        row_group_rows: 16 * 1024,
    };
    let mut sink = ParquetSink::new(
        lake.clone(),
        part.clone(),
        schema.clone(),
        limits,
        Arc::new(AtomicU32::new(0)),
    );
    let mut next = 0i64;
    for _ in 0..48 {
        let ids: Vec<i64> = (next..next + 20_000).collect();
        next += 20_000;
        let s: Vec<String> = ids
            .iter()
            .map(|i| {
                let h = |k: u64| {
                    (*i as u64 ^ k)
                        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                        .rotate_left(29)
                };
                format!("{:016x}{:016x}{:016x}{:016x}", h(1), h(2), h(3), h(4))
            })
            .collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(s)),
            ],
        )
        .unwrap();
        sink.write(&batch).await.unwrap();
    }
    let files = sink.finish().await.unwrap();
    assert!(
        files.len() >= 2,
        "rolled into {} files: {files:?}",
        files.len()
    );
    assert_eq!(files.iter().map(|f| f.rows).sum::<u64>(), 960_000);

    let listed = lake.list(&part).await.unwrap();
    assert_eq!(listed.len(), files.len() + 1, "parts plus the manifest");
    let (mut rows, mut sum) = (0usize, 0i64);
    for f in &files {
        assert_eq!(
            f.path,
            listed
                .iter()
                .find(|o| o.location.as_ref() == f.path)
                .unwrap()
                .location
                .as_ref()
        );
        let bytes = lake.get(&Path::from(f.path.as_str())).await.unwrap();
        for b in ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap()
        {
            let b = b.unwrap();
            rows += b.num_rows();
            let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            sum += ids.values().iter().sum::<i64>();
        }
    }
    assert_eq!(rows, 960_000);
    assert_eq!(sum, (0..960_000i64).sum::<i64>());
    assert!(lake
        .gs_uri(&part)
        .starts_with(&format!("gs://{}/raw/src/t/dt=2024-01-01", lake.bucket())));

    assert_eq!(lake.delete_prefix(&part).await.unwrap(), files.len() + 1);
    assert!(lake.list(&part).await.unwrap().is_empty());
}

#[tokio::test]
async fn local_directory_lake() {
    let stack = Stack::from_env();
    let bucket = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let lake = Lake::open(
        &LakeLocation::Local {
            dir: stack.lake_dir.clone(),
            bucket: bucket.clone(),
        },
        &sluice::auth::Auth::none(),
    )
    .unwrap();
    conformance(&lake).await;
    let _ = std::fs::remove_dir_all(stack.lake_dir.join(bucket));
}

#[tokio::test]
async fn gcs_lake_against_fake_gcs_server() {
    let stack = Stack::from_env();
    let lake = fake_gcs_lake(&stack).await;
    conformance(&lake).await;
}

/// GCS keeps the content type an upload gives, and serves the object with it: the status page
/// must be `text/html` to open in a browser (`application/octet-stream`, what GCS stores when
/// the upload says nothing, downloads it), manifests JSON, data files Parquet. Both ways of
/// writing are checked: one request (`put`) and a multipart upload (`writer`).
#[tokio::test]
async fn gcs_objects_carry_the_content_type_they_are_opened_with() {
    use tokio::io::AsyncWriteExt;
    let stack = Stack::from_env();
    let lake = fake_gcs_lake(&stack).await;
    let page = Path::from(monitor::PAGE_PATH);
    lake.put(
        &page,
        Bytes::from_static(b"<!doctype html><title>status</title>"),
    )
    .await
    .unwrap();
    lake.put(
        &Path::from("raw/s/t/dt=2024-05-01/_manifest.json"),
        Bytes::from_static(b"{}"),
    )
    .await
    .unwrap();
    let mut w = lake.writer(&Path::from("raw/s/t/dt=2024-05-01/part-00000.parquet"));
    w.write_all(&vec![7u8; 6 * 1024 * 1024]).await.unwrap();
    w.shutdown().await.unwrap();
    let http = reqwest::Client::new();
    for (name, want) in [
        (monitor::PAGE_PATH, "text/html; charset=utf-8"),
        ("raw/s/t/dt=2024-05-01/_manifest.json", "application/json"),
        (
            "raw/s/t/dt=2024-05-01/part-00000.parquet",
            "application/vnd.apache.parquet",
        ),
    ] {
        let meta: serde_json::Value = http
            .get(format!(
                "{}/storage/v1/b/{}/o/{}",
                stack.gcs_endpoint,
                lake.bucket(),
                name.replace('/', "%2F")
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(meta["contentType"], want, "{name}: {meta}");
    }
}

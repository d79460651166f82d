//! Where things live in the lake.

use object_store::path::Path;

/// `raw/<source>/<table>/dt=<ds>`: one logical date of one table copied by pg-copy.
pub fn raw_partition(source: &str, table: &str, ds: &str) -> Path {
    Path::from(format!("raw/{source}/{table}/dt={ds}"))
}

/// `<partition>/part-00042.parquet`
pub fn part_file(partition: &Path, n: u32) -> Path {
    partition.clone().join(format!("part-{n:05}.parquet"))
}

/// The manifest that commits a partition: written last, read by `--from-lake`.
pub fn manifest(partition: &Path) -> Path {
    partition.clone().join("_manifest.json")
}

/// The content type an object is stored with, by its extension: what a browser or the
/// console needs to show it rather than download it. GCS stores what the upload says
/// (`application/octet-stream` when it says nothing).
pub fn content_type(path: &Path) -> Option<&'static str> {
    Some(match path.extension()? {
        "html" => "text/html; charset=utf-8",
        "json" => "application/json",
        "parquet" => "application/vnd.apache.parquet",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "csv" => "text/csv; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_people_open_have_their_content_type() {
        let t = |p: &str| content_type(&Path::from(p));
        assert_eq!(t("status/index.html"), Some("text/html; charset=utf-8"));
        assert_eq!(
            t("raw/s/t/dt=2024-05-01/_manifest.json"),
            Some("application/json")
        );
        assert_eq!(
            t("raw/s/t/dt=2024-05-01/part-00000.parquet"),
            Some("application/vnd.apache.parquet")
        );
        assert_eq!(t("raw/s/t/noext"), None);
    }

    #[test]
    fn layout() {
        let p = raw_partition("shop", "orders", "2024-05-01");
        assert_eq!(p.as_ref(), "raw/shop/orders/dt=2024-05-01");
        assert_eq!(
            part_file(&p, 7).as_ref(),
            "raw/shop/orders/dt=2024-05-01/part-00007.parquet"
        );
        assert_eq!(
            manifest(&p).as_ref(),
            "raw/shop/orders/dt=2024-05-01/_manifest.json"
        );
    }
}

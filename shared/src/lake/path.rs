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

#[cfg(test)]
mod tests {
    use super::*;

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

//! The cdc-sync steps the CDC tests take, on the test pipeline's `local` target.

use cdc_sync::{Options, Summary};
use sluice::config::Pipeline;

/// `cdc-sync init`.
pub async fn init(p: &Pipeline) {
    cdc_sync::init(p, "local", None)
        .await
        .expect("cdc-sync init");
}

/// `cdc-sync run`, which must succeed.
pub async fn sync(p: &Pipeline) -> Summary {
    cdc_sync::run(p, &Options::new("local"))
        .await
        .expect("cdc-sync run")
}

/// `cdc-sync run` with options set by `f`.
pub async fn sync_with(p: &Pipeline, f: impl FnOnce(&mut Options)) -> sluice::Result<Summary> {
    let mut o = Options::new("local");
    f(&mut o);
    cdc_sync::run(p, &o).await
}

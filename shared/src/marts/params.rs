//! The query parameters a mart's SELECT may name: `@ds` and the day's bounds.

use crate::bigquery::Param;
use chrono::NaiveDate;

use crate::marts::mart::Mart;

/// The date parameters a mart's SELECT uses, for `ds` (only those: real BigQuery need not
/// accept parameters a query does not name).
pub fn mart_params(m: &Mart, ds: NaiveDate) -> Vec<Param> {
    let used = crate::marts::mart::parameters(&m.query);
    date_params(ds)
        .into_iter()
        .filter(|p| used.contains_key(&p.name))
        .collect()
}

/// `@ds`, and the day's bounds `@ds_start` and `@ds_end`, for `ds`.
pub fn date_params(ds: NaiveDate) -> Vec<Param> {
    let day = ds.format("%Y-%m-%d").to_string();
    let next = ds.succ_opt().unwrap_or(ds).format("%Y-%m-%d").to_string();
    vec![
        Param::date("ds", &day),
        Param::scalar("ds_start", "TIMESTAMP", format!("{day} 00:00:00+00")),
        Param::scalar("ds_end", "TIMESTAMP", format!("{next} 00:00:00+00")),
    ]
}

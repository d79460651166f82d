//! insertAll: rows with insert ids (best-effort dedup), as JSON values or as bytes already
//! encoded, and the per-row errors BigQuery returns.

use serde_json::{json, Value};

use super::BigQuery;
use crate::error::{Error, ErrorKind, Result};

impl BigQuery {
    /// Streams rows with insertAll; `insert_id` deduplicates retries. Fails on any row error.
    pub async fn insert_all(
        &self,
        dataset: &str,
        table: &str,
        rows: &[(String, Value)],
    ) -> Result<()> {
        let ctx = format!("inserting {} rows into {dataset}.{table}", rows.len());
        let body = json!({
            "kind": "bigquery#tableDataInsertAllRequest",
            "rows": rows.iter().map(|(id, json)| json!({"insertId": id, "json": json})).collect::<Vec<_>>(),
        });
        let resp = self
            .request(
                reqwest::Method::POST,
                &format!("/datasets/{dataset}/tables/{table}/insertAll"),
                Some(body),
                &ctx,
            )
            .await?;
        if let Some(errs) = resp["insertErrors"].as_array().filter(|a| !a.is_empty()) {
            return Err(Error::bigquery(
                ctx,
                ErrorKind::Permanent,
                errs[0].to_string(),
            ));
        }
        Ok(())
    }
}

/// A row insertAll refused, by its index in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub index: usize,
    /// BigQuery's reason: `invalid` for the row itself, `stopped` for a good row not written
    /// because another row of the request was refused.
    pub reason: String,
    pub message: String,
}

impl BigQuery {
    /// One insertAll request, not retried, from rows already serialized as JSON objects:
    /// `(insert id, row)`. Ok holds the rows BigQuery refused (none were written then).
    pub async fn insert_all_raw(
        &self,
        dataset: &str,
        table: &str,
        rows: &[(&str, &[u8])],
    ) -> Result<Vec<RowError>> {
        let ctx = format!("inserting {} rows into {dataset}.{table}", rows.len());
        let size: usize = rows.iter().map(|(id, r)| id.len() + r.len() + 32).sum();
        let mut body = Vec::with_capacity(size + 64);
        body.extend_from_slice(br#"{"kind":"bigquery#tableDataInsertAllRequest","rows":["#);
        for (i, (id, row)) in rows.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(br#"{"insertId":"#);
            serde_json::to_writer(&mut body, id).unwrap_or_default();
            body.extend_from_slice(br#","json":"#);
            body.extend_from_slice(row);
            body.push(b'}');
        }
        body.extend_from_slice(b"]}");
        let (status, resp) = self
            .call_raw(
                reqwest::Method::POST,
                &format!("/datasets/{dataset}/tables/{table}/insertAll"),
                Some(body),
                &ctx,
            )
            .await?;
        if !(200..300).contains(&status) {
            return Err(self.refused(&ctx, status, &resp).await);
        }
        Ok(row_errors(&resp))
    }
}

fn row_errors(resp: &Value) -> Vec<RowError> {
    let empty = vec![];
    resp["insertErrors"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|e| {
            let first = &e["errors"][0];
            let location = first["location"].as_str().unwrap_or("");
            let message = first["message"].as_str().unwrap_or("");
            RowError {
                index: e["index"].as_u64().unwrap_or(0) as usize,
                reason: first["reason"].as_str().unwrap_or("").to_string(),
                message: if location.is_empty() {
                    message.to_string()
                } else {
                    format!("{location}: {message}")
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_errors_are_read() {
        let resp = json!({"insertErrors": [
            {"index": 0, "errors": [{"reason": "stopped", "location": "", "message": ""}]},
            {"index": 1, "errors": [{"reason": "invalid", "location": "id", "message": "bad value"}]}
        ]});
        let e = row_errors(&resp);
        assert_eq!(e[0].reason, "stopped");
        assert_eq!(
            e[1],
            RowError {
                index: 1,
                reason: "invalid".into(),
                message: "id: bad value".into()
            }
        );
        assert!(row_errors(&json!({})).is_empty());
    }
}

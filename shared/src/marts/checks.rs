//! Data-quality checks of a mart's header: `fail_conditions` stop the mart, `dq_metrics` are
//! only recorded. Each is `{name, threshold, expression}`, passing when
//! `expression / COUNT(*) >= threshold` over the rows just built, or a shorthand:
//!
//! | shorthand | expands to |
//! |---|---|
//! | `not_null: col` | `COUNTIF(col IS NOT NULL)`, threshold 1.0 |
//! | `unique: col` (or `[a, b]`) | `COUNT(DISTINCT col)` (or of `TO_JSON_STRING(STRUCT(a, b))`), threshold 1.0 |
//! | `not_empty: true` | `COUNT(*)`, passes when above 0 |
//! | `accepted_values: {column, values}` | `COUNTIF(CAST(col AS STRING) IN UNNEST(@fc0_values))`, threshold 1.0; the values are a query parameter |
//! | `row_count_change: {max_ratio}` | rows now against the previous partition's; passes when `abs(now / before - 1) <= max_ratio` |

use crate::{Error, Result};
use sqlparser::dialect::BigQueryDialect;
use sqlparser::parser::Parser;

use crate::marts::header::{CheckSpec, Header, Materialized, Names};

/// How a check's value is judged.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// `value / COUNT(*) >= threshold`.
    Ratio { threshold: f64 },
    /// `value > 0`.
    NotEmpty,
    /// `abs(value / previous partition's rows - 1) <= max_ratio`.
    RowCountChange { max_ratio: f64 },
}

/// A resolved check: an aggregate SQL expression over the built rows, and how it is judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: String,
    /// `expression`, or the shorthand's name (`not_null`, ...): recorded as the check's kind.
    pub kind: String,
    /// An aggregate over the built rows, e.g. `COUNTIF(id IS NOT NULL)`.
    pub expression: String,
    pub rule: Rule,
    /// The `ARRAY<STRING>` parameter an accepted_values check reads, and its values.
    pub values: Option<(String, Vec<String>)>,
}

fn yaml_scalar(v: &serde_yaml::Value) -> Result<String> {
    Ok(match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        other => {
            return Err(Error::config(format!(
                "accepted_values: `{other:?}` is not a plain value"
            )))
        }
    })
}

/// A column name as written in a check: a plain identifier, so it can go into SQL as it is.
fn column(s: &str) -> Result<&str> {
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && !s.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(s)
    } else {
        Err(Error::config(format!("`{s}` is not a column name")))
    }
}

/// Checks that `expression` is one SQL expression (so a typo is reported before anything runs).
pub fn parse_expression(expression: &str) -> Result<()> {
    Parser::new(&BigQueryDialect {})
        .try_with_sql(expression)
        .and_then(|mut p| {
            p.parse_expr()?;
            p.expect_token(&sqlparser::tokenizer::Token::EOF)
                .map(|_| ())
        })
        .map_err(|e| {
            let msg = e.to_string();
            Error::config(format!(
                "expression `{expression}`: {}",
                msg.trim_start_matches("sql parser error: ")
            ))
        })
}

impl CheckSpec {
    /// The check this spec describes, or what is wrong with it. `param` names the query
    /// parameter that carries accepted values, unique within the mart.
    pub fn resolve(&self, header: &Header, param: &str) -> Result<Check> {
        let shorthands = [
            self.expression.is_some(),
            self.not_null.is_some(),
            self.unique.is_some(),
            self.not_empty.is_some(),
            self.accepted_values.is_some(),
            self.row_count_change.is_some(),
        ];
        if shorthands.iter().filter(|s| **s).count() != 1 {
            return Err(Error::config("give exactly one of expression, not_null, unique, not_empty, accepted_values, row_count_change"));
        }
        let ratio = |default: f64| Rule::Ratio {
            threshold: self.threshold.unwrap_or(default),
        };
        let (kind, default_name, expression, rule, values) = if let Some(e) = &self.expression {
            let Some(name) = &self.name else {
                return Err(Error::config("a check with an expression needs a name"));
            };
            if self.threshold.is_none() {
                return Err(Error::config(format!("check `{name}` needs a threshold")));
            }
            ("expression", name.clone(), e.clone(), ratio(1.0), None)
        } else if let Some(c) = &self.not_null {
            let c = column(c)?;
            let e = format!("COUNTIF({c} IS NOT NULL)");
            ("not_null", format!("not_null_{c}"), e, ratio(1.0), None)
        } else if let Some(Names(cols)) = &self.unique {
            let cols = cols
                .iter()
                .map(|c| column(c))
                .collect::<Result<Vec<_>, _>>()?;
            let e = match cols.as_slice() {
                [] => return Err(Error::config("unique: name at least one column")),
                [c] => format!("COUNT(DISTINCT {c})"),
                many => format!(
                    "COUNT(DISTINCT TO_JSON_STRING(STRUCT({})))",
                    many.join(", ")
                ),
            };
            (
                "unique",
                format!("unique_{}", cols.join("_")),
                e,
                ratio(1.0),
                None,
            )
        } else if let Some(on) = self.not_empty {
            if !on {
                return Err(Error::config(
                    "not_empty: write `not_empty: true`, or leave the check out",
                ));
            }
            (
                "not_empty",
                "not_empty".into(),
                "COUNT(*)".into(),
                Rule::NotEmpty,
                None,
            )
        } else if let Some(a) = &self.accepted_values {
            let c = column(&a.column)?;
            if a.values.is_empty() {
                return Err(Error::config("accepted_values: list at least one value"));
            }
            let values = a.values.iter().map(yaml_scalar).collect::<Result<_, _>>()?;
            let e = format!("COUNTIF(CAST({c} AS STRING) IN UNNEST(@{param}))");
            let values = Some((param.to_string(), values));
            (
                "accepted_values",
                format!("accepted_values_{c}"),
                e,
                ratio(1.0),
                values,
            )
        } else if let Some(r) = &self.row_count_change {
            if header.materialized != Materialized::Partition {
                return Err(Error::config(
                    "row_count_change compares partitions: it needs materialized: partition",
                ));
            }
            if r.max_ratio.is_nan() || r.max_ratio < 0.0 {
                return Err(Error::config(
                    "row_count_change: max_ratio must be 0 or more",
                ));
            }
            let rule = Rule::RowCountChange {
                max_ratio: r.max_ratio,
            };
            (
                "row_count_change",
                "row_count_change".into(),
                "COUNT(*)".into(),
                rule,
                None,
            )
        } else {
            unreachable!("exactly one shorthand was counted above")
        };
        parse_expression(&expression)?;
        if let Rule::Ratio { threshold } = rule {
            if !(0.0..=1.0).contains(&threshold) {
                return Err(Error::config(format!(
                    "threshold {threshold} must be between 0 and 1"
                )));
            }
        }
        Ok(Check {
            name: self.name.clone().unwrap_or(default_name),
            kind: kind.to_string(),
            expression,
            rule,
            values,
        })
    }
}

impl Check {
    /// Whether a check passes, given its value, the rows built and (row_count_change) the
    /// previous partition's rows. No rows at all pass a ratio check: there is nothing wrong
    /// in them (`not_empty` is the check for that).
    pub fn passes(&self, value: f64, rows: f64, previous_rows: Option<f64>) -> bool {
        match self.rule {
            Rule::Ratio { threshold } => rows == 0.0 || value / rows >= threshold,
            Rule::NotEmpty => value > 0.0,
            Rule::RowCountChange { max_ratio } => match previous_rows {
                // The first partition has nothing to compare with.
                None => true,
                Some(0.0) => value == 0.0,
                Some(p) => (value / p - 1.0).abs() <= max_ratio,
            },
        }
    }

    /// The threshold recorded next to the value.
    pub fn threshold(&self) -> f64 {
        match self.rule {
            Rule::Ratio { threshold } => threshold,
            Rule::NotEmpty => 0.0,
            Rule::RowCountChange { max_ratio } => max_ratio,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> CheckSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn resolve(yaml: &str) -> Result<Check> {
        spec(yaml).resolve(&Header::default(), "fc0_values")
    }

    #[test]
    fn shorthands_expand_to_expressions() {
        let c = resolve("not_null: id").unwrap();
        assert_eq!(
            (c.name.as_str(), c.expression.as_str()),
            ("not_null_id", "COUNTIF(id IS NOT NULL)")
        );
        assert_eq!(c.rule, Rule::Ratio { threshold: 1.0 });
        let c = resolve("unique: [user_id, day]").unwrap();
        assert_eq!(
            c.expression,
            "COUNT(DISTINCT TO_JSON_STRING(STRUCT(user_id, day)))"
        );
        let c = resolve(
            "{name: mostly_paid, threshold: 0.9, expression: \"COUNTIF(status = 'paid')\"}",
        )
        .unwrap();
        assert_eq!(c.rule, Rule::Ratio { threshold: 0.9 });
        let c = resolve("accepted_values: {column: plan, values: [free, pro, 3]}").unwrap();
        let (param, values) = c.values.unwrap();
        assert_eq!(
            (param.as_str(), values.as_slice()),
            (
                "fc0_values",
                ["free", "pro", "3"].map(String::from).as_slice()
            )
        );
        assert_eq!(
            c.expression,
            "COUNTIF(CAST(plan AS STRING) IN UNNEST(@fc0_values))"
        );
        assert_eq!(resolve("not_empty: true").unwrap().rule, Rule::NotEmpty);
    }

    #[test]
    fn bad_checks_say_what_is_wrong() {
        let e = |y: &str| resolve(y).unwrap_err().into_message();
        assert!(e("{not_null: id, unique: id}").contains("exactly one"));
        assert!(e("{expression: COUNT(*)}").contains("needs a name"));
        assert!(e("{name: x, expression: COUNT(*)}").contains("needs a threshold"));
        assert!(e("{name: x, threshold: 2, expression: COUNT(*)}").contains("between 0 and 1"));
        assert!(
            e("{name: x, threshold: 1, expression: \"COUNTIF(id IS NOT\"}")
                .contains("expression `COUNTIF(id IS NOT`")
        );
        assert!(e("not_null: \"id; DROP TABLE x\"").contains("not a column name"));
        assert!(e("row_count_change: {max_ratio: 0.5}").contains("materialized: partition"));
        let unknown = serde_yaml::from_str::<CheckSpec>("{not_nul: id}").unwrap_err();
        assert!(
            unknown.to_string().contains("unknown field `not_nul`"),
            "{unknown}"
        );
    }

    #[test]
    fn checks_pass_by_their_rule() {
        let c = resolve("not_null: id").unwrap();
        assert!(c.passes(10.0, 10.0, None));
        assert!(!c.passes(9.0, 10.0, None));
        assert!(c.passes(0.0, 0.0, None));
        let c = resolve("not_empty: true").unwrap();
        assert!(!c.passes(0.0, 0.0, None));
        let h = Header {
            materialized: Materialized::Partition,
            ..Header::default()
        };
        let c = spec("row_count_change: {max_ratio: 0.5}")
            .resolve(&h, "x")
            .unwrap();
        assert!(c.passes(140.0, 140.0, Some(100.0)));
        assert!(!c.passes(40.0, 40.0, Some(100.0)));
        assert!(c.passes(40.0, 40.0, None));
    }
}

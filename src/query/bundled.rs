//! The bundled queries in `sql/queries/*.sql`, embedded in the binary.
//!
//! Each file starts with a header of comments:
//!
//! ```sql
//! -- name: churn_risk
//! -- description: One line on what it answers.
//! -- param: window_days INTEGER = 28 | what the parameter means
//! ```
//!
//! Parameters appear in the SQL as `$name` and are bound by DuckDB (prepared statements);
//! nothing a user passes is ever spliced into SQL text.

use duckdb::types::Value;

use super::output::ResultWriter;
use super::{Engine, QueryError};

/// A parameter of a bundled query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// Name, bound as `$name`.
    pub name: String,
    /// DuckDB type: INTEGER, DOUBLE, VARCHAR or DATE.
    pub ty: String,
    /// Default, as text; `None` = NULL (or required).
    pub default: Option<String>,
    /// Declared without a default: must be given.
    pub required: bool,
    /// What it means.
    pub doc: String,
}

/// A bundled query.
#[derive(Clone, Debug)]
pub struct Query {
    /// Name, e.g. `churn_risk`.
    pub name: String,
    /// One line.
    pub description: String,
    /// Parameters.
    pub params: Vec<Param>,
    /// The SQL text, header included.
    pub sql: &'static str,
}

const FILES: [&str; 8] = [
    include_str!("../../sql/queries/churn_risk.sql"),
    include_str!("../../sql/queries/churn_backtest.sql"),
    include_str!("../../sql/queries/churn_signals.sql"),
    include_str!("../../sql/queries/billing_trend.sql"),
    include_str!("../../sql/queries/billing_movers.sql"),
    include_str!("../../sql/queries/billing_reconciliation.sql"),
    include_str!("../../sql/queries/usage_daily.sql"),
    include_str!("../../sql/queries/retention_cohorts.sql"),
];

/// Every bundled query, in a stable order.
pub fn all() -> Vec<Query> {
    FILES.iter().map(|sql| parse(sql)).collect()
}

/// One bundled query by name, or an error listing the names.
pub fn find(name: &str) -> Result<Query, QueryError> {
    all().into_iter().find(|q| q.name == name).ok_or_else(|| {
        let names: Vec<String> = all().into_iter().map(|q| q.name).collect();
        QueryError::Usage(format!(
            "no bundled query {name:?}; there are: {}",
            names.join(", ")
        ))
    })
}

/// The bundled queries with their descriptions and parameters, as `hspq queries` and the
/// shell's `.queries` list them.
pub fn describe_all() -> String {
    let mut out = String::new();
    for q in all() {
        out.push_str(&format!("{:<24} {}\n", q.name, q.description));
        for p in &q.params {
            let default = match (&p.default, p.required) {
                (_, true) => "required".to_string(),
                (Some(d), _) => format!("default {d}"),
                (None, _) => "default: none".to_string(),
            };
            out.push_str(&format!(
                "  --param {}=<{}>  {} ({default})\n",
                p.name,
                p.ty.to_lowercase(),
                p.doc
            ));
        }
    }
    out
}

fn parse(sql: &'static str) -> Query {
    let mut q = Query {
        name: String::new(),
        description: String::new(),
        params: Vec::new(),
        sql,
    };
    for line in sql.lines().map_while(|l| l.strip_prefix("--")) {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("name:") {
            q.name = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("description:") {
            q.description = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("param:") {
            let (decl, doc) = v.split_once('|').unwrap_or((v, ""));
            let (decl, default) = match decl.split_once('=') {
                Some((d, def)) => (d, Some(def.trim().to_string())),
                None => (decl, None),
            };
            let mut words = decl.split_whitespace();
            q.params.push(Param {
                name: words.next().unwrap_or_default().to_string(),
                ty: words.next().unwrap_or("VARCHAR").to_uppercase(),
                required: default.is_none(),
                default: default.filter(|d| !d.eq_ignore_ascii_case("null")),
                doc: doc.trim().to_string(),
            });
        }
    }
    assert!(!q.name.is_empty(), "a bundled query without a name header");
    q
}

impl Query {
    /// The value of each parameter from `given` (`key=value`) or its default, typed.
    pub fn values(&self, given: &[(String, String)]) -> Result<Vec<(String, Value)>, QueryError> {
        for (k, _) in given {
            if !self.params.iter().any(|p| &p.name == k) {
                let names: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
                return Err(QueryError::Usage(format!(
                    "{} has no parameter {k:?}; its parameters: {}",
                    self.name,
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                )));
            }
        }
        self.params
            .iter()
            .map(|p| {
                let text = given
                    .iter()
                    .rev()
                    .find(|(k, _)| *k == p.name)
                    .map(|(_, v)| v.clone())
                    .or_else(|| p.default.clone());
                let value = match text {
                    None if p.required => {
                        return Err(QueryError::Usage(format!(
                            "{} needs --param {}=... ({})",
                            self.name, p.name, p.doc
                        )))
                    }
                    None => Value::Null,
                    Some(t) => typed(&p.ty, &t).ok_or_else(|| {
                        QueryError::Usage(format!(
                            "parameter {} of {} must be {}, not {t:?}",
                            p.name,
                            self.name,
                            p.ty.to_lowercase()
                        ))
                    })?,
                };
                Ok((p.name.clone(), value))
            })
            .collect()
    }

    /// Runs the query with `given` parameters, streaming its result into `out`.
    pub fn run(
        &self,
        engine: &Engine,
        given: &[(String, String)],
        out: &mut ResultWriter<'_>,
    ) -> Result<(usize, Option<arrow::datatypes::SchemaRef>), QueryError> {
        engine.run_report(&self.sql_with(given)?, out)
    }

    /// The query's SQL with `given` parameters (the defaults for the rest) written in as
    /// literals: what runs, for another client to send (`hspq serve`'s benchmark).
    pub fn sql_with(&self, given: &[(String, String)]) -> Result<String, QueryError> {
        let values = self.values(given)?;
        with_literals(self.sql, &values).map_err(|name| {
            QueryError::Usage(format!(
                "{}: ${name} is not declared in its header",
                self.name
            ))
        })
    }
}

impl Query {
    /// Runs the query with `given` parameters and returns its rows as `hspq query --format
    /// json` writes them (one object per row), so what is drawn from them agrees with it.
    pub fn json_rows(
        &self,
        engine: &Engine,
        given: &[(String, String)],
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, QueryError> {
        let mut json = Vec::new();
        {
            let mut out = ResultWriter::new(
                super::output::Format::Json,
                Box::new(&mut json),
                super::output::TableOptions::default(),
            );
            let (_, schema) = self.run(engine, given, &mut out)?;
            out.finish(schema)?;
        }
        serde_json::from_slice(&json)
            .map_err(|e| QueryError::Usage(format!("{}: its JSON does not parse: {e}", self.name)))
    }
}

/// `sql` with every `$name` outside quotes and comments replaced by its value as a SQL
/// literal; or the first name `values` lacks. Literals rather than bound parameters because DuckDB
/// plans a prepared statement before it sees the values: `$report_type is null` would stay a
/// filter on every row instead of folding away, and preparing to learn the parameters' order
/// plans the query twice. Measured on a 10,000-company lake: billing_reconciliation went from
/// 1.14 to 1.03 of the plain DuckDB CLI's time in one paired series of 15 runs; the machine's
/// noise (±5 %) blurs any smaller figure.
fn with_literals<'a>(sql: &'a str, values: &[(String, Value)]) -> Result<String, &'a str> {
    let mut out = String::with_capacity(sql.len());
    for (code, text) in super::sql_segments(sql) {
        if !code {
            out.push_str(text);
            continue;
        }
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let name = &after[..len];
            if name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                let (_, value) = values.iter().find(|(n, _)| n == name).ok_or(name)?;
                out.push_str(&literal(value));
                rest = &after[len..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
    }
    Ok(out)
}

/// A parameter's value as SQL text; the values come from [`typed`], so numbers are finite and
/// dates valid.
fn literal(value: &Value) -> String {
    match value {
        Value::BigInt(i) => i.to_string(),
        Value::Double(d) => format!("CAST({d:?} AS DOUBLE)"),
        Value::Text(t) => format!("'{}'", t.replace('\'', "''")),
        _ => "NULL".to_string(),
    }
}

fn typed(ty: &str, text: &str) -> Option<Value> {
    match ty {
        "INTEGER" | "BIGINT" => text.trim().parse::<i64>().ok().map(Value::BigInt),
        "DOUBLE" => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|d| d.is_finite())
            .map(Value::Double),
        "DATE" => chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
            .ok()
            .map(|d| Value::Text(d.to_string())),
        _ => Some(Value::Text(text.to_string())),
    }
}

/// A `--param` without `KEY=`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--param takes KEY=VALUE, not {0:?}")]
pub struct BadParam(String);

/// Splits `key=value`.
pub fn parse_param(s: &str) -> Result<(String, String), BadParam> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| BadParam(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_query_has_a_header() {
        let all = all();
        assert!(all.len() >= 6);
        for q in &all {
            assert!(!q.description.is_empty(), "{}", q.name);
            for p in &q.params {
                assert!(
                    q.sql.contains(&format!("${}", p.name)),
                    "{} declares ${} but does not use it",
                    q.name,
                    p.name
                );
                if let Some(d) = &p.default {
                    assert!(
                        typed(&p.ty, d).is_some(),
                        "{}: default of {}",
                        q.name,
                        p.name
                    );
                }
            }
        }
    }

    #[test]
    fn the_readme_lists_every_view_and_bundled_query_as_the_binary_knows_them() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        for d in crate::lake::Dataset::ALL {
            let cols: Vec<String> = d
                .schema()
                .fields()
                .iter()
                .map(|f| {
                    format!(
                        "{} {}",
                        f.name(),
                        crate::query::views::duck_type(f.data_type())
                    )
                })
                .collect();
            let row = format!(
                "| `{}` | {} | {} |",
                d.name(),
                d.key().join(", "),
                cols.join(", ")
            );
            assert!(
                readme.contains(&row),
                "README's view table is out of date; expected:\n{row}"
            );
        }
        for q in all() {
            let line = format!("- `{}`: {}", q.name, q.description);
            assert!(
                readme.contains(&line),
                "README's bundled queries are out of date; expected:\n{line}"
            );
            for p in &q.params {
                assert!(
                    readme.contains(&format!("--param {}=<{}>", p.name, p.ty.to_lowercase())),
                    "{}",
                    p.name
                );
            }
        }
    }

    #[test]
    fn values_are_typed_and_unknown_parameters_refused() {
        let q = find("churn_risk").unwrap();
        let v = q.values(&[("window_days".into(), "14".into())]).unwrap();
        assert_eq!(v[0], ("window_days".into(), Value::BigInt(14)));
        assert!(q.values(&[("window_days".into(), "soon".into())]).is_err());
        assert!(q
            .values(&[("nope".into(), "1".into())])
            .unwrap_err()
            .to_string()
            .contains("no parameter"));
        assert!(find("nope").unwrap_err().to_string().contains("churn_risk"));
    }

    #[test]
    fn parameters_become_literals_outside_quotes_and_comments_only() {
        let values = vec![
            ("a".to_string(), Value::BigInt(-3)),
            ("ab".to_string(), Value::Text("it's".into())),
            ("d".to_string(), Value::Double(0.5)),
            ("n".to_string(), Value::Null),
        ];
        let sql = "select $a, $ab, $d, $n, '$a', \"$a\" -- $a\n/* $a */ from t where x=$ab";
        assert_eq!(
            with_literals(sql, &values).unwrap(),
            "select -3, 'it''s', CAST(0.5 AS DOUBLE), NULL, '$a', \"$a\" -- $a\n/* $a */ from t where x='it''s'"
        );
        assert_eq!(with_literals("select $zz", &values).unwrap_err(), "zz");
        let conn = duckdb::Connection::open_in_memory().unwrap();
        let got: (i64, String, f64) = conn
            .query_row(
                &with_literals("select $a, $ab, $d", &values).unwrap(),
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(got, (-3, "it's".to_string(), 0.5));
    }
}

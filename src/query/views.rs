//! The DuckDB views over the lake (CONTRACT §3), generated from the declared schemas.
//!
//! Each view reads its dataset's Parquet files with Hive partitioning (so a filter on
//! `report_type`, `year`, `period` or `month` prunes whole files), casts every column to the
//! contract's type, and keeps exactly one row per key: the one with the latest `ingested_at`.
//! A dataset with no files yet is an empty view with the same columns, so queries never fail
//! for a report type the lake does not hold.

use arrow::datatypes::{DataType, TimeUnit};

use crate::lake::{Dataset, Partitioning};

/// Where a view's files come from.
#[derive(Clone, Debug)]
pub enum Source<'a> {
    /// A glob under the lake root, keeping each key's newest row: for a lake whose files may
    /// repeat a key (written before hspq's writer kept each key once per file).
    Glob(&'a str),
    /// A glob under the lake root over files that each hold a key once: what `hspq views
    /// --sql` prints for DuckDB users, as fast as hspq's own views. It shows each row once but
    /// while a sync commits or an hspq reader still reads the version before (see
    /// [`VIEWS_HEADER`]).
    UniqueGlob(&'a str),
    /// The exact live files: what hspq itself queries, so no file a sync left
    /// uncommitted is ever read.
    Files(Vec<String>),
    /// Live files whose writer kept each key once (the manifest says so): no deduplication
    /// needed, which makes large scans several times faster.
    UniqueFiles(Vec<String>),
}

/// DuckDB's name for a declared column type.
pub fn duck_type(t: &DataType) -> &'static str {
    match t {
        DataType::Utf8 => "VARCHAR",
        DataType::Int64 => "BIGINT",
        DataType::Int32 => "INTEGER",
        DataType::Float64 => "DOUBLE",
        DataType::Boolean => "BOOLEAN",
        DataType::Date32 => "DATE",
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => "TIMESTAMPTZ",
        DataType::List(_) => "VARCHAR[]",
        other => unreachable!("no declared column has type {other}"),
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `CREATE OR REPLACE VIEW <dataset> AS ...`.
pub fn view_sql(dataset: Dataset, source: &Source) -> String {
    let schema = dataset.schema();
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| {
            format!(
                "CAST({0} AS {1}) AS {0}",
                f.name(),
                duck_type(f.data_type())
            )
        })
        .collect();
    let files = match source {
        Source::Glob(root) | Source::UniqueGlob(root) => {
            let pattern = match dataset.partitioning() {
                Partitioning::None => format!("{root}/{}/*.parquet", dataset.name()),
                _ => format!("{root}/{}/**/*.parquet", dataset.name()),
            };
            Some(quote(&pattern))
        }
        Source::Files(files) | Source::UniqueFiles(files) if files.is_empty() => None,
        Source::Files(files) | Source::UniqueFiles(files) => Some(format!(
            "[{}]",
            files
                .iter()
                .map(|f| quote(f))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    };
    let name = dataset.name();
    let Some(files) = files else {
        // No files yet: the same columns, no rows.
        return format!(
            "CREATE OR REPLACE VIEW {name} AS SELECT {} WHERE false;",
            schema
                .fields()
                .iter()
                .map(|f| format!("CAST(NULL AS {}) AS {}", duck_type(f.data_type()), f.name()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let hive_types = match dataset.partitioning() {
        Partitioning::ReportType => "{'report_type': VARCHAR}",
        Partitioning::Period => "{'report_type': VARCHAR, 'year': BIGINT, 'period': VARCHAR}",
        Partitioning::Month => "{'report_type': VARCHAR, 'month': VARCHAR}",
        Partitioning::None => "",
    };
    let reader = if hive_types.is_empty() {
        format!("read_parquet({files}, hive_partitioning = false, union_by_name = true)")
    } else {
        format!("read_parquet({files}, hive_partitioning = true, hive_types = {hive_types}, union_by_name = true)")
    };
    if matches!(source, Source::UniqueFiles(_) | Source::UniqueGlob(_)) {
        return format!(
            "CREATE OR REPLACE VIEW {name} AS\nSELECT {}\nFROM {reader};",
            columns.join(", ")
        );
    }
    format!(
        "CREATE OR REPLACE VIEW {name} AS\nSELECT {}\nFROM {reader}\nQUALIFY row_number() OVER (PARTITION BY {} ORDER BY ingested_at DESC) = 1;",
        columns.join(", "),
        dataset.key().join(", ")
    )
}

/// Views derived from the datasets' views, in `sql/views/`: (name, `CREATE VIEW` SQL). They
/// read the dataset views by name, so they work over hspq's views and `hspq views --sql` alike.
pub const DERIVED: [(&str, &str); 2] = [
    (
        "churn_departures",
        include_str!("../../sql/views/churn_departures.sql"),
    ),
    (
        "churn_events",
        include_str!("../../sql/views/churn_events.sql"),
    ),
];

/// Table macros over the views, in `sql/views/` (the bundled queries call them): (name,
/// `CREATE MACRO` SQL).
pub const MACROS: [(&str, &str); 2] = [
    (
        "churn_scores",
        include_str!("../../sql/views/churn_scores.sql"),
    ),
    (
        "churn_labels",
        include_str!("../../sql/views/churn_labels.sql"),
    ),
];

/// Every view hspq shows, by name: the datasets', the derived ones, `lake_files`.
pub fn names() -> Vec<&'static str> {
    Dataset::ALL
        .iter()
        .map(|d| d.name())
        .chain(DERIVED.iter().map(|(name, _)| *name))
        .chain([LAKE_FILES])
        .collect()
}

/// The name of the view of the lake's live files (hspq's own; plain DuckDB users list files
/// with `glob()`).
pub const LAKE_FILES: &str = "lake_files";

/// `CREATE OR REPLACE VIEW lake_files AS ...`: one row per live file of the commit the other
/// views show, with its dataset, path under the lake root, rows, bytes and the sync that wrote
/// it. `files` are (path, rows, bytes, run_id).
pub fn lake_files_sql<'a>(files: impl Iterator<Item = (&'a str, u64, u64, &'a str)>) -> String {
    let rows: Vec<String> = files
        .map(|(path, rows, bytes, run_id)| {
            let dataset = path.split('/').next().unwrap_or_default();
            format!(
                "({}, {}, {rows}, {bytes}, {})",
                quote(dataset),
                quote(path),
                quote(run_id)
            )
        })
        .collect();
    // No files: one row of NULLs filtered out, so the columns keep their types.
    let (values, filter) = if rows.is_empty() {
        ("(NULL, NULL, NULL, NULL, NULL)".to_string(), " WHERE false")
    } else {
        (rows.join(", "), "")
    };
    format!(
        "CREATE OR REPLACE VIEW {LAKE_FILES} AS SELECT CAST(dataset AS VARCHAR) AS dataset, CAST(path AS VARCHAR) AS path, CAST(rows AS BIGINT) AS rows, CAST(bytes AS BIGINT) AS bytes, CAST(run_id AS VARCHAR) AS run_id FROM (VALUES {values}) AS t(dataset, path, rows, bytes, run_id){filter};"
    )
}

/// What `hspq views --sql` says first: when a glob may show a row twice (the contract, §2).
pub const VIEWS_HEADER: &str = "\
-- hspq's views for DuckDB: each dataset view reads its files by glob, so it follows later syncs
-- without being made again. A plain glob shows each row once, except while a sync commits
-- (between its first new file and its clean-up, seconds), and after a sync that ended while an
-- hspq reader (a statement of sql, query, repl or report; a serve statement or cursor) still
-- read the version before it: the files that sync replaced then stay in place until that reader
-- is done (a serve reader's: until the next sync), and meanwhile a query over a re-fetched
-- partition counts its rows twice. `hspq views --sql
-- --dedup` prints views exact at any moment (several times slower); hspq's own commands never
-- see this.";

/// What `hspq views --sql` says first when every view deduplicates (`--dedup`, or a lake
/// without its log).
pub const DEDUP_HEADER: &str = "\
-- hspq's views for DuckDB: each dataset view reads its files by glob, so it follows later syncs
-- without being made again, and keeps each key's newest row: exact at any moment, even while a
-- sync commits, but several times slower on large scans than plain glob views.";

/// Every view, for `hspq views --sql`, reading the lake at `root` by glob. `unique` tells, for
/// each dataset, whether its files each hold a key once (`Some(true)`: a plain glob; `Some(false)`:
/// deduplicated, slower) or it has none (`None`: an empty view; a glob matching nothing is an
/// error in DuckDB).
pub fn all_views_sql(root: &str, unique: impl Fn(Dataset) -> Option<bool>) -> String {
    let kinds: Vec<(Dataset, Option<bool>)> =
        Dataset::ALL.iter().map(|d| (*d, unique(*d))).collect();
    let deduplicated: Vec<&str> = kinds
        .iter()
        .filter(|(_, u)| *u == Some(false))
        .map(|(d, _)| d.name())
        .collect();
    let plain = kinds.iter().any(|(_, u)| *u == Some(true));
    let mut header = match plain || deduplicated.is_empty() {
        true => VIEWS_HEADER.to_string(),
        false => DEDUP_HEADER.to_string(),
    };
    if plain && !deduplicated.is_empty() {
        header.push_str(&format!(
            "\n-- These keep each key's newest row instead (files from an older hspq may repeat a \
             key): {}.",
            deduplicated.join(", ")
        ));
    }
    std::iter::once(header)
        .chain(kinds.iter().map(|(d, u)| match u {
            Some(true) => view_sql(*d, &Source::UniqueGlob(root)),
            Some(false) => view_sql(*d, &Source::Glob(root)),
            None => view_sql(*d, &Source::Files(Vec::new())),
        }))
        .chain(DERIVED.iter().map(|(_, sql)| sql.trim().to_string()))
        .chain(MACROS.iter().map(|(_, sql)| sql.trim().to_string()))
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_casts_every_column_and_keeps_the_latest_row_per_key() {
        let sql = view_sql(Dataset::Billing, &Source::Glob("/lake"));
        assert!(sql.starts_with("CREATE OR REPLACE VIEW billing AS"));
        assert!(sql.contains("CAST(year AS BIGINT) AS year"));
        assert!(sql.contains("read_parquet('/lake/billing/**/*.parquet'"));
        assert!(sql.contains("PARTITION BY report_type, year, period, security_center_id, product ORDER BY ingested_at DESC"));
        let empty = view_sql(Dataset::Churn, &Source::Files(vec![]));
        assert!(
            empty.contains("CAST(NULL AS DOUBLE) AS failure_ratio")
                && empty.ends_with("WHERE false;")
        );
        let quoted = view_sql(Dataset::Me, &Source::Files(vec!["/it's/me.parquet".into()]));
        assert!(quoted.contains("['/it''s/me.parquet']"));
    }
}

//! The query side against real lakes written by `hspq ingest` from the simulator: view types
//! and keys (CONTRACT §3), latest-row-wins, partition pruning, every output format parsed
//! back, exit codes, and each bundled query's result checked against the simulator's data.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use chrono::{Datelike, Days, NaiveDate};
use common::lake::{commit_manifest, latest_manifest};
use common::*;
use hspq::sim::world::World;
use hspq::sim::{Partnership, Simulator};

async fn lake_from(sim: &Simulator, dir: &Path, keys: &[&str]) {
    ingest_lake(sim, dir, keys).await;
}

fn stdout(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Query results as `a|b|c` lines, through hspq's own engine.
async fn rows(dir: &Path, sql: &str) -> Vec<String> {
    let engine = hspq::query::Engine::open(&dir.into()).await.unwrap();
    let conn = engine.connection();
    let mut stmt = conn
        .prepare(&format!("select concat_ws('|', *columns(*)) from ({sql})"))
        .unwrap();
    let out = stmt
        .query_map([], |r| r.get::<_, Option<String>>(0))
        .unwrap();
    out.map(|r| r.unwrap().unwrap_or_default()).collect()
}

/// A bundled query's CSV output as rows of fields (no quoting in these results).
fn bundled(dir: &Path, name: &str, params: &[&str]) -> Vec<BTreeMap<String, String>> {
    let mut args = vec!["query", name, "--format", "json"];
    for p in params {
        args.push("--param");
        args.push(p);
    }
    let text = stdout(&hspq_on(dir, &args));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        })
        .collect()
}

const CONTRACT: &[(&str, &str)] = &[
    ("periods", "report_type VARCHAR, year BIGINT, period VARCHAR, period_from DATE, period_to DATE, is_current BOOLEAN, is_partial BOOLEAN, eligible_company_count INTEGER, products VARCHAR[], ingested_at TIMESTAMP WITH TIME ZONE, extra VARCHAR"),
    ("companies", "report_type VARCHAR, year BIGINT, period VARCHAR, security_center_id VARCHAR, company_name VARCHAR, status VARCHAR, products VARCHAR[], ingested_at TIMESTAMP WITH TIME ZONE, extra VARCHAR"),
    ("billing", "report_type VARCHAR, year BIGINT, period VARCHAR, period_from DATE, period_to DATE, is_partial BOOLEAN, security_center_id VARCHAR, company_name VARCHAR, product VARCHAR, billing_value BIGINT, billing_date DATE, last_scan_date DATE, null_reason VARCHAR, ingested_at TIMESTAMP WITH TIME ZONE, extra VARCHAR"),
    ("billing_totals", "report_type VARCHAR, year BIGINT, period VARCHAR, product VARCHAR, billing_total BIGINT, company_count INTEGER, null_company_count INTEGER, eligible_company_count INTEGER, ingested_at TIMESTAMP WITH TIME ZONE, extra VARCHAR"),
    ("daily_usage", "report_type VARCHAR, year BIGINT, period VARCHAR, security_center_id VARCHAR, company_name VARCHAR, product VARCHAR, date DATE, usage_value BIGINT, ingested_at TIMESTAMP WITH TIME ZONE, extra VARCHAR"),
    ("customers", "report_type VARCHAR, security_center_id VARCHAR, company_name VARCHAR, products VARCHAR[], ingested_at TIMESTAMP WITH TIME ZONE, extra VARCHAR"),
    ("customer_history", "report_type VARCHAR, security_center_id VARCHAR, company_name VARCHAR, seen_from DATE, seen_to DATE, gone_at DATE, ingested_at TIMESTAMP WITH TIME ZONE, extra VARCHAR"),
    ("engagement", "report_type VARCHAR, security_center_id VARCHAR, date DATE, month VARCHAR, sns_scans_succeeded BIGINT, sns_scans_failed BIGINT, was_scans_succeeded BIGINT, was_scans_failed BIGINT, cs_scans_succeeded BIGINT, cs_scans_failed BIGINT, probes_active BIGINT, probes_inactive BIGINT, api_calls BIGINT, ingested_at TIMESTAMP WITH TIME ZONE, extra VARCHAR"),
    ("churn", "report_type VARCHAR, security_center_id VARCHAR, indicator VARCHAR, date DATE, month VARCHAR, product VARCHAR, usage_value BIGINT, total_succeeded BIGINT, total_failed BIGINT, failure_ratio DOUBLE, probes_active BIGINT, probes_inactive BIGINT, has_scans BOOLEAN, has_api_calls BOOLEAN, ingested_at TIMESTAMP WITH TIME ZONE, extra VARCHAR"),
    ("me", "report_type VARCHAR, partner_name VARCHAR, api_key_name VARCHAR, api_key_prefix VARCHAR, scopes VARCHAR[], allowed_origins VARCHAR[], timezone VARCHAR, ingested_at TIMESTAMP WITH TIME ZONE, extra VARCHAR"),
    // sync_runs: the contract's columns, plus `warnings` and the `ingested_at`/`extra` every view has.
    ("sync_runs", "run_id VARCHAR, report_type VARCHAR, started_at TIMESTAMP WITH TIME ZONE, finished_at TIMESTAMP WITH TIME ZONE, status VARCHAR, requests BIGINT, retries BIGINT, rate_limited BIGINT, rows_written BIGINT, bytes_written BIGINT, error VARCHAR, warnings VARCHAR[], ingested_at TIMESTAMP WITH TIME ZONE, extra VARCHAR"),
];

const KEYS: &[(&str, &str)] = &[
    ("periods", "report_type, year, period"),
    ("companies", "report_type, year, period, security_center_id"),
    (
        "billing",
        "report_type, year, period, security_center_id, product",
    ),
    ("billing_totals", "report_type, year, period, product"),
    (
        "daily_usage",
        "report_type, year, period, security_center_id, product, date",
    ),
    ("customers", "report_type, security_center_id"),
    (
        "customer_history",
        "report_type, security_center_id, seen_from",
    ),
    ("engagement", "report_type, security_center_id, date"),
    (
        "churn",
        "report_type, security_center_id, indicator, date, product",
    ),
    ("me", "report_type, api_key_prefix"),
    ("sync_runs", "run_id"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_have_the_contract_columns_and_one_row_per_key() {
    let sim = sim(|c| c.companies = 12).await;
    let dir = tempfile::tempdir().unwrap();
    lake_from(&sim, dir.path(), &[MSSP_KEY, RESELLER_KEY]).await;
    for (view, columns) in CONTRACT {
        let got = rows(
            dir.path(),
            &format!("select column_name || ' ' || column_type from (describe {view})"),
        )
        .await;
        assert_eq!(got.join(", "), *columns, "{view}");
    }
    for (view, key) in KEYS {
        let dup = rows(
            dir.path(),
            &format!("select count(*) - count(distinct ({key})) from {view}"),
        )
        .await;
        assert_eq!(dup, vec!["0"], "{view}");
        let n = rows(dir.path(), &format!("select count(*) > 0 from {view}")).await;
        assert_eq!(n, vec!["true"], "{view} is empty");
    }
    let types = rows(
        dir.path(),
        "select distinct report_type from billing order by 1",
    )
    .await;
    assert_eq!(
        types,
        vec!["mssp", "reseller"],
        "one lake holds both report types"
    );
    // lake_files lists each live file once, with the rows the views read from it.
    for (view, _) in KEYS {
        let listed = rows(
            dir.path(),
            &format!("select coalesce(sum(rows), 0) from lake_files where dataset = '{view}'"),
        )
        .await;
        let counted = rows(dir.path(), &format!("select count(*) from {view}")).await;
        assert_eq!(listed, counted, "{view}");
    }
    let paths = rows(
        dir.path(),
        "select count(*) = count(distinct path) and bool_and(path like dataset || '/%.parquet') from lake_files",
    )
    .await;
    assert_eq!(paths, vec!["true"]);
    // An empty lake still has every view, with no rows.
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        rows(empty.path(), "select count(*) from churn").await,
        vec!["0"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_ingested_row_wins_and_filters_prune_partitions() {
    let sim = sim(|c| c.companies = 8).await;
    let dir = tempfile::tempdir().unwrap();
    lake_from(&sim, dir.path(), &[MSSP_KEY]).await;
    let before = rows(dir.path(), "select count(*) from billing").await;
    // A second version of 2026/02's billing rows, one day newer, as a second file.
    let mut manifest = latest_manifest(dir.path()).unwrap();
    let old = manifest["files"]
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.starts_with("billing/report_type=mssp/year=2026/period=02/"))
        .unwrap()
        .clone();
    let new = old.replace("part-", "foreign-");
    let conn = duckdb::Connection::open_in_memory().unwrap();
    conn.execute_batch(&format!(
        "copy (select * replace (ingested_at + interval 1 day as ingested_at, 999 as billing_value)
               from read_parquet('{0}/{old}')) to '{0}/{new}' (format parquet)",
        dir.path().display()
    ))
    .unwrap();
    // A file hspq's writer did not write promises nothing about its keys.
    let mut entry = manifest["files"][&old].clone();
    entry["unique_keys"] = false.into();
    manifest["files"][&new] = entry;
    commit_manifest(dir.path(), manifest);
    assert_eq!(
        rows(dir.path(), "select count(*) from billing").await,
        before,
        "still one row per key"
    );
    let values = rows(
        dir.path(),
        "select distinct billing_value from billing where year = 2026 and period = '02'",
    )
    .await;
    assert_eq!(values, vec!["999"]);

    let engine = hspq::query::Engine::open(&dir.path().into()).await.unwrap();
    // Views over files hspq wrote skip the deduplication; the one with a foreign file keeps it.
    let definition = |view: &str| -> String {
        engine
            .connection()
            .query_row(
                &format!("select sql from duckdb_views() where view_name = '{view}'"),
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert!(
        !definition("daily_usage").contains("row_number"),
        "{}",
        definition("daily_usage")
    );
    assert!(
        definition("billing").contains("row_number"),
        "{}",
        definition("billing")
    );
    let plan: String = engine
        .connection()
        .query_row(
            "explain analyze select count(*) from daily_usage where year = 2025 and period = '11'",
            [],
            |r| r.get(1),
        )
        .unwrap();
    assert!(plan.contains("Total Files Read: 1"), "{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_output_format_parses_back() {
    let sim = sim(|c| c.companies = 6).await;
    let dir = tempfile::tempdir().unwrap();
    lake_from(&sim, dir.path(), &[MSSP_KEY]).await;
    let sql = "select security_center_id, product, billing_value, billing_date, is_partial, company_name from billing order by all limit 30";
    let want = rows(dir.path(), sql).await;
    let first: Vec<&str> = want[0].split('|').collect();

    let csv = stdout(&hspq_on(dir.path(), &["sql", sql, "--format", "csv"]));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 31);
    assert_eq!(
        lines[0],
        "security_center_id,product,billing_value,billing_date,is_partial,company_name"
    );
    assert!(
        lines[1].starts_with(&format!("{},{},", first[0], first[1])),
        "{}",
        lines[1]
    );

    let json: serde_json::Value = serde_json::from_str(&stdout(&hspq_on(
        dir.path(),
        &["sql", sql, "--format", "json"],
    )))
    .unwrap();
    let arr = json.as_array().unwrap();
    assert_eq!(arr.len(), 30);
    assert_eq!(arr[0]["security_center_id"], first[0]);
    assert_eq!(arr[0]["billing_value"].to_string(), first[2]);

    let nd = stdout(&hspq_on(dir.path(), &["sql", sql, "--format", "ndjson"]));
    let objs: Vec<serde_json::Value> = nd
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs.len(), 30);
    assert_eq!(objs, *arr);

    let md = stdout(&hspq_on(dir.path(), &["sql", sql, "--format", "markdown"]));
    let md_lines: Vec<&str> = md.lines().collect();
    assert_eq!(md_lines.len(), 32);
    assert_eq!(md_lines[0], "| security_center_id | product | billing_value | billing_date | is_partial | company_name |");
    assert!(md_lines[2].starts_with(&format!("| {} | {} |", first[0], first[1])));
    // --max-rows holds for Markdown too, a format for people.
    let short = hspq_on(
        dir.path(),
        &["sql", sql, "--format", "markdown", "--max-rows", "12"],
    );
    assert_eq!(stdout(&short).lines().count(), 2 + 12);
    assert!(String::from_utf8_lossy(&short.stderr).contains("30 rows (12 shown"));

    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("r.parquet");
    let o = hspq_on(
        dir.path(),
        &[
            "sql",
            sql,
            "--format",
            "parquet",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    assert!(o.status.success() && o.stdout.is_empty());
    let conn = duckdb::Connection::open_in_memory().unwrap();
    let n: i64 = conn
        .query_row(
            &format!("select count(*) from read_parquet('{}')", file.display()),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 30);

    let table = hspq_on(
        dir.path(),
        &["sql", sql, "--format", "table", "--max-rows", "5"],
    );
    let text = stdout(&table);
    assert!(
        text.contains("security_center_id") && text.contains("bigint") && text.contains(first[0])
    );
    assert_eq!(text.lines().count(), 4 + 5 + 1, "{text}");
    assert!(String::from_utf8_lossy(&table.stderr).contains("30 rows (5 shown"));

    // An empty result keeps its header.
    let empty = stdout(&hspq_on(
        dir.path(),
        &[
            "sql",
            "select product from billing where false",
            "--format",
            "csv",
        ],
    ));
    assert_eq!(empty, "product\n");
    let empty_json = stdout(&hspq_on(
        dir.path(),
        &[
            "sql",
            "select product from billing where false",
            "--format",
            "json",
        ],
    ));
    assert_eq!(empty_json.trim(), "[]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_exit_non_zero_with_nothing_on_stdout() {
    let sim = sim(|c| c.companies = 4).await;
    let dir = tempfile::tempdir().unwrap();
    lake_from(&sim, dir.path(), &[MSSP_KEY]).await;
    let o = hspq_on(dir.path(), &["sql", "select * from no_such_view"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(String::from_utf8_lossy(&o.stderr).contains("Catalog Error"));
    let o = hspq_on(dir.path(), &["sql", "select 1; select nonsense("]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let o = hspq_on(dir.path(), &["sql", "select 1", "--format", "parquet"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--output"));
    let o = hspq_on(dir.path(), &["query", "nope"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("churn_risk"));
    let o = hspq_on(
        dir.path(),
        &["query", "churn_risk", "--param", "window_days=soon"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("must be integer"));
    // A statement may start with a comment (not a flag).
    let commented = stdout(&hspq_on(
        dir.path(),
        &["sql", "-- why\nselect 7 as n", "--format", "csv"],
    ));
    assert_eq!(commented, "n\n7\n");
    // A --data hspq cannot use is a usage error: exit 2, one line naming what works.
    let o = Command::new(env!("CARGO_BIN_EXE_hspq"))
        .args(["sql", "select 1", "--data", "gs://bucket/lake"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("s3://bucket/prefix"), "{err}");
    let missing = dir.path().join("not-here");
    let o = hspq_on(&missing, &["sql", "select 1"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no lake at"));
    // Several statements: the last one's result is printed.
    let last = stdout(&hspq_on(
        dir.path(),
        &[
            "sql",
            "create temp table t as select 41 as x; select x + 1 as y from t",
            "--format",
            "csv",
        ],
    ));
    assert_eq!(last, "y\n42\n");
}

#[test]
fn a_closed_pipe_ends_the_output_quietly_with_success() {
    // Narrow rows end in the output's own buffer; wide ones inside Arrow's CSV writer, which
    // keeps only the text of the I/O error.
    for (format, sql) in [
        ("csv", "select * from range(5000000)"),
        ("csv", "select repeat('x', 2000) as wide from range(20000)"),
        (
            "ndjson",
            "select repeat('x', 2000) as wide from range(20000)",
        ),
    ] {
        closed_pipe(format, sql);
    }
}

fn closed_pipe(format: &str, sql: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hspq"))
        .args(["sql", sql, "--format", format, "--data"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 64];
    std::io::Read::read_exact(&mut out, &mut buf).unwrap();
    drop(out);
    let status = child.wait_with_output().unwrap();
    assert!(
        status.status.success() && status.stderr.is_empty(),
        "{format} {sql}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// The Parquet files under `dir`, at any depth.
fn walkdir(dir: &Path) -> std::collections::BTreeSet<std::path::PathBuf> {
    let mut out = std::collections::BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().map(Result::unwrap) {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.insert(p);
            }
        }
    }
    out
}

#[test]
fn views_sql_runs_in_a_plain_duckdb_and_views_duckdb_writes_a_database() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    rt.block_on(async {
        let sim = sim(|c| c.companies = 5).await;
        lake_from(&sim, dir.path(), &[MSSP_KEY]).await;
    });
    let sql = stdout(&hspq_on(dir.path(), &["views", "--sql"]));
    // hspq wrote every file with each key once: plain globs, no deduplication, and the header
    // says when a glob may show a row twice.
    assert!(sql.starts_with("-- hspq's views for DuckDB"), "{sql}");
    assert!(!sql.contains("QUALIFY"), "{sql}");
    let conn = duckdb::Connection::open_in_memory().unwrap();
    conn.execute_batch(&sql).unwrap();
    let counts = "select (select count(*) from daily_usage) || ' ' || (select count(*) from billing) \
                  || ' ' || (select count(*) from periods) || ' ' || (select count(*) from companies)";
    let count =
        |conn: &duckdb::Connection| -> String { conn.query_row(counts, [], |r| r.get(0)).unwrap() };
    let n: i64 = conn
        .query_row("select count(*) from daily_usage", [], |r| r.get(0))
        .unwrap();
    let want = rt.block_on(rows(dir.path(), "select count(*) from daily_usage"));
    assert_eq!(n.to_string(), want[0]);
    // The same views after another sync, which re-fetches the open period: each row once.
    let files = || -> std::collections::BTreeSet<std::path::PathBuf> {
        walkdir(&dir.path().join("daily_usage"))
    };
    let before = files();
    rt.block_on(async {
        let sim = sim(|c| c.companies = 5).await;
        lake_from(&sim, dir.path(), &[MSSP_KEY]).await;
    });
    assert_ne!(
        files(),
        before,
        "the second sync replaced daily_usage files"
    );
    assert_eq!(count(&conn), rt.block_on(rows(dir.path(), counts))[0]);
    // --dedup: every view keeps each key's newest row, and counts the same.
    let exact = stdout(&hspq_on(dir.path(), &["views", "--sql", "--dedup"]));
    assert!(
        exact.matches("QUALIFY row_number()").count() >= 5,
        "{exact}"
    );
    let conn = duckdb::Connection::open_in_memory().unwrap();
    conn.execute_batch(&exact).unwrap();
    assert_eq!(count(&conn), rt.block_on(rows(dir.path(), counts))[0]);
    // The case the header names: a sync that ends while an hspq reader still reads the version
    // before keeps the files it replaced in place while that reader reads. Plain globs count
    // them too; --dedup's views do not.
    let resync = || {
        rt.block_on(async {
            let sim = sim(|c| c.companies = 5).await;
            lake_from(&sim, dir.path(), &[MSSP_KEY]).await;
        })
    };
    let (engine, pin) = rt.block_on(async {
        let engine = hspq::query::Engine::open(&dir.path().into()).await.unwrap();
        let pin = engine.statement(|_| Ok(engine.hold())).unwrap();
        (engine, pin.expect("a reader pin"))
    });
    resync();
    let (plain, exact_views) = (
        duckdb::Connection::open_in_memory().unwrap(),
        duckdb::Connection::open_in_memory().unwrap(),
    );
    plain.execute_batch(&sql).unwrap();
    exact_views.execute_batch(&exact).unwrap();
    let truth = rt.block_on(rows(dir.path(), counts))[0].clone();
    assert_ne!(
        count(&plain),
        truth,
        "the pinned version's files were still in place"
    );
    assert_eq!(count(&exact_views), truth);
    // Once the reader is done it retires them itself, the lake being free: no sync needed.
    drop((pin, engine));
    assert_eq!(count(&plain), truth);
    let db = dir.path().join("views.duckdb");
    let o = hspq_on(dir.path(), &["views", "--duckdb", db.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let conn = duckdb::Connection::open(&db).unwrap();
    let n2: i64 = conn
        .query_row("select count(*) from daily_usage", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, n2);
}

// ---- bundled queries -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_reconciliation_is_empty_on_agreeing_data_and_names_each_disagreement() {
    let sim = sim(|c| c.companies = 10).await;
    let dir = tempfile::tempdir().unwrap();
    lake_from(&sim, dir.path(), &[MSSP_KEY, RESELLER_KEY]).await;
    assert!(bundled(dir.path(), "billing_reconciliation", &[]).is_empty());
    // Tamper: the API's SNS total for 2026/01 is 5 more than the per-company values.
    let manifest = latest_manifest(dir.path()).unwrap();
    let file = manifest["files"]
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.starts_with("billing_totals/report_type=mssp/year=2026/period=01/"))
        .unwrap()
        .clone();
    let path = dir.path().join(&file);
    let conn = duckdb::Connection::open_in_memory().unwrap();
    conn.execute_batch(&format!(
        "copy (select * replace (case when product = 'SNS' then billing_total + 5 else billing_total end as billing_total)
               from read_parquet('{0}')) to '{0}.tmp' (format parquet)",
        path.display()
    ))
    .unwrap();
    std::fs::rename(format!("{}.tmp", path.display()), &path).unwrap();
    let found = bundled(dir.path(), "billing_reconciliation", &[]);
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!(
        (
            f["finding"].as_str(),
            f["product"].as_str(),
            f["period"].as_str()
        ),
        ("totals_mismatch", "SNS", "01")
    );
    assert_eq!(f["difference"], "-5");
    assert!(bundled(
        dir.path(),
        "billing_reconciliation",
        &["report_type=reseller"]
    )
    .is_empty());
}

fn sums_by_period(w: &World, p: Partnership) -> BTreeMap<(i32, u32, &'static str), u64> {
    let mut sums = BTreeMap::new();
    for x in w.periods(p) {
        for c in w.eligible(p, &x) {
            for b in w.billing(c, &x, None) {
                *sums.entry((x.year, x.month, b.product)).or_insert(0) +=
                    b.billing_value.unwrap_or(0);
            }
        }
    }
    sums
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_trend_and_movers_match_the_simulators_billing() {
    let sim = sim(|c| c.companies = 15).await;
    let dir = tempfile::tempdir().unwrap();
    lake_from(&sim, dir.path(), &[MSSP_KEY]).await;
    let w = sim.world();
    let sums = sums_by_period(w, Partnership::Mssp);
    let trend = bundled(dir.path(), "billing_trend", &[]);
    assert_eq!(trend.len(), sums.len());
    for row in &trend {
        let key = (
            row["year"].parse::<i32>().unwrap(),
            row["period"].parse::<u32>().unwrap(),
            PRODUCT(&row["product"]),
        );
        let want = sums
            .get(&key)
            .unwrap_or_else(|| panic!("{row:?} not in the world"));
        assert_eq!(row["billing_total"], want.to_string(), "{row:?}");
        let prev_label = NaiveDate::from_ymd_opt(key.0, key.1, 1).unwrap() - chrono::Months::new(1);
        match sums.get(&(prev_label.year(), prev_label.month(), key.2)) {
            Some(prev) => assert_eq!(
                row["change"],
                (sums[&key] as i64 - *prev as i64).to_string(),
                "{row:?}"
            ),
            None => assert_eq!(row["change"], "null"),
        }
    }
    // `periods` keeps the latest N periods with the changes computed over all of them.
    let latest = bundled(dir.path(), "billing_trend", &["periods=3"]);
    let mut labels: Vec<(String, String)> = trend
        .iter()
        .map(|r| (r["year"].clone(), r["period"].clone()))
        .collect();
    labels.sort();
    labels.dedup();
    let last_three = &labels[labels.len() - 3..];
    let expected: Vec<_> = trend
        .iter()
        .filter(|r| last_three.contains(&(r["year"].clone(), r["period"].clone())))
        .collect();
    assert_eq!(latest.iter().collect::<Vec<_>>(), expected);
    // Movers between the last two closed periods: the biggest absolute change first.
    let closed: Vec<_> = w
        .periods(Partnership::Mssp)
        .into_iter()
        .filter(|p| !p.is_partial)
        .take(2)
        .collect();
    let total = |c: &hspq::sim::world::Company, x: &hspq::sim::world::Period| -> i64 {
        if !w
            .eligible(Partnership::Mssp, x)
            .iter()
            .any(|e| e.id == c.id)
        {
            return 0;
        }
        w.billing(c, x, None)
            .iter()
            .map(|b| b.billing_value.unwrap_or(0) as i64)
            .sum()
    };
    let mut changes: Vec<(i64, String)> = w
        .companies(Partnership::Mssp)
        .iter()
        .filter(|c| {
            w.eligible(Partnership::Mssp, &closed[1])
                .iter()
                .any(|e| e.id == c.id)
        })
        .map(|c| (total(c, &closed[0]) - total(c, &closed[1]), c.id.clone()))
        .collect();
    changes.sort_by(|a, b| b.0.abs().cmp(&a.0.abs()).then(a.1.cmp(&b.1)));
    let movers = bundled(dir.path(), "billing_movers", &["top=3"]);
    assert_eq!(movers.len(), 3);
    for (row, (change, id)) in movers.iter().zip(&changes) {
        assert_eq!(
            (row["security_center_id"].as_str(), row["change"].clone()),
            (id.as_str(), change.to_string())
        );
        assert_eq!(
            row["to_period"],
            format!("{}-{}", closed[0].year, closed[0].label())
        );
    }
}

#[allow(non_snake_case)]
fn PRODUCT(p: &str) -> &'static str {
    hspq::sim::world::PRODUCTS
        .iter()
        .find(|x| **x == p)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_daily_and_churn_signals_match_the_simulators_data() {
    let sim = sim(|c| c.companies = 8).await;
    let dir = tempfile::tempdir().unwrap();
    lake_from(&sim, dir.path(), &[MSSP_KEY]).await;
    let w = sim.world();
    let c = w.customers(Partnership::Mssp)[0];
    let got = bundled(
        dir.path(),
        "usage_daily",
        &[&format!("security_center_id={}", c.id), "product=SNS"],
    );
    let mut want = Vec::new();
    for x in w.periods(Partnership::Mssp) {
        for d in w.daily(c, &x, Some("SNS")) {
            want.push(format!("{}|{}", d.date, d.usage_value));
        }
    }
    want.sort();
    let got: Vec<String> = got
        .iter()
        .map(|r| format!("{}|{}", r["date"], r["usage_value"]))
        .collect();
    assert_eq!(got, want);

    let weeks = bundled(
        dir.path(),
        "churn_signals",
        &[&format!("security_center_id={}", c.id), "weeks=4"],
    );
    assert!(!weeks.is_empty());
    let last = w.last_customer_day();
    for row in &weeks {
        let week: NaiveDate = row["week"].parse().unwrap();
        let days: Vec<NaiveDate> = (0..7)
            .map(|i| week + Days::new(i))
            .filter(|d| *d <= last && *d > last - Days::new(28))
            .collect();
        let failed: u64 = days.iter().map(|d| w.engagement(c, *d).failed()).sum();
        let ok: u64 = days.iter().map(|d| w.engagement(c, *d).succeeded()).sum();
        let api: u64 = days.iter().map(|d| w.engagement(c, *d).api_calls).sum();
        assert_eq!(
            (
                row["scans_failed"].clone(),
                row["scans_succeeded"].clone(),
                row["api_calls"].clone()
            ),
            (failed.to_string(), ok.to_string(), api.to_string()),
            "{row:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repl_reads_statements_and_dot_commands_from_piped_stdin() {
    use std::io::Write;
    let sim = sim(|c| c.companies = 5).await;
    let dir = tempfile::tempdir().unwrap();
    lake_from(&sim, dir.path(), &[MSSP_KEY]).await;
    let script = ".tables\n.mode csv\nselect count(*) as n\n  from customers;\n.mode json\nselect 1 as one;\n.tabels\n.run usage_daily security_center_id=NONE\n";
    let run = |input: &'static str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hspq"))
            .args(["repl", "--data"])
            .arg(dir.path())
            .env("HOME", dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run(script);
    let text = String::from_utf8_lossy(&out.stdout);
    let customers = sim.world().customers(Partnership::Mssp).len();
    assert!(text.starts_with("periods\ncompanies\n"), "{text}");
    assert!(
        text.contains(&format!("n\n{customers}\n")),
        "multi-line statement in csv mode: {text}"
    );
    assert!(text.contains(r#"[{"one":1}]"#), "{text}");
    assert!(
        text.contains("report_type,year,period,date,product,usage_value,company_name")
            || text.contains("[]"),
        "{text}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did you mean .tables"), "{err}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed line makes the exit status non-zero"
    );
    // .status prints the lake's datasets through the same printer, in the shell's mode.
    let status = run(".mode csv\n.status\n");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(text.contains("mssp report: "), "{text}");
    assert!(text.contains("dataset,files,rows,bytes\n"), "{text}");
    let customers_line = text
        .lines()
        .find(|l| l.starts_with("customers,"))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        customers_line.split(',').nth(2),
        Some(customers.to_string().as_str())
    );
    let clean = run(".mode csv\nselect 2 as two;\n");
    assert!(clean.status.success());
    assert_eq!(String::from_utf8_lossy(&clean.stdout), "two\n2\n");
}

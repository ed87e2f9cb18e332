//! `hspq serve` with PostgreSQL drivers it was not first built against, each reading a lake
//! `hspq ingest` wrote: asyncpg (typed binary parameters, binary results of every view, a
//! time-out that cancels, transaction blocks), pgjdbc, COPY readers, and the server-side cursors
//! of psycopg2, psycopg 3, asyncpg and Tableau.

mod common;

use std::path::Path;
use std::process::Command;

use common::serve::{Server, PASSWORD};
use common::{hspq_on, ingest_lake, sim, succeeded, venv_tool, MSSP_KEY, RESELLER_KEY};

/// `select count(*)` of `sql`'s rows, through `hspq sql`.
fn count(lake: &Path, sql: &str) -> i64 {
    let out = String::from_utf8(succeeded(hspq_on(
        lake,
        &[
            "sql",
            &format!("select count(*) from ({sql})"),
            "--format",
            "csv",
        ],
    )))
    .unwrap();
    out.lines().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncpg_binds_typed_parameters_decodes_every_view_in_binary_and_cancels_on_time_out() {
    let sim = sim(|c| c.companies = 30).await;
    let lake = tempfile::tempdir().unwrap();
    ingest_lake(&sim, lake.path(), &[MSSP_KEY, RESELLER_KEY]).await;
    let server = Server::start(lake.path());
    let views = hspq::query::views::names();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve_clients/asyncpg_check.py");
    let out = Command::new(venv_tool("python"))
        .arg(script)
        .args(["127.0.0.1", &server.port.to_string(), PASSWORD])
        .args(&views)
        .output()
        .unwrap();
    let got: serde_json::Value = serde_json::from_slice(&succeeded(out)).unwrap();
    let p = &got["params"];
    assert_eq!(
        p["year"],
        count(lake.path(), "select * from billing where year = 2025")
    );
    assert_eq!(
        p["date"],
        count(
            lake.path(),
            "select * from daily_usage where date >= date '2025-06-01'"
        )
    );
    assert_eq!(
        p["timestamptz"],
        count(lake.path(), "select * from billing")
    );
    assert_eq!(
        p["text_array"],
        count(
            lake.path(),
            "select * from billing where product in ('SNS', 'PAT')"
        )
    );
    assert_eq!(
        p["infinity"], "9999-12-31",
        "asyncpg's date.max is PostgreSQL's infinity"
    );
    assert_eq!(got["bad_argument"], "refused");
    assert_eq!(got["after_bad_argument"], 42);
    for view in &views {
        assert_eq!(
            got["views"][view],
            count(lake.path(), &format!("select * from {view}")),
            "{view}"
        );
    }
    assert!(got["views"]["daily_usage"].as_i64().unwrap() > 1000);
    assert_eq!(got["timeout"], "cancelled");
    assert_eq!(got["after_timeout"], 42);
    assert_eq!(got["cursor_rows"], got["views"]["daily_usage"]);
    assert_eq!(got["failed_block"], "UndefinedTableError", "{got}");
    assert_eq!(got["in_failed_block"], "25P02");
    assert_eq!(got["after_rollback"], 7);
    assert_eq!(
        got["lists"],
        serde_json::json!({
            "int": [1, 2, 3],
            "bigint": [10000000000i64, -1],
            "double": [1.5, 2.5],
            "date": ["2026-01-31"],
            "oid": [23, 20],
        }),
        "asyncpg reads lists of numbers, dates and oids"
    );
    assert_eq!(got["int_list_param"], 42);
    assert_eq!(got["after_savepoint"], 8);
    assert_eq!(got["after_far_timestamp"], 9, "{got}");
    // 30 logins at once from one address: those beyond 8 wait for a place, none is turned away.
    assert_eq!(got["pool"], (0..30).sum::<i64>(), "{got}");
    assert_eq!(got["one_too_many"], "refused", "{got}");
    assert_eq!(got["protocol_violations"], serde_json::json!([]), "{got}");
    let printed = server.stop();
    assert!(printed.contains("cancel request"), "{printed}");
}

/// pgjdbc (Debian's libpostgresql-jdbc-java, which scripts/test.sh installs) run by `java` on
/// tests/serve_clients/JdbcCheck.java; its `name=value` lines.
fn jdbc(server: &Server) -> std::collections::HashMap<String, String> {
    let jar = Path::new("/usr/share/java/postgresql.jar");
    assert!(
        jar.exists(),
        "pgjdbc not found: run ./scripts/test.sh, which installs libpostgresql-jdbc-java"
    );
    let check = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve_clients/JdbcCheck.java");
    let out = Command::new("java")
        .arg("-cp")
        .arg(jar)
        .arg(check)
        .args([&server.port.to_string(), PASSWORD])
        .output()
        .unwrap();
    String::from_utf8(succeeded(out))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgjdbc_reads_the_metadata_binds_in_binary_and_pages_a_whole_view() {
    let sim = sim(|c| c.companies = 30).await;
    let lake = tempfile::tempdir().unwrap();
    ingest_lake(&sim, lake.path(), &[MSSP_KEY]).await;
    let server = Server::start(lake.path());
    let got = jdbc(&server);
    assert_eq!(got["product"], "PostgreSQL");
    let tables: Vec<&str> = got["tables"].split(',').collect();
    for view in ["billing", "daily_usage", "periods", "churn_events"] {
        assert!(tables.contains(&view), "{view} not in {tables:?}");
    }
    for column in ["year:int8", "billing_date:date", "is_partial:bool"] {
        assert!(
            got["billing_columns"].contains(column),
            "{column}: {}",
            got["billing_columns"]
        );
    }
    assert_eq!(
        got["date_param"].parse::<i64>().unwrap(),
        count(
            lake.path(),
            "select * from daily_usage where date >= date '2025-06-01' and report_type = 'mssp'"
        )
    );
    let sum = String::from_utf8(succeeded(hspq_on(
        lake.path(),
        &[
            "sql",
            "select sum(billing_value) from billing where year = 2025",
            "--format",
            "csv",
        ],
    )))
    .unwrap();
    assert_eq!(got["int_param"], sum.lines().nth(1).unwrap());
    let rows: i64 = got["fetched_rows"].parse().unwrap();
    assert_eq!(rows, count(lake.path(), "select * from daily_usage"));
    assert!(rows > 1000, "a single page proves no paging: {rows}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_readers_psql_copy_connectorx_and_adbc_read_whole_views() {
    let sim = sim(|c| c.companies = 30).await;
    let lake = tempfile::tempdir().unwrap();
    ingest_lake(&sim, lake.path(), &[MSSP_KEY]).await;
    let server = Server::start(lake.path());
    // psql's \copy sends COPY (...) TO STDOUT and writes what comes back to a file.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("billing.csv");
    let out = server.psql_as(
        PASSWORD,
        &format!(
            "\\copy (select * from billing order by all) to '{}' with (format csv, header)",
            csv.display()
        ),
    );
    succeeded(out);
    let want = String::from_utf8(succeeded(hspq_on(
        lake.path(),
        &[
            "sql",
            "select * from billing order by all",
            "--format",
            "csv",
        ],
    )))
    .unwrap();
    let got = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(got.lines().count(), want.lines().count());
    assert_eq!(got.lines().next(), want.lines().next(), "the header");
    let text = dir.path().join("daily_usage.txt");
    let out = server.psql_as(
        PASSWORD,
        &format!("\\copy daily_usage to '{}'", text.display()),
    );
    succeeded(out);
    let lines = std::fs::read_to_string(&text).unwrap().lines().count() as i64;
    assert_eq!(lines, count(lake.path(), "select * from daily_usage"));
    // polars (connectorx, binary COPY) and ADBC read every dataset view whole.
    let views = [
        "billing",
        "daily_usage",
        "periods",
        "companies",
        "engagement",
    ];
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve_clients/copy_readers.py");
    let out = Command::new(venv_tool("python"))
        .arg(script)
        .arg(format!(
            "postgresql://hspq:{PASSWORD}@127.0.0.1:{}/hspq",
            server.port
        ))
        .args(views)
        .output()
        .unwrap();
    let got: serde_json::Value = serde_json::from_slice(&succeeded(out)).unwrap();
    for view in views {
        let rows = count(lake.path(), &format!("select * from {view}"));
        assert_eq!(got["connectorx"][view][0], rows, "connectorx {view}");
        assert_eq!(got["adbc"][view][0], rows, "adbc {view}");
        assert_eq!(got["connectorx"][view][1], got["adbc"][view][1], "{view}");
    }
    let sum = String::from_utf8(succeeded(hspq_on(
        lake.path(),
        &[
            "sql",
            "select sum(billing_value) from billing",
            "--format",
            "csv",
        ],
    )))
    .unwrap();
    let sum: i64 = sum.lines().nth(1).unwrap().parse().unwrap();
    assert_eq!(got["connectorx_sum"], sum);
    assert_eq!(got["adbc_sum"], sum);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_and_row_limited_portals_stream_for_psycopg2_psycopg_asyncpg_and_tableau() {
    let sim = sim(|c| c.companies = 30).await;
    let lake = tempfile::tempdir().unwrap();
    ingest_lake(&sim, lake.path(), &[MSSP_KEY]).await;
    const TIMEOUT: &str = "4";
    let server = Server::start_with(
        lake.path(),
        &["--query-timeout".as_ref(), format!("{TIMEOUT}s").as_ref()],
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve_clients/cursors.py");
    let out = Command::new(venv_tool("python"))
        .arg(script)
        .args(["127.0.0.1", &server.port.to_string(), PASSWORD, TIMEOUT])
        .output()
        .unwrap();
    let got: serde_json::Value = serde_json::from_slice(&succeeded(out)).unwrap();
    let whole = count(
        lake.path(),
        "select * from daily_usage where report_type = 'mssp'",
    );
    assert!(whole > 4000, "more than two FETCHes: {whole}");
    assert_eq!(got["psycopg2_whole"], whole, "{got}");
    // An endless result's first rows: it could not have been built whole.
    assert_eq!(
        got["psycopg2_endless"],
        serde_json::json!([0, 1, 2, 13, 14])
    );
    assert_eq!(
        got["psycopg2_between"],
        count(lake.path(), "select * from billing")
    );
    assert_eq!(
        got["psycopg2_after_commit"], "34000",
        "closed with its block"
    );
    assert_eq!(
        got["psycopg2_held"],
        serde_json::json!([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    );
    assert_eq!(got["tableau"], serde_json::json!([2048, 2048, 904, 4999]));
    assert_eq!(got["closed"], "34000");
    assert_eq!(got["outside_block"], "25P01");
    assert_eq!(got["scroll"], "0A000");
    assert_eq!(got["writes"], "25006", "a cursor's query is checked as any");
    assert_eq!(got["backward"], "55000");
    assert_eq!(got["slow"], "57014");
    assert_eq!(got["after_slow"], "ran");
    // DuckDB reports a streamed query that failed on one of its threads either with the
    // error (error(): Invalid Input, 22023) or, when another thread stopped first, as
    // "Interrupted" (XX000): never as a cancel (57014), which hspq says only of its own.
    let failing = &got["failing_cursor"];
    assert!(
        failing[0] == 2048
            && (failing[1] == "22023" || failing[1] == "XX000")
            && failing[2] == "55000",
        "a failed cursor does not look finished: {failing} {}",
        got["failing_cursor_message"]
    );
    assert_eq!(got["rolled_back"], "34000");
    assert_eq!(got["failed_message"], "42P01");
    assert_eq!(got["after_failed_message"], "34000");
    assert_eq!(got["sixty_fifth"], "53000");
    assert_eq!(got["reopened"], 5);
    assert_eq!(got["psycopg3_columns"], serde_json::json!(["x", "y"]));
    assert_eq!(
        got["psycopg3_rows"],
        serde_json::json!([[5, 10], [6, 12], [7, 14], [18, 36]])
    );
    assert_eq!(
        got["psycopg3_binary_view"],
        count(lake.path(), "select * from billing")
    );
    assert_eq!(got["idle_held"], "34000", "a held cursor left idle closes");
    assert_eq!(got["asyncpg_endless"], serde_json::json!([120, 119]));
    let printed = server.stop();
    assert!(!printed.contains("panicked"), "{printed}");
}

//! `hspq serve` against real PostgreSQL clients: psql (Debian's postgresql-client, which
//! scripts/test.sh installs when missing) and psycopg 3 (tests/requirements.txt).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::serve::{psql, Reaped, Server, PASSWORD};
use common::{hspq_on, ingest_lake, sim, succeeded, venv_tool, MSSP_KEY, RESELLER_KEY};

async fn lake() -> tempfile::TempDir {
    let sim = sim(|c| c.companies = 40).await;
    let dir = tempfile::tempdir().unwrap();
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_reads_the_views_as_hspq_sql_does_and_writes_are_refused() {
    let lake = lake().await;
    let server = Server::start(lake.path());
    let sql = "select report_type, count(*), sum(billing_value) from billing group by 1 order by 1";
    let want = String::from_utf8(succeeded(hspq_on(
        lake.path(),
        &["sql", sql, "--format", "csv"],
    )))
    .unwrap();
    let got = server.psql(sql);
    assert_eq!(
        got.replace('|', ","),
        want.lines()
            .skip(1)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    // Types as PostgreSQL writes them: text[] as {..}, booleans t/f, timestamptz with +00,
    // HUGEINT and DECIMAL as numbers, a struct as JSON.
    let row = server.psql(
        "select products, is_partial, period_from, ingested_at, sum(eligible_company_count) \
         over () as total, 1.50::decimal(5,2) as d, {'a': 1} as s \
         from periods order by period_from limit 1",
    );
    let fields: Vec<&str> = row.trim_end().split('|').collect();
    assert!(
        fields[0].starts_with('{') && fields[0].contains("SNS"),
        "{row}"
    );
    assert!(fields[1] == "t" || fields[1] == "f", "{row}");
    assert_eq!(fields[2].len(), 10, "{row}");
    assert!(fields[3].ends_with("+00"), "{row}");
    assert!(fields[4].parse::<i64>().unwrap() > 0, "{row}");
    assert_eq!(fields[5], "1.50");
    assert_eq!(fields[6], r#"{"a":1}"#);
    // psql's \dt and \d read the catalog: the views are read-only tables, typed as sent.
    let tables = server.psql("\\dt");
    assert!(tables.contains("main|billing|table|hspq\n"), "{tables}");
    assert!(
        tables.contains("main|churn_events|table|hspq\n"),
        "{tables}"
    );
    let billing = server.psql("\\d billing");
    for column in [
        "year|bigint|",
        "billing_date|date|",
        "is_partial|boolean|",
        "ingested_at|timestamp with time zone|",
        "company_name|character varying|",
    ] {
        assert!(billing.contains(column), "{column} not in {billing}");
    }
    assert!(server
        .psql("\\d+ billing")
        .contains("billing_value|bigint|"));
    // What clients say before their queries is answered.
    assert_eq!(
        server.psql("SET extra_float_digits = 3; SHOW transaction isolation level"),
        "SET\nread committed\n"
    );
    // Nothing writes, and nothing outside the lake is read.
    for (sql, why) in [
        ("copy billing to '/tmp/hspq-serve-test.csv'", "read-only"),
        ("create table t as select 1", "read-only"),
        ("attach '/tmp/hspq-serve-test.db'", "read-only"),
        ("install httpfs", "read-only"),
        ("select * from read_csv('/etc/passwd')", "Permission Error"),
    ] {
        let out = server.psql_as(PASSWORD, sql);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(why),
            "{sql}: {stderr}"
        );
    }
    assert!(!Path::new("/tmp/hspq-serve-test.csv").exists());
    // Blocks as PostgreSQL keeps them: a savepoint is rolled back to only inside one.
    let out = server.psql_as(PASSWORD, "rollback to savepoint s");
    assert!(String::from_utf8_lossy(&out.stderr).contains("only be used in transaction blocks"));
    assert_eq!(
        server.psql("begin; savepoint s; select 1; rollback to savepoint s; commit"),
        "BEGIN\nSAVEPOINT\n1\nROLLBACK\nCOMMIT\n"
    );
    // DuckDB's settings are refused, so the sandbox stays on.
    let out = server.psql_as(
        PASSWORD,
        "set enable_external_access = true; select * from read_csv('/etc/passwd')",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DuckDB's setting enable_external_access"),
        "{stderr}"
    );
    // A wrong password is refused.
    let out = server.psql_as("wrong", "select 1");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("authentication failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = server.stop();
    assert!(!printed.contains(PASSWORD), "{printed}");
    assert!(printed.contains("read-only"), "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psqls_ctrl_c_cancels_the_running_query() {
    let lake = lake().await;
    // Debug logging says when the server has the statement (psql is then waiting on it).
    let mut server = Server::start_in(lake.path(), &[], |c| {
        c.env("RUST_LOG", "hspq=debug");
    });
    let (seen, statements) = std::sync::mpsc::channel();
    let log = std::io::BufReader::new(server.child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(log).map_while(Result::ok) {
            if line.contains("statement: select count(*) from daily_usage a") {
                let _ = seen.send(());
            }
        }
    });
    let mut psql = Command::new(psql())
        .arg(server.conninfo())
        .args([
            "-X",
            "-c",
            "select count(*) from daily_usage a, daily_usage b, daily_usage c \
             where a.usage_value + b.usage_value + c.usage_value = 7",
        ])
        .env("PGPASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    statements
        .recv_timeout(Duration::from_secs(30))
        .expect("the server never got the statement");
    assert!(psql.try_wait().unwrap().is_none(), "the query ended early");
    let pid = psql.id() as i32;
    // A cancel that reaches the server before DuckDB starts the statement is dropped, as
    // PostgreSQL drops one with nothing running: Ctrl-C again, as a user would, until psql is
    // told the statement was cancelled.
    let sent = Instant::now();
    let out = loop {
        // SAFETY: sending a signal to a child of this test.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        let polled = Instant::now();
        while psql.try_wait().unwrap().is_none() && polled.elapsed() < Duration::from_millis(500) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if psql.try_wait().unwrap().is_some() {
            break psql.wait_with_output().unwrap();
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "psql did not end within 10 s of Ctrl-C"
        );
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("canceling statement due to user request"),
        "{stderr}"
    );
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "{:?}",
        sent.elapsed()
    );
    // The connection's next client is answered at once.
    assert_eq!(server.psql("select 42"), "42\n");
}

/// Found from outside: a client's first statement waits while its session opens (a second
/// or more on a busy server), and a cancel in that time was dropped: the query ran to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_while_the_session_opens_cancels_the_first_statement() {
    let lake = lake().await;
    let server = Server::start(lake.path());
    let script = r#"
import sys, threading, time, psycopg
conn = psycopg.connect(sys.argv[1], password=sys.argv[2], autocommit=True)
out = {}
def run():
    started = time.monotonic()
    try:
        conn.execute("select count(*) from range(400000) a(i), range(20000) b(j) where i * j = 7")
        out["answer"] = "ran to its end"
    except psycopg.errors.QueryCanceled as e:
        out["answer"] = "cancelled"
    out["seconds"] = time.monotonic() - started
t = threading.Thread(target=run)
t.start()
time.sleep(0.05)  # the statement is sent; its session is still opening
conn.cancel()
t.join()
print(out["answer"], out["seconds"] < 10)
"#;
    let out = Command::new(venv_tool("python"))
        .args(["-c", script, &server.conninfo(), PASSWORD])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(succeeded(out)).unwrap(),
        "cancelled True\n"
    );
    assert_eq!(server.psql("select 42"), "42\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_psycopg_client_binds_parameters_and_sees_a_sync_that_lands_while_connected() {
    let sim = sim(|c| c.companies = 40).await;
    let lake = tempfile::tempdir().unwrap();
    ingest_lake(&sim, lake.path(), &[MSSP_KEY]).await;
    let server = Server::start(lake.path());
    let script = r#"
import sys, psycopg
conn = psycopg.connect(sys.argv[1], password=sys.argv[2], autocommit=True)
def count(report_type):
    return conn.execute(
        "select count(*) from billing where report_type = %s and billing_value >= %s",
        (report_type, 0)).fetchone()[0]
print(count("mssp"), count("reseller"), flush=True)
sys.stdin.readline()  # the test syncs the reseller key meanwhile
print(count("mssp"), count("reseller"), flush=True)
"#;
    let mut client = Command::new(venv_tool("python"))
        .args(["-c", script, &server.conninfo(), PASSWORD])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(client.stdout.take().unwrap()));
    let before = lines.next().unwrap().unwrap();
    let counts = |line: &str| -> Vec<i64> { line.split(' ').map(|n| n.parse().unwrap()).collect() };
    let b = counts(&before);
    assert!(b[0] > 0 && b[1] == 0, "{before}");
    let log =
        String::from_utf8(succeeded(hspq_on(lake.path(), &["log", "--format", "csv"]))).unwrap();
    let mssp_only = format!(
        "v{}",
        log.lines().last().unwrap().split(',').next().unwrap()
    );
    ingest_lake(&sim, lake.path(), &[RESELLER_KEY]).await;
    std::io::Write::write_all(client.stdin.as_mut().unwrap(), b"go\n").unwrap();
    let after = lines.next().unwrap().unwrap();
    let a = counts(&after);
    assert_eq!(a[0], b[0], "{after}");
    assert!(
        a[1] > 0,
        "the reseller rows the sync brought are seen: {after}"
    );
    let out = client.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = String::from_utf8(succeeded(hspq_on(
        lake.path(),
        &[
            "sql",
            "select count(*) from billing where report_type = 'reseller'",
            "--format",
            "csv",
        ],
    )))
    .unwrap();
    assert_eq!(want, format!("count_star()\n{}\n", a[1]));
    // Two clients at once share one DuckDB database, each with its views in a catalog of its
    // own: one reading a past version changes nothing for the other, and the PostgreSQL
    // catalog each is shown lists its own views only.
    let script = r#"
import sys, psycopg
a = psycopg.connect(sys.argv[1], password=sys.argv[2], autocommit=True)
b = psycopg.connect(sys.argv[1], password=sys.argv[2], autocommit=True)
a.execute(f"set hspq.as_of = '{sys.argv[3]}'")
q = "select count(*) from billing where report_type = 'reseller'"
tables = ("select (select count(*) from pg_catalog.pg_class where relname = 'billing') || ' ' || "
          "(select count(*) from information_schema.tables where table_name = 'billing')")
print(a.execute(q).fetchone()[0], b.execute(q).fetchone()[0],
      a.execute(tables).fetchone()[0], b.execute(tables).fetchone()[0])
"#;
    let out = Command::new(venv_tool("python"))
        .args(["-c", script, &server.conninfo(), PASSWORD, &mssp_only])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(succeeded(out)).unwrap(),
        format!("0 {} 1 1 1 1\n", a[1])
    );
}

#[test]
fn serve_refuses_to_start_without_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hspq"))
        .args(["serve", "--port", "0", "--data"])
        .arg(dir.path())
        .env_remove("HSPQ_SERVE_PASSWORD")
        .env_remove("HSPQ_SERVE_PASSWORD_FILE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("needs a password") && stderr.contains("HSPQ_SERVE_PASSWORD"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlalchemy_reflects_the_views_and_pandas_reads_a_parameterised_query() {
    let lake = lake().await;
    let server = Server::start(lake.path());
    let script = r#"
import sys, json
import pandas as pd
import sqlalchemy as sa
engine = sa.create_engine(f"postgresql+psycopg://hspq:{sys.argv[2]}@127.0.0.1:{sys.argv[1]}/hspq")
with engine.connect() as conn:
    version = conn.execute(sa.text("select version()")).scalar()
    inspector = sa.inspect(conn)
    views = sorted(inspector.get_table_names())
    columns = {c["name"]: repr(c["type"]) for c in inspector.get_columns("billing")}
    table = sa.Table("churn_events", sa.MetaData(), autoload_with=conn)
    frame = pd.read_sql(
        sa.text("select period, sum(billing_value) as units from billing "
                "where report_type = :rt and year >= :year group by 1 order by 1"),
        conn, params={"rt": "mssp", "year": 2025})
print(json.dumps({"version": version, "views": views, "columns": columns,
                  "reflected": [c.name for c in table.columns],
                  "rows": [[p, int(u)] for p, u in frame.itertuples(index=False)]}))
"#;
    let out = Command::new(venv_tool("python"))
        .args(["-c", script, &server.port.to_string(), PASSWORD])
        .output()
        .unwrap();
    let got: serde_json::Value = serde_json::from_slice(&succeeded(out)).unwrap();
    assert!(
        got["version"]
            .as_str()
            .unwrap()
            .starts_with("PostgreSQL 14.0 (hspq"),
        "{got}"
    );
    let views: Vec<&str> = got["views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for name in [
        "billing",
        "churn_events",
        "customer_history",
        "daily_usage",
        "lake_files",
    ] {
        assert!(views.contains(&name), "{name} not in {views:?}");
    }
    // Reflection types the columns as the server sends them.
    for (column, sqlalchemy_type) in [
        ("year", "BIGINT()"),
        ("billing_date", "DATE()"),
        ("is_partial", "BOOLEAN()"),
        ("ingested_at", "TIMESTAMP(timezone=True)"),
        ("product", "VARCHAR()"),
    ] {
        assert_eq!(got["columns"][column], sqlalchemy_type, "{got}");
    }
    assert!(
        got["reflected"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("left_on")),
        "{got}"
    );
    let want = String::from_utf8(succeeded(hspq_on(
        lake.path(),
        &[
            "sql",
            "select period, sum(billing_value) from billing where report_type = 'mssp' \
             and year >= 2025 group by 1 order by 1",
            "--format",
            "csv",
        ],
    )))
    .unwrap();
    let want: Vec<serde_json::Value> = want
        .lines()
        .skip(1)
        .map(|l| {
            let (p, u) = l.split_once(',').unwrap();
            serde_json::json!([p, u.parse::<i64>().unwrap()])
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got["rows"].as_array().unwrap(), &want);
}

/// Runs tests/serve_clients/replay.py on one tool's queries; one JSON value per statement.
fn replay(server: &Server, fixture: &str, protocol: &str) -> Vec<serde_json::Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve_clients");
    let out = Command::new(venv_tool("python"))
        .arg(dir.join("replay.py"))
        .arg(format!("{} password={PASSWORD}", server.conninfo()))
        .arg(dir.join(fixture))
        .arg(protocol)
        .output()
        .unwrap();
    String::from_utf8(succeeded(out))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The rows of the first replayed statement whose columns start with `columns`.
fn rows_of<'a>(results: &'a [serde_json::Value], columns: &[&str]) -> &'a Vec<serde_json::Value> {
    results
        .iter()
        .find(|r| {
            let have = r["columns"].as_array().unwrap();
            have.len() >= columns.len() && columns.iter().zip(have).all(|(want, c)| c == want)
        })
        .unwrap_or_else(|| panic!("no result with columns {columns:?}"))["rows"]
        .as_array()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_and_metabase_introspection_queries_are_answered_as_postgresql_would() {
    let lake = lake().await;
    let server = Server::start(lake.path());
    let row = |cells: &[&str]| serde_json::json!(cells);

    // Grafana: health checks, schemas, tables, columns with the types its editor keys on.
    let grafana = replay(&server, "grafana.sql", "simple");
    assert!(rows_of(&grafana, &["version"]).contains(&row(&["1400"])));
    assert!(rows_of(&grafana, &["name"]).contains(&row(&["main"])));
    let tables = rows_of(&grafana, &["table"]);
    assert!(tables.contains(&row(&["billing"])), "{tables:?}");
    let columns = rows_of(&grafana, &["column", "type"]);
    for column in [
        ["billing_date", "date"],
        ["billing_value", "bigint"],
        ["ingested_at", "timestamp with time zone"],
        ["product", "character varying"],
    ] {
        assert!(
            columns.contains(&row(&column)),
            "{column:?} not in {columns:?}"
        );
    }

    // Metabase (pgjdbc): the tables it syncs, with row estimates, and their columns' types.
    let metabase = replay(&server, "metabase.sql", "extended");
    let tables = rows_of(&metabase, &["schema", "name", "type"]);
    let billing = tables
        .iter()
        .find(|t| t[1] == "billing")
        .unwrap_or_else(|| panic!("{tables:?}"));
    assert_eq!(billing[0], "main");
    assert_eq!(billing[2], "TABLE");
    assert!(
        billing[4].as_str().unwrap().parse::<u64>().unwrap() > 0,
        "{billing}"
    );
    let fields = rows_of(&metabase, &["name", "database-type"]);
    assert!(fields
        .iter()
        .any(|f| f[0] == "billing_date" && f[1] == "date" && f[4] == "billing"));
    let jdbc_columns = rows_of(
        &metabase,
        &["current_database", "nspname", "relname", "attname"],
    );
    let year = jdbc_columns
        .iter()
        .find(|c| c[3] == "year")
        .unwrap_or_else(|| panic!("{jdbc_columns:?}"));
    assert_eq!(year[0], "hspq");
    assert_eq!(year[4], "20", "int8: {year}");
    assert!(rows_of(&metabase, &["current_catalog"]).contains(&row(&["hspq"])));
    assert!(rows_of(
        &metabase,
        &["TABLE_CAT", "TABLE_SCHEM", "TABLE_NAME", "TABLE_TYPE"]
    )
    .iter()
    .any(|t| t[2] == "billing" && t[3] == "TABLE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_psql_verifies_the_certificate_binds_scram_to_it_and_plaintext_is_refused() {
    let lake = lake().await;
    let certs = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let server = Server::start_with(
        lake.path(),
        &[
            "--tls-cert".as_ref(),
            cert.as_os_str(),
            "--tls-key".as_ref(),
            key.as_os_str(),
        ],
    );
    let secure = format!(
        "host=localhost hostaddr=127.0.0.1 port={} user=hspq dbname=hspq sslmode=verify-full \
         sslrootcert={} channel_binding=require",
        server.port,
        cert.display()
    );
    let out = succeeded(server.psql_over(&secure, PASSWORD, "\\conninfo"));
    let info = String::from_utf8_lossy(&out);
    assert!(info.contains("SSL connection (protocol: TLSv1.3"), "{info}");
    let count = succeeded(server.psql_over(&secure, PASSWORD, "select count(*) > 0 from billing"));
    assert_eq!(String::from_utf8_lossy(&count), "t\n");
    // Without TLS: turned away, with what to do.
    let plain = format!("{} sslmode=disable", server.conninfo());
    let out = server.psql_over(&plain, PASSWORD, "select 1");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("requires TLS") && stderr.contains("sslmode=require"),
        "{stderr}"
    );
    // A key that is not the certificate's: a one-line error and exit 2, before listening.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let wrong_key = certs.path().join("other.pem");
    std::fs::write(&wrong_key, other.signing_key.serialize_pem()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hspq"))
        .args(["serve", "--port", "0", "--data"])
        .arg(lake.path())
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&wrong_key)
        .env("HSPQ_SERVE_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not fit the certificate"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_results_as_pgx_and_pgjdbc_ask_for_them_equal_the_text_ones() {
    let lake = lake().await;
    let server = Server::start(lake.path());
    // psycopg's binary cursor asks for every column in binary, as pgx (Grafana) and pgjdbc
    // (Metabase) do for the types they know; both ways must read the same values.
    let script = r#"
import sys, psycopg
queries = [
    "select * from billing order by all limit 200",
    "select * from periods order by all",
    """select 1::smallint as i2, 2::integer as i4, 2.5::float as f4, 2.5::double as f8,
       -12345.678::decimal(10,3) as d, 0.00001::decimal(10,5) as small,
       sum(billing_value) as huge, interval 3 day + interval 2 hour as iv,
       [1, 2, NULL]::bigint[] as ia, []::varchar[] as ea, {'a': 1} as s,
       TIME '12:34:56' as t, TIMESTAMP '2026-01-02 03:04:05.5' as ts from billing""",
]
with psycopg.connect(sys.argv[1]) as conn:
    for sql in queries:
        text = conn.execute(sql).fetchall()
        with conn.cursor(binary=True) as cur:
            cur.execute(sql)
            binary = cur.fetchall()
        assert text, sql
        assert text == binary, (sql, [(a, b) for a, b in zip(text[0], binary[0]) if a != b])
        print(len(text))
"#;
    let out = Command::new(venv_tool("python"))
        .args(["-c", script])
        .arg(format!("{} password={PASSWORD}", server.conninfo()))
        .output()
        .unwrap();
    let printed = String::from_utf8(succeeded(out)).unwrap();
    let counts: Vec<usize> = printed.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(counts.len(), 3);
    assert!(counts[0] > 10, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_holds_up_no_one_and_the_connection_limit_says_so() {
    let lake = lake().await;
    let server = Server::start_with(lake.path(), &["--max-connections".as_ref(), "2".as_ref()]);
    // A client asks for two million rows and reads none of them: the server's writes to it
    // block once the socket's buffers are full.
    let script = r#"
import sys, time, psycopg
conn = psycopg.connect(sys.argv[1])
conn.pgconn.send_query(b"select i, i * 2 as j, 'row ' || i as k from range(2000000) t(i)")
print("sent", flush=True)
time.sleep(600)
"#;
    // Killed when dropped, also when the test fails (a sleeping client would keep the test's
    // output open for ten minutes).
    let mut stuck = Reaped(
        Command::new(venv_tool("python"))
            .args(["-c", script])
            .arg(format!("{} password={PASSWORD}", server.conninfo()))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(stuck.0.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "sent");
    // Another client's query runs meanwhile.
    let got = server.psql("select count(*) from billing where billing_value >= 0");
    assert!(got.trim().parse::<u64>().unwrap() > 0, "{got}");
    // With both slots taken (the stuck client and a held psql), a third is told why.
    // psql reading its statements from a pipe: connected once it answers the first, then idle.
    let mut held = Reaped(
        Command::new(psql())
            .arg(server.conninfo())
            .args(["-X", "-At"])
            .env("PGPASSWORD", PASSWORD)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::io::Write::write_all(held.0.stdin.as_mut().unwrap(), b"select 'held';\n").unwrap();
    let mut answer = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(held.0.stdout.as_mut().unwrap()),
        &mut answer,
    )
    .unwrap();
    assert_eq!(answer.trim(), "held");
    let started = Instant::now();
    let refused = loop {
        let out = server.psql_as(PASSWORD, "select 1");
        if !out.status.success() {
            break String::from_utf8_lossy(&out.stderr).to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(5), "never refused");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        refused.contains("too many clients") && refused.contains("--max-connections"),
        "{refused}"
    );
    assert_eq!(refused.trim().lines().count(), 1, "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_over_the_time_limit_is_cancelled_and_says_which_limit() {
    let lake = lake().await;
    let server = Server::start_with(lake.path(), &["--query-timeout".as_ref(), "1s".as_ref()]);
    let out = server.psql_as(PASSWORD, "select sum(i) from range(200000000000) t(i)");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("statement timeout") && stderr.contains("--query-timeout"),
        "{stderr}"
    );
    // The session goes on.
    assert_eq!(server.psql("select 40 + 2"), "42\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_limit_is_one_budget_for_every_client_and_one_too_small_is_refused() {
    let lake = lake().await;
    let server = Server::start_with(
        lake.path(),
        &[
            "--memory-limit".as_ref(),
            "2GiB".as_ref(),
            "--max-connections".as_ref(),
            "4".as_ref(),
        ],
    );
    // The whole budget, whichever client asks: one DuckDB database for all of them (each had
    // a quarter of it, a database of its own, before).
    let limit = "select value from duckdb_settings() where name = 'memory_limit'";
    let (first, second) = (server.psql(limit), server.psql(limit));
    assert_eq!((first.trim(), second.trim()), ("2.0 GiB", "2.0 GiB"));
    let printed = server.stop();
    assert!(
        printed.contains("at most 2.0 GiB of memory together (--memory-limit)"),
        "{printed}"
    );
    let serve = |limit: &str| {
        Command::new(env!("CARGO_BIN_EXE_hspq"))
            .args(["serve", "--port", "0", "--memory-limit", limit, "--data"])
            .arg(lake.path())
            .env("HSPQ_SERVE_PASSWORD", PASSWORD)
            .output()
            .unwrap()
    };
    let out = serve("32MB");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--memory-limit 30.5 MiB is below the 64.0 MiB the clients' queries need"),
        "{stderr}"
    );
    for wrong in ["lots", "0%", "150%", "12 parsecs", "0.1B"] {
        let out = serve(wrong);
        assert_eq!(out.status.code(), Some(2), "{wrong}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("memory"),
            "{wrong}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_cannot_start_says_why_and_leaves_no_scratch_folder() {
    let lake = lake().await;
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let serve = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hspq"))
            .args(["serve", "--data"])
            .arg(lake.path())
            .args(args)
            .env("HSPQ_SERVE_PASSWORD", PASSWORD)
            .env("TMPDIR", tmp.path())
            .output()
            .unwrap()
    };
    let out = serve(&["--port", &port]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "the scratch folder went with the failed start"
    );
    let out = serve(&["--port", "0", "--max-connections", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--max-connections"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

//! The query side on a large lake (issue 4's goals), printed as figures:
//!
//! - a synthetic lake in the contract's layout (written by DuckDB itself for speed): 10,000
//!   companies, 24 periods of billing and daily usage, a year of engagement and churn;
//! - `hspq sql "select 1"` start-up time (goal ≤ 100 ms);
//! - each bundled query through `hspq query` next to the plain DuckDB CLI (`duckdb-cli` of the
//!   same version, from the test virtualenv) running `hspq views --sql` and the same SQL over
//!   the same files (goal: ratio ≤ 1.05, each query ≤ 1 s).
//!
//! `cargo bench --bench query`; `HSPQ_BENCH_COMPANIES=N` changes the size.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn duckdb_cli() -> PathBuf {
    let venv = std::env::var("HSPQ_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(&std::env::var("HOME").unwrap()).join(".cache/hspq/venv"));
    venv.join("bin/duckdb")
}

fn build_lake(dir: &Path, companies: u32) {
    let conn = duckdb::Connection::open_in_memory().unwrap();
    let d = dir.display();
    let sql = format!(
        r#"
create table co as
  select 'mssp' as report_type, 'SE-ARN' || (100000 + i) as security_center_id,
         'Company ' || i as company_name, ['SNS', 'PAT', 'WAS'][1 : 1 + (i % 3)] as products, i
  from range({companies}) t(i);
create table per as
  select 'mssp' as report_type, year(d) as year, lpad(month(d)::varchar, 2, '0') as period,
         (d - interval 1 month + interval 25 day)::date as period_from, (d + interval 24 day)::date as period_to,
         n = 0 as is_current, n = 0 as is_partial
  from (select (date '2026-11-01' - to_months(n))::date as d, n from range(24) t(n));
copy (select report_type, year::bigint as year, period, period_from, period_to, is_current, is_partial,
             {companies}::integer as eligible_company_count, ['SNS', 'PAT', 'WAS'] as products,
             now()::timestamptz as ingested_at, null::varchar as extra from per)
  to '{d}/periods' (format parquet, compression zstd, partition_by (report_type), write_partition_columns true);
copy (select p.report_type, p.year::bigint as year, p.period, p.period_from, p.period_to, p.is_partial,
             c.security_center_id, c.company_name, prod as product,
             (hash(c.i, p.year, p.period, prod) % 500)::bigint as billing_value,
             p.period_from + 10 as billing_date, p.period_to - 2 as last_scan_date, null::varchar as null_reason,
             now()::timestamptz as ingested_at, null::varchar as extra
      from co c, per p, unnest(c.products) as u(prod))
  to '{d}/billing' (format parquet, compression zstd, partition_by (report_type, year, period), write_partition_columns true);
copy (select p.report_type, p.year::bigint as year, p.period, prod as product,
             sum((hash(c.i, p.year, p.period, prod) % 500))::bigint as billing_total,
             count(*)::integer as company_count, 0::integer as null_company_count, {companies}::integer as eligible_company_count,
             now()::timestamptz as ingested_at, null::varchar as extra
      from co c, per p, unnest(c.products) as u(prod) group by all)
  to '{d}/billing_totals' (format parquet, compression zstd, partition_by (report_type, year, period), write_partition_columns true);
copy (select p.report_type, p.year::bigint as year, p.period, c.security_center_id, c.company_name, prod as product,
             day::date as date, (hash(c.i, day, prod) % 500)::bigint as usage_value,
             now()::timestamptz as ingested_at, null::varchar as extra
      from co c, per p, unnest(c.products) as u(prod), range(p.period_from, p.period_to + 1, interval 1 day) r(day))
  to '{d}/daily_usage' (format parquet, compression zstd, partition_by (report_type, year, period), write_partition_columns true);
copy (select report_type, security_center_id, company_name, products, now()::timestamptz as ingested_at, null::varchar as extra from co)
  to '{d}/customers' (format parquet, compression zstd, partition_by (report_type), write_partition_columns true);
create table days as select day::date as date from range(date '2025-11-22', date '2026-11-22', interval 1 day) t(day);
copy (select c.report_type, c.security_center_id, d.date, strftime(d.date, '%Y-%m') as month,
             (hash(c.i, d.date) % 20)::bigint as sns_scans_succeeded, (hash(c.i, d.date, 1) % 3)::bigint as sns_scans_failed,
             null::bigint as was_scans_succeeded, null::bigint as was_scans_failed,
             null::bigint as cs_scans_succeeded, null::bigint as cs_scans_failed,
             (hash(c.i) % 5)::bigint as probes_active, (hash(c.i, d.date, 2) % 2)::bigint as probes_inactive,
             (hash(c.i, d.date, 3) % 100)::bigint as api_calls,
             now()::timestamptz as ingested_at, null::varchar as extra
      from co c, days d)
  to '{d}/engagement' (format parquet, compression zstd, partition_by (report_type, month), write_partition_columns true);
copy (select c.report_type, c.security_center_id, ind as indicator, d.date, strftime(d.date, '%Y-%m') as month,
             case when ind = 'usage_trend' then 'SNS' end as product,
             case when ind = 'usage_trend' then (hash(c.i, d.date) % 400)::bigint end as usage_value,
             case when ind = 'scan_failures' then 10::bigint end as total_succeeded,
             case when ind = 'scan_failures' then 1::bigint end as total_failed,
             case when ind = 'scan_failures' then 0.09 end as failure_ratio,
             null::bigint as probes_active, null::bigint as probes_inactive,
             case when ind = 'zero_activity' then false end as has_scans,
             case when ind = 'zero_activity' then true end as has_api_calls,
             now()::timestamptz as ingested_at, null::varchar as extra
      from co c, days d, unnest(['usage_trend', 'scan_failures', 'zero_activity']) as u(ind))
  to '{d}/churn' (format parquet, compression zstd, partition_by (report_type, month), write_partition_columns true);
"#
    );
    conn.execute_batch(&sql).unwrap();
}

fn time(cmd: &mut Command) -> Duration {
    let started = Instant::now();
    let out = cmd.output().unwrap();
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "{:?}: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn best_of(n: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..n).map(|_| f()).min().unwrap()
}

fn main() {
    let companies: u32 = std::env::var("HSPQ_BENCH_COMPANIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    std::fs::create_dir_all(&lake).unwrap();
    let started = Instant::now();
    build_lake(&lake, companies);
    println!(
        "lake: {companies} companies x 24 periods + a year of engagement, built in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // A manifest as hspq's writer leaves it: every file listed, each key once per partition.
    let mut files = serde_json::Map::new();
    let mut stack = vec![lake.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                let rel = p.strip_prefix(&lake).unwrap().display().to_string();
                let size = p.metadata().unwrap().len();
                files.insert(
                    rel,
                    serde_json::json!({"size": size, "rows": 0, "sha256": "", "run_id": "bench", "unique_keys": true}),
                );
            }
        }
    }
    std::fs::create_dir_all(lake.join("_hspq")).unwrap();
    let manifest = serde_json::json!({"version": 1, "files": files, "state": {"periods": {}, "customers": {}}});
    std::fs::write(lake.join("_hspq/manifest.json"), manifest.to_string()).unwrap();
    let hspq = env!("CARGO_BIN_EXE_hspq");
    let startup = best_of(5, || {
        time(
            Command::new(hspq)
                .args(["sql", "select 1", "--format", "csv", "--data"])
                .arg(&lake),
        )
    });
    println!(
        "hspq sql \"select 1\" start-up: {:.0} ms (best of 5)",
        startup.as_secs_f64() * 1000.0
    );
    let cli = duckdb_cli();
    let views = Command::new(hspq)
        .args(["views", "--sql", "--data"])
        .arg(&lake)
        .output()
        .unwrap();
    let views_sql = String::from_utf8(views.stdout).unwrap();
    let have_cli = cli.exists();
    if !have_cli {
        println!(
            "(no DuckDB CLI at {}: run scripts/test.sh to install it; skipping the comparison)",
            cli.display()
        );
    }
    println!(
        "{:<24} {:>10} {:>10} {:>7}",
        "query", "hspq_ms", "duckdb_ms", "ratio"
    );
    for q in hspq::query::bundled::all() {
        let mut args = vec![
            "query".to_string(),
            q.name.clone(),
            "--format".into(),
            "csv".into(),
        ];
        let mut params = Vec::new();
        for p in &q.params {
            let value = if p.required {
                Some("SE-ARN100042".to_string())
            } else {
                None
            };
            if let Some(v) = &value {
                args.push("--param".into());
                args.push(format!("{}={v}", p.name));
            }
            let literal = match (&value, &p.default, p.ty.as_str()) {
                (Some(v), _, _) => format!("'{v}'"),
                (None, Some(d), "INTEGER" | "DOUBLE") => d.clone(),
                (None, Some(d), _) => format!("'{d}'"),
                (None, None, _) => "NULL".into(),
            };
            params.push(format!("{} := {literal}", p.name));
        }
        let ours = best_of(3, || {
            time(
                Command::new(hspq)
                    .args(&args)
                    .arg("--data")
                    .arg(&lake)
                    .stdout(std::process::Stdio::null()),
            )
        });
        let theirs = if have_cli {
            let sql_body = q.sql.trim().trim_end_matches(';');
            let script = format!(
                "{views_sql}\nprepare q as {sql_body};\nexecute q({});\n",
                params.join(", ")
            );
            let file = dir.path().join(format!("{}.sql", q.name));
            std::fs::write(&file, script).unwrap();
            Some(best_of(3, || {
                time(
                    Command::new(&cli)
                        .args(["-csv", "-c"])
                        .arg(format!(".read {}", file.display()))
                        .stdout(std::process::Stdio::null()),
                )
            }))
        } else {
            None
        };
        println!(
            "{:<24} {:>10.0} {:>10} {:>7}",
            q.name,
            ours.as_secs_f64() * 1000.0,
            theirs.map_or("-".into(), |t| format!("{:.0}", t.as_secs_f64() * 1000.0)),
            theirs.map_or("-".into(), |t| format!(
                "{:.2}",
                ours.as_secs_f64() / t.as_secs_f64()
            )),
        );
    }
}

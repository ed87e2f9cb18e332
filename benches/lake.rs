//! The lake engine at scale, on a lake written by `hspq ingest` itself (the lake-engine issue's
//! goals), printed as figures:
//!
//! 1. The simulator in its own process (`hspq simulate`, rate limit off) at 10,000 companies;
//!    a first sync of the MSSP key (5 sessions, `--rate 1000`, 12 months of customer history),
//!    then three incremental syncs, each a day later (`--today`). Per sync: rows and bytes
//!    written (every file: staged, merged, replaced) against the rows of the lake (first sync,
//!    goal ≤ 2×) or of the partitions the sync touched (incremental, goal ≤ 1.5×); hspq's CPU
//!    time (user + sys) and peak memory (first sync, goal ≤ 2 min of CPU).
//! 2. Files per partition after the last sync (goal: at most one per million rows), and the
//!    share of files that promise unique keys (goal: all).
//! 3. Every bundled query through `hspq query` next to the DuckDB CLI (`duckdb-cli` of the same
//!    version, from the test virtualenv) reading the same files through the views `hspq views
//!    --sql` prints (globs, no deduplication: a notebook's path): the same result checked, then wall time, CPU time and peak memory of
//!    alternating whole-process runs (goals: hspq/plain ≤ 1.05 wall, ≤ 1.25 memory). Times are
//!    medians; a ratio is the median of the ratios of back-to-back pairs, which cancels most of
//!    a shared machine's drift (single runs vary by ±15 % here).
//!
//! After the syncs: the data folders', the history's and the log's sizes (what keeping past
//! versions for `--as-of` costs; goal: the log under 5 % of the data).
//!
//! `cargo bench --bench lake`; `HSPQ_BENCH_COMPANIES=N` changes the size (default 10,000),
//! `HSPQ_BENCH_SYNCS=N` the number of syncs (default 4), `HSPQ_BENCH_QUERIES=0` skips part 3,
//! `HSPQ_BENCH_LAKE=<folder>` keeps the lake there, and runs parts 2 and 3 on it if an earlier
//! run wrote it,
//! `HSPQ_BENCH_RUNS=N` sets the runs per query and side (default 11, at least 5).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::NaiveDate;

mod common;
use common::{hspq, measure, plain_views, simulator, sync, Usage};

fn duckdb_cli() -> PathBuf {
    let venv = std::env::var("HSPQ_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(&std::env::var("HOME").unwrap()).join(".cache/hspq/venv"));
    venv.join("bin/duckdb")
}

/// The newest log entry's manifest.
fn manifest(lake: &Path) -> serde_json::Value {
    let log = lake.join("_hspq/log");
    let last = std::fs::read_dir(&log)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .max()
        .unwrap();
    let entry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(log.join(last)).unwrap()).unwrap();
    entry["manifest"].clone()
}

/// The entries (and bytes, with the sync objects they name) that the default version retention
/// (7 days) keeps of a log written by one sync a day: the last ten entries and the last seven
/// `release` entries. Measured on this lake's own newest entries.
fn log_kept_by_daily_syncs(lake: &Path) -> (usize, u64) {
    let log = lake.join("_hspq/log");
    let mut names: Vec<String> = std::fs::read_dir(&log)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    let entries: Vec<(u64, serde_json::Value)> = names
        .iter()
        .map(|n| {
            let bytes = std::fs::read(log.join(n)).unwrap();
            (bytes.len() as u64, serde_json::from_slice(&bytes).unwrap())
        })
        .collect();
    let last_ten = entries.len().saturating_sub(10);
    let mut releases = 0;
    let mut kept = Vec::new();
    for (i, e) in entries.iter().enumerate().rev() {
        let release = e.1["kind"] == "release";
        if i >= last_ten || (release && releases < 7) {
            kept.push(e);
        }
        releases += usize::from(release);
    }
    let objects: std::collections::BTreeSet<&str> = kept
        .iter()
        .filter_map(|(_, e)| e["sync"].as_str())
        .collect();
    let object_bytes: u64 = objects
        .iter()
        .map(|o| std::fs::metadata(lake.join(o)).map_or(0, |m| m.len()))
        .sum();
    (
        kept.len(),
        kept.iter().map(|(b, _)| b).sum::<u64>() + object_bytes,
    )
}

/// Rows and files of each partition, by its folder.
fn partitions(m: &serde_json::Value) -> BTreeMap<String, (u64, Vec<String>)> {
    let mut out: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
    for (path, f) in m["files"].as_object().unwrap() {
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d).to_string();
        let e = out.entry(dir).or_default();
        e.0 += f["rows"].as_u64().unwrap();
        e.1.push(path.clone());
    }
    out
}

/// Rows and bytes the last run wrote, as it recorded them.
fn last_run_written(lake: &Path) -> (u64, u64) {
    let out = Command::new(hspq())
        .args([
            "sql",
            "--format",
            "csv",
            "select rows_written, bytes_written from sync_runs order by started_at desc limit 1",
            "--data",
        ])
        .arg(lake)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.lines().nth(1).expect("a sync_runs row");
    let (r, b) = line.split_once(',').unwrap();
    (r.parse().unwrap(), b.parse().unwrap())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let companies: u32 = std::env::var("HSPQ_BENCH_COMPANIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let work = tempfile::tempdir().unwrap();
    let lake = std::env::var_os("HSPQ_BENCH_LAKE")
        .map(PathBuf::from)
        .unwrap_or_else(|| work.path().join("lake"));

    let day0 = NaiveDate::from_ymd_opt(2026, 3, 20).unwrap();
    println!("lake written by hspq ingest: {companies} companies, MSSP key, 5 sessions, simulator in its own process");
    println!(
        "{:<14} {:>12} {:>10} {:>12} {:>12} {:>7} {:>9} {:>9} {:>9}",
        "sync",
        "rows_written",
        "MB_written",
        "rows_basis",
        "lake_rows",
        "ratio",
        "wall_s",
        "cpu_s",
        "rss_MiB"
    );
    let mut before = serde_json::json!({"files": {}});
    let mut syncs: u64 = std::env::var("HSPQ_BENCH_SYNCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    if lake.join("_hspq/log").is_dir() {
        // A lake an earlier run left in HSPQ_BENCH_LAKE: measured as it is.
        before = manifest(&lake);
        syncs = 0;
    }
    for (n, today) in (0..syncs).map(|i| (i, day0 + chrono::Days::new(i))) {
        let sim = simulator(companies, today, work.path());
        let cache = work.path().join(format!("cache-{n}"));
        let u = sync(&sim, &lake, &cache);
        drop(sim);
        let (rows, bytes) = last_run_written(&lake);
        let after = manifest(&lake);
        let (old, new) = (partitions(&before), partitions(&after));
        let lake_rows: u64 = new.values().map(|(r, _)| r).sum();
        // The rows of the partitions whose files this sync replaced.
        let touched: u64 = new
            .iter()
            .filter(|(dir, (_, files))| old.get(*dir).is_none_or(|(_, f)| f != files))
            .map(|(_, (r, _))| r)
            .sum();
        let (label, basis) = if n == 0 {
            ("first".to_string(), lake_rows)
        } else {
            (format!("incremental {n}"), touched)
        };
        println!(
            "{:<14} {:>12} {:>10.1} {:>12} {:>12} {:>7.2} {:>9.1} {:>9.1} {:>9.0}",
            label,
            rows,
            bytes as f64 / 1e6,
            basis,
            lake_rows,
            rows as f64 / basis.max(1) as f64,
            u.wall.as_secs_f64(),
            u.cpu.as_secs_f64(),
            u.max_rss_mib
        );
        before = after;
    }

    // What keeping past versions costs: the data folders, the history, the log.
    let size = |dir: &Path| -> (u64, u64) {
        let mut total = (0, 0);
        let mut dirs = vec![dir.to_path_buf()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    // The data folders' size leaves the bookkeeping out.
                    if p != lake.join("_hspq") {
                        dirs.push(p);
                    }
                } else if let Ok(m) = e.metadata() {
                    total = (total.0 + 1, total.1 + m.len());
                }
            }
        }
        total
    };
    let (data_files, data_bytes) = size(&lake);
    let (history_files, history_bytes) = size(&lake.join("_hspq/history"));
    let (log_entries, entry_bytes) = size(&lake.join("_hspq/log"));
    let (sync_objects, sync_bytes) = size(&lake.join("_hspq/sync"));
    let log_bytes = entry_bytes + sync_bytes;
    let share = |bytes: u64| 100.0 * bytes as f64 / data_bytes.max(1) as f64;
    println!(
        "\ndata folders: {data_files} files, {:.1} MB; history: {history_files} files, {:.1} MB; \
         log: {log_entries} entries and {sync_objects} sync objects, {:.2} MB ({:.2} % of the \
         data)",
        data_bytes as f64 / 1e6,
        history_bytes as f64 / 1e6,
        log_bytes as f64 / 1e6,
        share(log_bytes)
    );
    let (year_entries, year_bytes) = log_kept_by_daily_syncs(&lake);
    println!(
        "log a year of daily syncs keeps (the last ten entries and the last seven finished \
         syncs', with their sync objects): {year_entries} entries, {:.2} MB ({:.2} % of the data)",
        year_bytes as f64 / 1e6,
        share(year_bytes)
    );

    let parts = partitions(&before);
    let over = parts
        .values()
        .filter(|(rows, files)| files.len() as u64 > rows.div_ceil(1_000_000).max(1))
        .count();
    let most = parts.values().map(|(_, f)| f.len()).max().unwrap_or(0);
    let files: Vec<&serde_json::Value> = before["files"].as_object().unwrap().values().collect();
    let unique = files.iter().filter(|f| f["unique_keys"] == true).count();
    println!(
        "\npartitions: {}, most files in one: {most}, over one file per million rows: {over}; files promising unique keys: {unique} of {}",
        parts.len(),
        files.len()
    );

    if std::env::var("HSPQ_BENCH_QUERIES").as_deref() == Ok("0") {
        return;
    }
    let cli = duckdb_cli();
    if !cli.exists() {
        println!(
            "\n(no DuckDB CLI at {}: run scripts/test.sh to install it; skipping the queries)",
            cli.display()
        );
        return;
    }
    let views = plain_views(&lake);
    let runs: usize = std::env::var("HSPQ_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(11)
        .max(5);
    println!(
        "\n{:<24} {:>8} {:>8} {:>6} {:>6} {:>8} {:>8} {:>6}  same   ({runs} runs each)",
        "query", "hspq_ms", "plain_ms", "wall", "cpu", "hspq_MiB", "plainMiB", "memory"
    );
    for q in hspq::query::bundled::all() {
        let mut args = vec!["query".to_string(), q.name.clone()];
        let mut params = Vec::new();
        for p in &q.params {
            let value = p.required.then(|| "SE-ARN100042".to_string());
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
            params.push((p.name.clone(), literal));
        }
        // The CLI cannot bind named parameters to a COPY: put them in as literals, longest
        // name first so `$a` does not eat into `$ab`.
        params.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
        let mut body = q.sql.trim().trim_end_matches(';').to_string();
        for (name, literal) in &params {
            body = body.replace(&format!("${name}"), literal);
        }
        let script = |tail: &str| format!("{views}\n{tail}\n");
        // The same result: both as Parquet, compared in DuckDB both ways.
        let ours_file = work.path().join(format!("{}-hspq.parquet", q.name));
        let theirs_file = work.path().join(format!("{}-plain.parquet", q.name));
        let out = Command::new(hspq())
            .args(&args)
            .args(["--format", "parquet", "--output"])
            .arg(&ours_file)
            .arg("--data")
            .arg(&lake)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let copy = script(&format!(
            "copy ({body}) to '{}' (format parquet);",
            theirs_file.display()
        ));
        let copy_file = work.path().join(format!("{}-copy.sql", q.name));
        std::fs::write(&copy_file, copy).unwrap();
        let out = Command::new(&cli)
            .arg("-c")
            .arg(format!(".read {}", copy_file.display()))
            .output()
            .unwrap();
        let same = if out.status.success() {
            let conn = duckdb::Connection::open_in_memory().unwrap();
            let diff: i64 = conn
                .query_row(
                    &format!(
                        "select (select count(*) from (select * from '{0}' except all select * from '{1}'))
                              + (select count(*) from (select * from '{1}' except all select * from '{0}'))",
                        ours_file.display(),
                        theirs_file.display()
                    ),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            if diff == 0 {
                "yes".to_string()
            } else {
                format!("NO ({diff} rows differ)")
            }
        } else {
            format!(
                "plain failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
        };
        let run_file = work.path().join(format!("{}-run.sql", q.name));
        std::fs::write(&run_file, script(&format!("{body};"))).unwrap();
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            ours.push(measure(
                Command::new(hspq())
                    .args(&args)
                    .args(["--format", "csv", "--data"])
                    .arg(&lake),
            ));
            theirs.push(measure(
                Command::new(&cli)
                    .args(["-csv", "-c"])
                    .arg(format!(".read {}", run_file.display())),
            ));
        }
        let ms = |v: &[Usage]| median(v.iter().map(|u| u.wall.as_secs_f64() * 1000.0).collect());
        let paired = |f: fn(&Usage) -> f64| {
            median(ours.iter().zip(&theirs).map(|(o, t)| f(o) / f(t)).collect())
        };
        println!(
            "{:<24} {:>8.0} {:>8.0} {:>6.2} {:>6.2} {:>8.0} {:>8.0} {:>6.2}  {same}",
            q.name,
            ms(&ours),
            ms(&theirs),
            paired(|u| u.wall.as_secs_f64()),
            paired(|u| u.cpu.as_secs_f64()),
            median(ours.iter().map(|u| u.max_rss_mib).collect()),
            median(theirs.iter().map(|u| u.max_rss_mib).collect()),
            paired(|u| u.max_rss_mib),
        );
    }
}

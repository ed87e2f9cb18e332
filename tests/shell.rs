//! `hspq repl` driven through a real pseudo-terminal (rexpect), as a person at a keyboard would:
//! Ctrl-C, and what the shell prints back. Plus Ctrl-C on a script piped into it.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::lake::lake_rows;
use common::*;
use rexpect::session::PtySession;

/// A statement that runs for minutes: a cross join whose filter nothing passes.
const ENDLESS: &str = "select count(*) as n from daily_usage a, daily_usage b, range(100) c \
                       where a.usage_value + b.usage_value + c.range = -1;";

/// The simulator, a lake of its MSSP report and customers, and a home folder for the shell's
/// history.
async fn lake() -> (hspq::sim::Simulator, tempfile::TempDir, tempfile::TempDir) {
    let sim = sim(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    (sim, dir, tempfile::tempdir().unwrap())
}

/// Types `keys` one piece at a time (rustyline reads the key after a Tab on its own).
fn keys(p: &mut PtySession, keys: &[&str]) {
    for k in keys {
        p.send(k).unwrap();
        p.flush().unwrap();
    }
}

/// Ctrl-D at the prompt; the shell ends.
fn leave(mut p: PtySession) {
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
}

/// A shell on the lake in `dir`, in a pseudo-terminal, at its first prompt; without colours,
/// so what it echoes is the text typed.
fn shell(dir: &Path, home: &Path) -> PtySession {
    shell_with(dir, home, &[("NO_COLOR", "1")])
}

/// A shell as [`shell`], with colours unless `env` says otherwise.
fn shell_with(dir: &Path, home: &Path, env: &[(&str, &str)]) -> PtySession {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hspq"));
    cmd.args(["repl", "--data"])
        .arg(dir)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("TERM", "xterm")
        .env("COLUMNS", "120")
        .env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut p = rexpect::session::spawn_command(cmd, Some(30_000)).unwrap();
    p.exp_string("hspq> ").unwrap();
    p
}

/// Sends `sql` and waits until it is running (its line echoed, no answer yet).
fn start(p: &mut PtySession, sql: &str) {
    p.send_line(sql).unwrap();
    p.exp_string("range = -1;").unwrap();
}

/// Ctrl-C; returns how long the prompt took to come back. Fails past 5 s.
fn cancel(p: &mut PtySession) -> Duration {
    let sent = Instant::now();
    p.send_control('c').unwrap();
    let (before, _) = p
        .exp_regex("hspq> ")
        .unwrap_or_else(|e| panic!("no prompt after Ctrl-C: {e}"));
    let took = sent.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the prompt took {took:?} after Ctrl-C"
    );
    assert!(
        before.contains("query cancelled"),
        "the shell says the query was cancelled: {before:?}"
    );
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_cancels_a_running_query_and_the_shell_answers_on() {
    let (_sim, dir, home) = lake().await;
    let mut p = shell(dir.path(), home.path());
    // Early (while the statement is still being prepared), mid-way, and late: a single
    // interrupt landing between DuckDB's phases used to be lost.
    let mut seen = Vec::new();
    for wait in [50, 400, 1500] {
        start(&mut p, ENDLESS);
        std::thread::sleep(Duration::from_millis(wait));
        seen.push(cancel(&mut p));
        p.send_line("select 40 + 2 as answer;").unwrap();
        p.exp_string("42").unwrap();
        p.exp_string("hspq> ").unwrap();
    }
    eprintln!("prompt back after Ctrl-C in {seen:?}");
    // At the prompt, Ctrl-C clears the line and the shell stays.
    keys(&mut p, &["select 'never run'"]);
    p.send_control('c').unwrap();
    p.exp_string("hspq> ").unwrap();
    p.send_line("select 'still here' as s;").unwrap();
    p.exp_string("still here").unwrap();
    p.exp_string("hspq> ").unwrap();
    leave(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_a_piped_script_with_status_130() {
    let (_sim, dir, _) = lake().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hspq"))
        .args(["repl", "--data"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(
        stdin,
        "select 'first' as s;\n{ENDLESS}\nselect 'after' as s;"
    )
    .unwrap();
    drop(stdin);
    // Once the first answer is out, the endless statement is next.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let mut stdout = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        stdout.push_str(&line);
        stdout.push('\n');
        if line == "first" {
            break;
        }
    }
    let sent = Instant::now();
    signal(child.id(), "-INT");
    for line in lines {
        stdout.push_str(&line.unwrap());
        stdout.push('\n');
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "the script stopped {:?} after Ctrl-C",
        sent.elapsed()
    );
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stdout.contains("first"), "{stdout}");
    assert!(!stdout.contains("after"), "the script stopped: {stdout}");
    assert!(stderr.contains("interrupted"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tab_completes_views_after_from_and_columns_elsewhere() {
    let (_sim, dir, home) = lake().await;
    let mut p = shell(dir.path(), home.path());
    // After FROM: `bil` completes to the common prefix `billing`; a second Tab lists the two
    // views, and no column such as billing_date.
    keys(&mut p, &["select count(*) as n from bil\t"]);
    p.exp_string("billing").unwrap();
    keys(&mut p, &["\t"]);
    let (listed, _) = p.exp_regex("billing_totals.*\\r\\n").unwrap();
    assert!(!listed.contains("billing_date"), "{listed:?}");
    keys(&mut p, &["_to", "\t", ";\r"]);
    p.exp_string("from billing_totals").unwrap();
    p.exp_string("1 row").unwrap();
    p.exp_string("hspq> ").unwrap();
    // In the select list: the columns of the view the statement reads.
    keys(
        &mut p,
        &["select max(failure_r", "\t", ") as top from churn;\r"],
    );
    p.exp_string("select max(failure_ratio").unwrap();
    p.exp_string("1 row").unwrap();
    p.exp_string("hspq> ").unwrap();
    // A function, from DuckDB's own suggestions.
    keys(
        &mut p,
        &["select regexp_extr", "\t", "('abc', 'b') as hit;\r"],
    );
    // It completes to the common prefix of regexp_extract and regexp_extract_all (and rings);
    // the statement only runs if the name was completed.
    p.exp_string("select regexp_extract").unwrap();
    p.exp_string("1 row").unwrap();
    p.exp_string("hspq> ").unwrap();
    leave(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_spans_lines_under_a_continuation_prompt_and_history_survives_a_restart() {
    let (_sim, dir, home) = lake().await;
    let mut p = shell(dir.path(), home.path());
    p.send_line("select 40 +").unwrap();
    p.exp_string("  ..> ").unwrap();
    p.send_line("2 as answer").unwrap();
    p.exp_string("  ..> ").unwrap();
    p.send_line(";").unwrap();
    p.exp_string("42").unwrap();
    p.exp_string("hspq> ").unwrap();
    // Ctrl-C on a continuation line drops the whole statement.
    p.send_line("select 'dropped'").unwrap();
    p.exp_string("  ..> ").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("hspq> ").unwrap();
    p.send_line("select 'kept' as k;").unwrap();
    p.exp_string("kept").unwrap();
    p.exp_string("hspq> ").unwrap();
    // Killed, as when its terminal is closed: history is written as statements run.
    signal(p.process.child_pid.as_raw() as u32, "-KILL");
    drop(p);
    // A new shell recalls the last statement, then the multi-line one, whole.
    let mut p = shell(dir.path(), home.path());
    keys(&mut p, &["\x1b[A"]);
    p.exp_string("select 'kept' as k;").unwrap();
    keys(&mut p, &["\x1b[A\r"]);
    p.exp_string("42").unwrap();
    p.exp_string("hspq> ").unwrap();
    // Ctrl-R searches the history.
    keys(&mut p, &["\x12", "kep"]);
    p.exp_string("select 'kept' as k;").unwrap();
    keys(&mut p, &["\r"]);
    p.exp_string("1 row").unwrap();
    p.exp_string("hspq> ").unwrap();
    leave(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shell_open_across_a_sync_sees_the_new_rows() {
    let (sim, dir, home) = lake().await;
    let mut p = shell(dir.path(), home.path());
    let count = "select count(*) as reseller_rows from billing where report_type = 'reseller';";
    p.send_line(count).unwrap();
    p.exp_regex("reseller_rows[^0-9]*0[^0-9]").unwrap();
    p.exp_string("hspq> ").unwrap();
    ingest_lake(&sim, dir.path(), &[RESELLER_KEY]).await;
    let want = lake_rows(
        dir.path(),
        "billing",
        &["count(*) filter (where report_type = 'reseller')"],
    );
    assert_ne!(want[0], "0");
    p.send_line(count).unwrap();
    p.exp_string(&want[0]).unwrap();
    p.exp_string("hspq> ").unwrap();
    // The derived views and macros read the new commit's views too.
    p.send_line("select count(*) as n from churn_scores('2026-03-01', 28, '2026-03-12') s where report_type = 'reseller';")
        .unwrap();
    p.exp_regex("bigint[^0-9]*[1-9][0-9]* ").unwrap();
    p.exp_string("hspq> ").unwrap();
    leave(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_is_highlighted_on_a_terminal_and_not_with_no_color_or_a_pipe() {
    let (_sim, dir, home) = lake().await;
    let typed = "select 'from' as s, 42 from me;";
    let mut p = shell_with(dir.path(), home.path(), &[]);
    keys(&mut p, &[typed]);
    p.exp_string("\x1b[1;34mselect\x1b[0m \x1b[32m'from'\x1b[0m")
        .unwrap();
    p.exp_string("\x1b[33m42\x1b[0m").unwrap();
    keys(&mut p, &["\r"]);
    p.exp_string("1 row").unwrap();
    leave(p);

    let mut p = shell(dir.path(), home.path());
    keys(&mut p, &[typed, "\r"]);
    let echo = p.exp_string("1 row").unwrap();
    assert!(echo.contains(typed), "{echo:?}");
    assert!(!echo.contains("\x1b[1;34m"), "NO_COLOR: {echo:?}");
    leave(p);

    let mut child = Command::new(env!("CARGO_BIN_EXE_hspq"))
        .args(["repl", "--data"])
        .arg(dir.path())
        .env_remove("NO_COLOR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{typed}").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("42") && !text.contains('\x1b'), "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_writes_the_last_result_in_the_format_its_file_name_asks_for() {
    let (_sim, dir, _) = lake().await;
    let out = tempfile::tempdir().unwrap();
    let file = |ext: &str| out.path().join(format!("top.{ext}"));
    // More rows than the 40 a screen shows.
    let sql = "select security_center_id || '/' || period as k, \
               coalesce(sum(billing_value), 0) as billed from billing group by all order by k limit 45;";
    let script = format!(
        ".export {}\n{sql}\n.export {}\n.export {}\n.export {}\n.export {}\n.export {}\n\
         .run billing_trend report_type=mssp\n.export {}\n",
        file("csv").display(),
        file("csv").display(),
        file("json").display(),
        file("ndjson").display(),
        file("parquet").display(),
        file("md").display(),
        out.path().join("usage.parquet").display(),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_hspq"))
        .args(["repl", "--data"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    write!(child.stdin.take().unwrap(), "{script}").unwrap();
    let done = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    // The first .export came before any statement: refused, the rest ran.
    assert!(stderr.contains("nothing to export yet"), "{stderr}");
    assert!(stderr.contains("wrote 45 rows to"), "{stderr}");
    let conn = duckdb::Connection::open_in_memory().unwrap();
    let want: Vec<(String, i64)> = {
        let mut stmt = conn
            .prepare(&format!(
                "select k, cast(billed as bigint) from read_parquet('{}')",
                file("parquet").display()
            ))
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(want.len(), 45);
    let csv = std::fs::read_to_string(file("csv")).unwrap();
    let csv_rows: Vec<(String, i64)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let (id, billed) = l.split_once(',').unwrap();
            (id.to_string(), billed.parse().unwrap())
        })
        .collect();
    assert_eq!(csv_rows, want);
    let json: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(file("json")).unwrap()).unwrap();
    let ndjson: Vec<serde_json::Value> = std::fs::read_to_string(file("ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json, ndjson);
    let json_rows: Vec<(String, i64)> = json
        .iter()
        .map(|o| {
            let billed = &o["billed"];
            let billed = billed
                .as_i64()
                .or_else(|| billed.as_str().and_then(|s| s.parse().ok()))
                .unwrap();
            (o["k"].as_str().unwrap().to_string(), billed)
        })
        .collect();
    assert_eq!(json_rows, want);
    // Markdown: every row, not the screen's 40.
    let md = std::fs::read_to_string(file("md")).unwrap();
    assert_eq!(md.lines().count(), 2 + 45, "{md}");
    // A bundled query exports too.
    let n: i64 = conn
        .query_row(
            &format!(
                "select count(*) from read_parquet('{}')",
                out.path().join("usage.parquet").display()
            ),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(n > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_taller_than_the_screen_go_through_the_pager() {
    let (_sim, dir, home) = lake().await;
    let paged = home.path().join("paged.txt");
    let pager = format!("cat > {}", paged.display());
    let mut p = shell_with(
        dir.path(),
        home.path(),
        &[("NO_COLOR", "1"), ("PAGER", &pager), ("LINES", "15")],
    );
    // Shorter than the screen: printed, no pager.
    p.send_line("select 7 as small;").unwrap();
    p.exp_string("1 row").unwrap();
    p.exp_string("hspq> ").unwrap();
    assert!(!paged.exists(), "a short result went to the pager");
    // Taller: the pager gets the whole table.
    p.send_line("select range as n from range(30);").unwrap();
    p.exp_string("30 rows").unwrap();
    p.exp_string("hspq> ").unwrap();
    let text = std::fs::read_to_string(&paged).unwrap();
    assert!(text.contains("│ n ") && text.contains("│ 29 "), "{text}");
    assert!(text.lines().count() > 30, "{text}");
    std::fs::remove_file(&paged).unwrap();
    // .pager off: on the screen.
    p.send_line(".pager off").unwrap();
    p.exp_string("hspq> ").unwrap();
    p.send_line("select range as n from range(30);").unwrap();
    p.exp_string(" 29 ").unwrap();
    p.exp_string("30 rows").unwrap();
    assert!(!paged.exists());
    leave(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_pager_loses_nothing() {
    let (_sim, dir, home) = lake().await;
    let mut p = shell_with(
        dir.path(),
        home.path(),
        &[
            ("NO_COLOR", "1"),
            ("PAGER", "no-such-pager-hspq"),
            ("LINES", "15"),
        ],
    );
    p.send_line("select range as n from range(30);").unwrap();
    p.exp_string("cannot start the pager").unwrap();
    p.exp_string(" 29 ").unwrap();
    p.exp_string("30 rows").unwrap();
    leave(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_maxrows_timer_schema_status_and_output_do_what_help_says() {
    let (_sim, dir, home) = lake().await;
    let work = tempfile::tempdir().unwrap();
    let script = work.path().join("two.sql");
    std::fs::write(
        &script,
        "select 40 + 2 as answer;\nselect upper('from the script') as said;\n",
    )
    .unwrap();
    let saved = work.path().join("saved.txt");
    let mut p = shell(dir.path(), home.path());
    let prompt = |p: &mut PtySession| p.exp_string("hspq> ").unwrap();
    // .read runs every statement of the file (neither answer is in what was typed).
    p.send_line(&format!(".read {}", script.display())).unwrap();
    p.exp_string("42").unwrap();
    p.exp_string("FROM THE SCRIPT").unwrap();
    prompt(&mut p);
    // .maxrows limits a table and says how to see the rest.
    p.send_line(".maxrows 3").unwrap();
    prompt(&mut p);
    p.send_line("select range as r from range(10);").unwrap();
    p.exp_string("10 rows (3 shown; .maxrows N or .export FILE for all)")
        .unwrap();
    prompt(&mut p);
    // .timer on puts the time after the count; off takes it away.
    p.send_line(".timer on").unwrap();
    prompt(&mut p);
    p.send_line("select 1 as one;").unwrap();
    p.exp_regex(r"1 row in [0-9]+\.[0-9]{3} s").unwrap();
    prompt(&mut p);
    p.send_line(".timer off").unwrap();
    prompt(&mut p);
    p.send_line("select 2 as two;").unwrap();
    let (_, after) = p.exp_regex(r"1 row[^\r\n]*").unwrap();
    assert_eq!(after, "1 row", "no time once the timer is off");
    prompt(&mut p);
    // .schema of a dataset: its key and its columns with their types.
    p.send_line(".schema billing").unwrap();
    p.exp_string("billing (key:").unwrap();
    p.exp_regex(r"billing_value [A-Z]+").unwrap();
    prompt(&mut p);
    // .status: the lake and its datasets.
    p.send_line(".status").unwrap();
    p.exp_string(&format!("lake: {}", dir.path().display()))
        .unwrap();
    p.exp_string("daily_usage").unwrap();
    prompt(&mut p);
    // .output FILE: results go to the file until .output alone brings them back.
    p.send_line(&format!(".output {}", saved.display()))
        .unwrap();
    prompt(&mut p);
    p.send_line("select upper('into the file') as x;").unwrap();
    p.exp_string("wrote 1 row to").unwrap();
    prompt(&mut p);
    p.send_line(".output").unwrap();
    prompt(&mut p);
    p.send_line("select upper('on the screen') as y;").unwrap();
    p.exp_string("ON THE SCREEN").unwrap();
    prompt(&mut p);
    leave(p);
    let file = std::fs::read_to_string(&saved).unwrap();
    assert!(file.contains("INTO THE FILE"), "{file}");
    assert!(!file.contains("ON THE SCREEN"), "{file}");
}

//! The lake engine under concurrency, on local disk: a stale writer woken after another run
//! took the lake over, two runs racing to take an expired lake, a sync against an API whose
//! "today" moved back, and readers (hspq sql, a REPL session, a plain DuckDB) running through
//! a whole sync. The same on S3 lives in tests/s3.rs.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::lake::*;
use common::*;
use hspq::lake::commit::Rendezvous;
use hspq::lake::{Dataset, Lake, LakeError, LakeWriter, Partition, WriterOptions, WrittenFile};
use hspq::sim::{Partnership, SimConfig, Simulator};

/// `hspq ingest` of the MSSP key into `data`, its lease lapsing after `ttl`.
fn ingest_cmd(sim: &Simulator, data: &Path, cache: &Path, rate: &str, ttl: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hspq"));
    cmd.args([
        "ingest",
        "-q",
        "--sessions",
        "1",
        "--rate",
        rate,
        "--base-url",
        &sim.base_url(),
        "--data",
    ])
    .arg(data)
    .env("HSPQ_ORG_KEY", ORG_KEY)
    .env("HSPQ_API_KEY", MSSP_KEY)
    .env("HSPQ_LOCK_TTL", ttl)
    .env("XDG_CACHE_HOME", cache)
    .env_remove("RUST_LOG")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_paused_past_its_lease_stops_without_touching_the_lake_that_another_run_synced() {
    let sim = sim(|c| {
        c.companies = 20;
        c.rate = 0.0;
    })
    .await;
    let lake = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    // A: slow enough to be paused half-way, with a lease of 2 s.
    let a = ingest_cmd(&sim, lake.path(), cache.path(), "10", "2")
        .spawn()
        .unwrap();
    wait_for_requests(&sim, 30);
    signal(a.id(), "-STOP");
    let entries_at_pause = latest_entry(lake.path()).unwrap()["version"]
        .as_u64()
        .unwrap();
    assert!(entries_at_pause > 2, "A committed before it was paused");
    // Status says who holds the lake.
    let status = Command::new(env!("CARGO_BIN_EXE_hspq"))
        .args(["status", "--data"])
        .arg(lake.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("a sync holds the lake") && text.contains(&format!("pid {}", a.id())),
        "{text}"
    );
    wait_until_lease_lapses(lake.path());
    // B takes the lake over (A's lease has lapsed) and finishes.
    let b = ingest_cmd(&sim, lake.path(), cache.path(), "100", "2")
        .output()
        .unwrap();
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    let after_b = latest_manifest(lake.path()).unwrap();
    assert_woken_run_lost_the_lake(a);
    // A changed nothing: the commit B left is still the latest, and the lake is the
    // simulator's data, row for row, every listed file intact.
    assert_eq!(latest_manifest(lake.path()).unwrap(), after_b);
    assert!(lake_is_free(lake.path()));
    assert_listed_files_intact(lake.path());
    assert_lake_matches_world(lake.path(), sim.world(), Partnership::Mssp, true);
    let periods = lake_rows(lake.path(), "periods", &["period"]).len();
    assert_eq!(periods, sim.world().periods(Partnership::Mssp).len());
    // The next run deletes whatever A wrote after it lost the lake.
    let c = ingest_cmd(&sim, lake.path(), cache.path(), "100", "2")
        .output()
        .unwrap();
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    assert_eq!(parquet_files(lake.path()), manifest_files(lake.path()));
}

/// A log entry whose lease expired long ago, as a killed run on another machine leaves it.
fn expired_lake(dir: &Path) {
    std::fs::create_dir_all(dir.join("_hspq/log")).unwrap();
    let entry = serde_json::json!({
        "version": 1, "kind": "acquire", "run_id": "gone", "nonce": "0",
        "written_at": "2026-01-01T00:00:00Z",
        "lease": {
            "run_id": "gone", "host": "elsewhere", "owner": { "pid": 1, "started": null },
            "acquired_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-01T00:10:00Z"
        },
        "manifest": { "version": 1, "files": {}, "state": { "periods": {}, "customers": {} } }
    });
    std::fs::write(
        dir.join("_hspq/log/00000000000000000001.json"),
        entry.to_string(),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_racing_to_take_over_an_expired_lake_cannot_both_win() {
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        expired_lake(dir.path());
        let lake = Lake::open(&dir.path().into()).unwrap();
        // Both read the expired lease, then wait for each other before taking the lake.
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let opts = WriterOptions {
            pause_before_take: Some(barrier),
            ..Default::default()
        };
        let (one, two) = tokio::join!(
            LakeWriter::acquire(&lake, "one", opts.clone()),
            LakeWriter::acquire(&lake, "two", opts.clone()),
        );
        let won: Vec<&LakeWriter> = [&one, &two].into_iter().flatten().collect();
        assert_eq!(
            won.len(),
            1,
            "round {round}: exactly one run takes the lake"
        );
        let lost = [one.as_ref().err(), two.as_ref().err()]
            .into_iter()
            .flatten()
            .next()
            .unwrap();
        assert!(
            matches!(lost, LakeError::Locked(m) if m.contains("another hspq run")),
            "round {round}: {lost}"
        );
        // The loser's refusal names the winner, which holds the lake in the log.
        let winner = latest_entry(dir.path()).unwrap()["lease"]["run_id"].clone();
        assert!(lost.to_string().contains(winner.as_str().unwrap()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_lost_the_lake_fails_every_later_change_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(&dir.path().into()).unwrap();
    let a = LakeWriter::acquire(&lake, "a", WriterOptions::default())
        .await
        .unwrap();
    // A stages a chunk and commits it (the run taking over will merge it), then writes one
    // more file it never commits.
    let month = hspq::lake::Partition::month(hspq::lake::Dataset::Engagement, "mssp", "2026-03");
    let staged = a.names().next_staged(&month);
    let uncommitted = a.names().next(&month);
    for f in [&staged, &uncommitted] {
        std::fs::create_dir_all(dir.path().join(f).parent().unwrap()).unwrap();
        std::fs::write(dir.path().join(f), b"x").unwrap();
    }
    let chunk = hspq::lake::StagedChunk {
        report_type: "mssp".into(),
        windows: Default::default(),
        files: [(month.dir.clone(), vec![staged.clone()])].into(),
    };
    a.commit(|m| {
        m.state.open_runs.insert("a".into(), serde_json::json!({}));
        m.staged.push(chunk);
    })
    .await
    .unwrap();
    // What A finds when it wakes from a pause: run b took the lake at A's next version.
    let mut taken = latest_entry(dir.path()).unwrap();
    let next = taken["version"].as_u64().unwrap() + 1;
    taken["version"] = next.into();
    taken["kind"] = "acquire".into();
    taken["run_id"] = "b".into();
    taken["lease"]["run_id"] = "b".into();
    std::fs::write(
        dir.path().join(format!("_hspq/log/{next:020}.json")),
        taken.to_string(),
    )
    .unwrap();
    let err = a.commit(|m| m.files.clear()).await.unwrap_err();
    assert!(
        matches!(&err, LakeError::Lost(m) if m.contains("run b") && m.contains("HSPQ_LOCK_TTL")),
        "{err}"
    );
    assert!(matches!(a.clean_up().await, Err(LakeError::Lost(_))));
    assert!(matches!(
        a.release(hspq::lake::log::Ending::Finished).await,
        Err(LakeError::Lost(_))
    ));
    assert_eq!(latest_entry(dir.path()).unwrap(), taken, "A wrote nothing");
    // Having lost the lake, A deletes only what it never committed.
    assert_eq!(a.abandon().await, 1);
    assert!(!dir.path().join(&uncommitted).exists());
    assert!(
        dir.path().join(&staged).exists(),
        "a committed staged file stays for the run that took over"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_lost_the_lake_keeps_the_files_the_taker_built_on() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(&dir.path().into()).unwrap();
    let a = LakeWriter::acquire(&lake, "a", WriterOptions::default())
        .await
        .unwrap();
    // A writes a file and commits it, but is frozen between the store taking the entry and
    // A learning so; run b takes over from that entry, which a clean-up later removes. As
    // seen from the log: b's entries, listing A's file, after a freed slot.
    let part = hspq::lake::Partition::month(hspq::lake::Dataset::Engagement, "mssp", "2026-03");
    let file = a.names().next(&part);
    std::fs::create_dir_all(dir.path().join(&file).parent().unwrap()).unwrap();
    std::fs::write(dir.path().join(&file), b"x").unwrap();
    let mut taken = latest_entry(dir.path()).unwrap();
    let next = taken["version"].as_u64().unwrap() + 2;
    taken["version"] = next.into();
    taken["run_id"] = "b".into();
    taken["lease"]["run_id"] = "b".into();
    taken["manifest"]["files"][&file] = serde_json::json!({
        "size": 1, "rows": 1, "sha256": "x", "run_id": "a", "unique_keys": true
    });
    std::fs::write(
        dir.path().join(format!("_hspq/log/{next:020}.json")),
        taken.to_string(),
    )
    .unwrap();
    // A wakes: its next entry goes into the freed slot behind b's, so it has lost the lake.
    let err = a.commit(|_| {}).await.unwrap_err();
    assert!(
        matches!(&err, LakeError::Lost(m) if m.contains("run b")),
        "{err}"
    );
    let stray = a.names().next(&part);
    std::fs::write(dir.path().join(&stray), b"x").unwrap();
    assert_eq!(a.abandon().await, 1, "only the file nobody lists goes");
    assert!(dir.path().join(&file).exists(), "b's commit lists it");
    assert!(!dir.path().join(&stray).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_against_an_api_whose_today_moved_back_skips_what_it_cannot_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let later = sim(|c| c.companies = 8).await;
    ingest_lake(&later, dir.path(), &[MSSP_KEY]).await;
    // A second key (or a lagging pipeline) whose API is ten days behind.
    let mut config = SimConfig::new(today() - chrono::Days::new(10));
    config.rate = 0.0;
    config.companies = 8;
    let earlier = Simulator::start_local(config).await.unwrap();
    let out = ingest_cmd(&earlier, dir.path(), dir.path(), "1000", "10m")
        .env("XDG_CACHE_HOME", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warnings = lake_rows(dir.path(), "sync_runs", &["warnings"]).join("\n");
    assert!(
        warnings.contains("customer(s) skipped (first: SE-") && warnings.contains("past this API"),
        "{warnings}"
    );
    assert!(lake_is_free(dir.path()));
    assert_listed_files_intact(dir.path());
}

/// Billing rows read by plain glob, minus distinct keys: the duplicates a glob reader sees.
const GLOB_DUPLICATES: &str =
    "select count(*) - count(distinct (year, period, security_center_id, product)) \
     from read_parquet('{root}/billing/**/*.parquet', hive_partitioning = true)";

/// A bounded loop of the plain DuckDB CLI reading the lake by glob until `until`; returns how
/// many runs there were and the failures with when they happened.
fn glob_loop(root: &Path, until: &AtomicBool) -> (usize, Vec<(Instant, String)>) {
    let sql = GLOB_DUPLICATES.replace("{root}", &root.display().to_string());
    let mut runs = 0;
    let mut failures = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !until.load(Ordering::SeqCst) && Instant::now() < deadline {
        let out = Command::new(venv_tool("duckdb"))
            .args(["-csv", "-noheader", "-c", &sql])
            .output()
            .unwrap();
        runs += 1;
        if !out.status.success() {
            failures.push((
                Instant::now(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
    }
    (runs, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_run_through_a_whole_sync_and_a_glob_reader_finds_no_duplicate_after_it() {
    let sim = sim(|c| c.companies = 20).await;
    let dir = tempfile::tempdir().unwrap();
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    let cache = tempfile::tempdir().unwrap();
    let hspq = |command: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hspq"));
        cmd.args([command, "--data"]).arg(dir.path());
        cmd
    };
    // A plain DuckDB reading by glob alongside the shell and `hspq sql`.
    let done = Arc::new(AtomicBool::new(false));
    let glob_reader = {
        let (done, data) = (done.clone(), dir.path().to_path_buf());
        std::thread::spawn(move || glob_loop(&data, &done))
    };
    // A full re-sync replaces every partition; paced so the readers overlap it.
    let mut sync = ingest_cmd(&sim, dir.path(), cache.path(), "30", "10m");
    sync.arg("--full");
    let seen = read_through_sync(hspq("repl"), || hspq("sql"), sync, Duration::ZERO);
    done.store(true, Ordering::SeqCst);
    let (glob_runs, glob_failures) = glob_reader.join().unwrap();
    assert!(
        seen.sync_took > Duration::from_secs(2),
        "the sync was long enough to overlap"
    );
    // A plain glob reader may fail only around the end of the sync, when the replaced files go.
    for (when, error) in &glob_failures {
        let from_end = if *when > seen.sync_ended {
            *when - seen.sync_ended
        } else {
            seen.sync_ended - *when
        };
        assert!(
            from_end < Duration::from_secs(3),
            "a glob read failed mid-sync: {error}"
        );
    }
    assert!(glob_runs > 3, "{glob_runs} glob runs overlapped the sync");
    let out = Command::new(venv_tool("duckdb"))
        .args([
            "-csv",
            "-noheader",
            "-c",
            &GLOB_DUPLICATES.replace("{root}", &dir.path().display().to_string()),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "no duplicate key after the sync"
    );
    assert_eq!(parquet_files(dir.path()), manifest_files(dir.path()));
    assert_listed_files_intact(dir.path());
    let want = lake_rows(dir.path(), "daily_usage", &["count(*)"]);
    assert_eq!(
        seen.counts.last(),
        want.first(),
        "the shell ends on the new commit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_up_removes_what_fenced_runs_left_and_keeps_young_files_of_unknown_writers() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(&dir.path().into()).unwrap();
    // Run 1 takes the lake and is killed; run 2 takes it over.
    let first = LakeWriter::acquire(&lake, "first", WriterOptions::default())
        .await
        .unwrap();
    let part = "billing/report_type=mssp/year=2026/period=01";
    std::fs::create_dir_all(dir.path().join(part)).unwrap();
    let left = [
        // A file run 1 wrote and never committed, and an upload cut short before its rename.
        format!("{part}/part-e000001-first-00000.parquet"),
        format!("{part}/part-e000001-first-00001.parquet#7"),
        // A file whose writer hspq cannot identify (another tool, an older hspq).
        format!("{part}/foreign.parquet"),
    ];
    for f in &left {
        std::fs::write(dir.path().join(f), b"x").unwrap();
    }
    drop(first);
    let quick = WriterOptions {
        lock_ttl: Duration::from_millis(1),
        ..Default::default()
    };
    // The lease of run 1 lasts ten minutes by default: wait it out with a run that cannot.
    let expired = LakeWriter::acquire(&lake, "short", quick.clone()).await;
    assert!(
        matches!(expired, Err(LakeError::Locked(_))),
        "run 1 still holds the lake"
    );
    let mut entry = latest_entry(dir.path()).unwrap();
    entry["lease"]["expires_at"] = "2000-01-01T00:00:00Z".into();
    let v = entry["version"].as_u64().unwrap();
    std::fs::write(
        dir.path().join(format!("_hspq/log/{v:020}.json")),
        entry.to_string(),
    )
    .unwrap();
    let second = LakeWriter::acquire(&lake, "second", WriterOptions::default())
        .await
        .unwrap();
    let done = second.clean_up().await.unwrap();
    assert_eq!(done.orphans, 2, "run 1's file and half upload go at once");
    assert!(!dir.path().join(&left[0]).exists());
    assert!(!dir.path().join(&left[1]).exists());
    assert!(
        dir.path().join(&left[2]).exists(),
        "a young unknown file stays"
    );
    second
        .release(hspq::lake::log::Ending::Finished)
        .await
        .unwrap();
    // Past the retention, the unknown file goes too.
    let third = LakeWriter::acquire(
        &lake,
        "third",
        WriterOptions {
            retention: Duration::ZERO,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(third.clean_up().await.unwrap().orphans, 1);
    assert!(!dir.path().join(&left[2]).exists());
    third
        .release(hspq::lake::log::Ending::Finished)
        .await
        .unwrap();
}

/// Syncs `sim` into `dir` again, re-fetching everything (every partition gets new files and
/// the old ones are retired at the end).
async fn full_sync(sim: &Simulator, dir: &Path) {
    let mut opts = ingest_options(sim, dir, MSSP_KEY, 2);
    opts.windows.full = true;
    hspq::ingest::run(opts).await.unwrap();
}

/// A streamed export under way whose reader does not read yet: its header is read, the rest
/// waits in the pipe.
struct Export {
    child: Child,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl Export {
    fn start(mut command: Command, header: &str) -> Export {
        use std::io::BufRead;
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        assert_eq!(first.trim(), header);
        Export { child, out }
    }

    /// The rows after the header, as `|`-separated text, sorted; asserts the export succeeded.
    fn finish(mut self) -> Vec<String> {
        use std::io::Read;
        let mut rest = String::new();
        self.out.read_to_string(&mut rest).unwrap();
        let status = self.child.wait().unwrap();
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(status.success(), "the export failed: {stderr}");
        sorted(rest.lines().map(|l| l.replace(',', "|")).collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_exports_with_unread_pipes_return_every_row_of_their_version_across_two_syncs() {
    let sim = sim(|c| c.companies = 200).await;
    let dir = tempfile::tempdir().unwrap();
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    let want = lake_rows(
        dir.path(),
        "daily_usage",
        &["security_center_id", "product", "date", "usage_value"],
    );
    assert!(
        want.len() > 50_000,
        "{} rows: more than pipes and DuckDB buffer",
        want.len()
    );
    const COLUMNS: &str = "security_center_id, product, date, usage_value";
    let mut sql = Command::new(env!("CARGO_BIN_EXE_hspq"));
    sql.args(["sql", "--format", "csv", "--data"])
        .arg(dir.path())
        .arg(format!("select {COLUMNS} from daily_usage"));
    let header = COLUMNS.replace(' ', "");
    let export = Export::start(sql, &header);
    // The same through hspq serve, to psql, as a COPY, each row padded so that the whole is
    // more than loopback's socket buffers hold (up to 36 MB here).
    let server = common::serve::Server::start(dir.path());
    let mut psql = Command::new(common::serve::psql());
    psql.arg(server.conninfo())
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(format!(
            "copy (select {COLUMNS}, repeat('x', 1000) as pad from daily_usage) to stdout \
             (format csv, header)"
        ))
        .env("PGPASSWORD", common::serve::PASSWORD);
    let copy = Export::start(psql, &format!("{header},pad"));
    // Both are under way and blocked on their pipes: a sync replaces every file they read.
    full_sync(&sim, dir.path()).await;
    let got: Vec<String> = copy
        .finish()
        .iter()
        .map(|l| {
            l.strip_suffix(&format!("|{}", "x".repeat(1000)))
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(got.len(), want.len(), "serve: every row of its version");
    assert_eq!(got, want, "serve");
    // And another, with only the export's pin on the version.
    full_sync(&sim, dir.path()).await;
    assert_ne!(parquet_files(dir.path()), manifest_files(dir.path()));
    let got = export.finish();
    assert_eq!(got.len(), want.len(), "hspq sql: every row of its version");
    assert_eq!(got, want, "hspq sql");
    // Once the last pin on the old version ended, the reader that held it retired what the
    // syncs kept in place for it, without waiting for another sync: a glob reader sees each
    // row once again.
    assert_eq!(parquet_files(dir.path()), manifest_files(dir.path()));
    assert!(lake_is_free(dir.path()));
    let log =
        String::from_utf8(succeeded(hspq_on(dir.path(), &["log", "--format", "csv"]))).unwrap();
    assert!(
        log.contains(",tidy-"),
        "the tidying is a run of the log: {log}"
    );
    drop(server);
    assert_eq!(
        std::fs::read_dir(dir.path().join("_hspq/pins"))
            .unwrap()
            .count(),
        0,
        "the export's pin went with it"
    );
}

/// Found from outside: a reader killed (kill -9) while it pinned an old version never ends its
/// pin, and what the sync kept in place for it stayed beside the new files (each row twice to
/// a glob reader) until the next sync. The next hspq reader to finish retires them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_readers_kept_files_go_with_the_next_reader() {
    let sim = sim(|c| c.companies = 100).await;
    let dir = tempfile::tempdir().unwrap();
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    let mut sql = Command::new(env!("CARGO_BIN_EXE_hspq"));
    sql.args(["sql", "--format", "csv", "--data"])
        .arg(dir.path())
        .arg("select security_center_id from daily_usage");
    let mut export = Export::start(sql, "security_center_id");
    full_sync(&sim, dir.path()).await;
    assert_ne!(
        parquet_files(dir.path()),
        manifest_files(dir.path()),
        "kept for the export"
    );
    export.child.kill().unwrap();
    export.child.wait().unwrap();
    assert_ne!(
        parquet_files(dir.path()),
        manifest_files(dir.path()),
        "nobody tidied yet"
    );
    let reader = hspq_on(dir.path(), &["sql", "select count(*) from billing"]);
    let said = String::from_utf8_lossy(&reader.stderr).to_string();
    succeeded(reader);
    // Quietly: how long the history keeps them is the syncs' --version-retention, which a
    // reader does not know (it said "readable with --as-of for 7 days" from its own default).
    assert!(!said.contains("readable with --as-of"), "{said}");
    assert_eq!(parquet_files(dir.path()), manifest_files(dir.path()));
    assert_eq!(
        std::fs::read_dir(dir.path().join("_hspq/pins"))
            .unwrap()
            .count(),
        0,
        "the dead reader's pin went too"
    );
}

/// A reader that cannot pin its version (here `_hspq/pins` is a file, as a lake folder the
/// reader may not write to would be) warns, and when a sync retires a file it had yet to read
/// it fails saying what happened and to run it again, not only with DuckDB's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpinned_export_a_sync_cuts_short_says_so() {
    let sim = sim(|c| c.companies = 200).await;
    let dir = tempfile::tempdir().unwrap();
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    std::fs::remove_dir_all(dir.path().join("_hspq/pins")).ok();
    std::fs::write(dir.path().join("_hspq/pins"), "").unwrap();
    let mut sql = Command::new(env!("CARGO_BIN_EXE_hspq"));
    sql.args(["sql", "--format", "csv", "--data"])
        .arg(dir.path())
        .arg("select security_center_id, product, date, usage_value from daily_usage");
    let mut export = Export::start(sql, "security_center_id,product,date,usage_value");
    full_sync(&sim, dir.path()).await;
    use std::io::Read;
    let mut rest = String::new();
    export.out.read_to_string(&mut rest).unwrap();
    let status = export.child.wait().unwrap();
    let mut stderr = String::new();
    export
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot pin the version read"), "{stderr}");
    assert!(
        stderr.contains("a sync removed a file this query was reading, after")
            && stderr.contains("could not pin the version it read")
            && stderr.contains("run it again"),
        "{stderr}"
    );
}

/// Reads `daily_usage` through a held server-side cursor of `hspq serve`: 100 rows, then
/// "ready", then (after a line on stdin) the rest; each row as `lake_rows` spells it.
const CURSOR_READER: &str = r#"
import sys, psycopg
conn = psycopg.connect(sys.argv[1], autocommit=True)
cols = ", ".join(f"coalesce(cast({c} as varchar), '∅')" for c in sys.argv[2].split(","))
conn.execute(f"declare c cursor with hold for select concat_ws('|', {cols}) from daily_usage")
rows = conn.execute("fetch 100 from c").fetchall()
print("ready", flush=True)
sys.stdin.readline()
rows += conn.execute("fetch all from c").fetchall()
print("\n".join(r[0] for r in rows))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serve_cursor_reads_its_version_to_the_end_across_two_syncs() {
    use std::io::{BufRead, Read, Write};
    let sim = sim(|c| c.companies = 100).await;
    let dir = tempfile::tempdir().unwrap();
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    const COLUMNS: [&str; 4] = ["security_center_id", "product", "date", "usage_value"];
    let want = lake_rows(dir.path(), "daily_usage", &COLUMNS);
    let server = common::serve::Server::start(dir.path());
    let mut reader = Command::new(venv_tool("python"))
        .args(["-c", CURSOR_READER, &server.conninfo(), &COLUMNS.join(",")])
        .env("PGPASSWORD", common::serve::PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(reader.stdout.take().unwrap());
    let mut ready = String::new();
    out.read_line(&mut ready).unwrap();
    assert_eq!(ready.trim(), "ready");
    // The cursor is open, its first rows read: two syncs replace every file it reads.
    full_sync(&sim, dir.path()).await;
    full_sync(&sim, dir.path()).await;
    assert_ne!(
        parquet_files(dir.path()),
        manifest_files(dir.path()),
        "the cursor's pin keeps its files"
    );
    reader.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = reader.wait().unwrap();
    let mut stderr = String::new();
    reader
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "the cursor failed: {stderr}");
    let got = sorted(rest.lines().map(str::to_string).collect());
    assert_eq!(got.len(), want.len(), "every row of its version");
    assert_eq!(got, want);
    drop(server);
    // Its pin went with the server: the next sync removes what it kept.
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    assert_eq!(parquet_files(dir.path()), manifest_files(dir.path()));
}

/// A file in `partition` of the lake at `dir`, as `writer` names them, listed by its next
/// commit.
async fn commit_a_file(dir: &Path, writer: &LakeWriter, run_id: &str, n: u64) -> String {
    let part = Partition::period(Dataset::Billing, "mssp", 2026, "01");
    let path = part.file(writer.names().epoch(), run_id, n);
    std::fs::create_dir_all(dir.join(&part.dir)).unwrap();
    std::fs::write(dir.join(&path), b"x").unwrap();
    let file = WrittenFile {
        path: path.clone(),
        size: 1,
        rows: 1,
        sha256: "x".into(),
        unique_keys: true,
    };
    writer.commit(|m| m.add(&[file], run_id)).await.unwrap();
    path
}

/// Run `run_id` taking the lake over as soon as the lease of the run holding it lapses.
async fn take_over(lake: &Lake, run_id: &str, opts: WriterOptions) -> LakeWriter {
    loop {
        match LakeWriter::acquire(lake, run_id, opts.clone()).await {
            Ok(writer) => return writer,
            Err(LakeError::Locked(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_up_paused_after_its_lease_proof_and_taken_over_deletes_nothing_of_the_takers() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(&dir.path().into()).unwrap();
    let pause = Arc::new(Rendezvous::default());
    let a = Arc::new(
        LakeWriter::acquire(
            &lake,
            "a",
            WriterOptions {
                lock_ttl: Duration::from_millis(300),
                // Anything unlisted and not this run's is old enough to go.
                retention: Duration::ZERO,
                pause_after_proof: Some(pause.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap(),
    );
    let mine = commit_a_file(dir.path(), &a, "a", 0).await;
    let cleaning = tokio::spawn({
        let a = a.clone();
        async move { a.clean_up().await }
    });
    pause.reached().await;
    // A is stopped right after proving its lease; it lapses, and B takes the lake over and
    // commits a file of its own.
    let b = take_over(&lake, "b", WriterOptions::default()).await;
    let theirs = commit_a_file(dir.path(), &b, "b", 0).await;
    pause.resume();
    let woken = cleaning.await.unwrap();
    assert!(
        matches!(&woken, Err(LakeError::Lost(why)) if why.contains(&theirs)),
        "{woken:?}"
    );
    assert!(dir.path().join(&theirs).exists(), "the taker's file stays");
    assert!(
        dir.path().join(&mine).exists(),
        "the taker built on A's file"
    );
    assert_eq!(latest_entry(dir.path()).unwrap()["run_id"], "b");
    b.release(hspq::lake::log::Ending::Finished).await.unwrap();
    // `hspq log` lists A's run, taken over, as stopped (its last commit), and what each wrote:
    // A's is the oldest line, its version before it never existed.
    let lines = hspq::lake::log::lines(&lake).await.unwrap();
    let runs: Vec<(&str, &str, u64, usize)> = lines
        .iter()
        .map(|l| (l.run_id.as_str(), l.status, l.rows_written, l.partitions))
        .collect();
    assert_eq!(runs, [("a", "stopped", 1, 1), ("b", "finished", 1, 1)]);
    assert_eq!(lines[0].datasets, ["billing"]);
}

/// Found from outside: a run paused past its lease and taken over wrote one more entry when it
/// woke, into a version slot the taker's clean-up had freed; it then said it changed nothing.
/// It leaves no entry (`--as-of` and `hspq log` would show one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_lost_the_lake_leaves_no_entry_in_a_freed_slot() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(&dir.path().into()).unwrap();
    let pause = Arc::new(Rendezvous::default());
    let a = Arc::new(
        LakeWriter::acquire(
            &lake,
            "a",
            WriterOptions {
                lock_ttl: Duration::from_millis(300),
                pause_after_store: Some(pause.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap(),
    );
    // A stalls right after storing a commit, past its lease.
    let committing = tokio::spawn({
        let (a, dir) = (a.clone(), dir.path().to_path_buf());
        async move { commit_a_file(&dir, &a, "a", 0).await }
    });
    pause.reached().await;
    let a_next = latest_entry(dir.path()).unwrap()["version"]
        .as_u64()
        .unwrap()
        + 1;
    // B takes the lake, commits more than the log keeps, and cleans up.
    let opts = WriterOptions {
        version_retention: Duration::ZERO,
        ..Default::default()
    };
    let b = take_over(&lake, "b", opts).await;
    for n in 0..12 {
        commit_a_file(dir.path(), &b, "b", n).await;
    }
    b.clean_up().await.unwrap();
    b.release(hspq::lake::log::Ending::Finished).await.unwrap();
    let slot = dir.path().join(format!("_hspq/log/{a_next:020}.json"));
    assert!(!slot.exists(), "the clean-up freed A's next slot");
    let before = latest_entry(dir.path()).unwrap();
    pause.resume();
    committing.await.unwrap();
    let err = a.commit(|m| m.files.clear()).await.unwrap_err();
    assert!(
        matches!(&err, LakeError::Lost(m) if m.contains("run b")),
        "{err}"
    );
    assert!(!slot.exists(), "A left an entry behind");
    assert_eq!(latest_entry(dir.path()).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_cancelled_after_the_store_took_it_is_kept_by_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(&dir.path().into()).unwrap();
    let pause = Arc::new(Rendezvous::default());
    let w = Arc::new(
        LakeWriter::acquire(
            &lake,
            "w",
            WriterOptions {
                pause_after_store: Some(pause.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap(),
    );
    let commit = |n| {
        let (w, dir) = (w.clone(), dir.path().to_path_buf());
        tokio::spawn(async move { commit_a_file(&dir, &w, "w", n).await })
    };
    // Ctrl-C once the store took the first commit, before the run heard of it.
    let first = commit(0);
    pause.reached().await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    let mut second = commit(1);
    tokio::select! {
        _ = pause.reached() => pause.resume(),
        failed = &mut second => panic!("the next commit failed: {failed:?}"),
    }
    let second = second.await.unwrap();
    let files: Vec<String> = w.snapshot().await.files.keys().cloned().collect();
    assert_eq!(files.len(), 2, "both commits' files: {files:?}");
    assert!(files.contains(&second));
    assert_eq!(manifest_files(dir.path()).len(), 2);
    w.release(hspq::lake::log::Ending::Finished).await.unwrap();
}

/// `hspq sql SQL --format csv` on the lake at `dir` with more arguments; its stdout.
fn sql_csv(dir: &Path, sql: &str, more: &[&str]) -> String {
    let mut args = vec!["sql", sql, "--format", "csv"];
    args.extend_from_slice(more);
    String::from_utf8(succeeded(hspq_on(dir, &args))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_reads_the_lake_a_sync_left_after_three_more_until_the_version_retention_ends() {
    let sim = sim(|c| c.companies = 20).await;
    let dir = tempfile::tempdir().unwrap();
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    let first = latest_entry(dir.path()).unwrap();
    let (v, at) = (
        first["version"].as_u64().unwrap(),
        first["written_at"].clone(),
    );
    const ROWS: &str = "select security_center_id, product, date, usage_value, ingested_at \
                        from daily_usage order by all";
    let then = sql_csv(dir.path(), ROWS, &[]);
    // Files written a month ago: the history keeps them for the retention from when they
    // moved there, not from when they were written.
    let month_ago = std::time::SystemTime::now() - Duration::from_secs(30 * 24 * 3600);
    for path in parquet_files(dir.path()) {
        let file = std::fs::File::options()
            .write(true)
            .open(dir.path().join(path))
            .unwrap();
        file.set_modified(month_ago).unwrap();
    }
    for _ in 0..3 {
        full_sync(&sim, dir.path()).await;
    }
    // The data folders hold the newest version only: a glob reader sees each row once.
    assert_eq!(parquet_files(dir.path()), manifest_files(dir.path()));
    assert_ne!(
        sql_csv(dir.path(), ROWS, &[]),
        then,
        "each sync rewrote every row"
    );
    // The first sync's lake, by its version and by the time it finished.
    let version = format!("v{v}");
    assert_eq!(sql_csv(dir.path(), ROWS, &["--as-of", &version]), then);
    let when = at.as_str().unwrap();
    assert_eq!(sql_csv(dir.path(), ROWS, &["--as-of", when]), then);
    // One of its files gone from the history: an error that says which version cannot be
    // read and why, whatever view the statement reads.
    let file = first["manifest"]["files"]
        .as_object()
        .unwrap()
        .keys()
        .find(|p| p.starts_with("daily_usage/"))
        .unwrap();
    let kept = dir.path().join("_hspq/history").join(file);
    let aside = dir.path().join("aside.parquet");
    std::fs::rename(&kept, &aside).unwrap();
    let out = hspq_on(
        dir.path(),
        &["sql", "select count(*) from me", "--as-of", &version],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{version} can no longer be read: its file {file} is gone"
        )),
        "{stderr}"
    );
    std::fs::rename(&aside, &kept).unwrap();
    let log =
        String::from_utf8(succeeded(hspq_on(dir.path(), &["log", "--format", "csv"]))).unwrap();
    let finished: Vec<&str> = log.lines().filter(|l| l.contains(",finished,")).collect();
    assert_eq!(finished.len(), 4, "{log}");
    assert!(finished[0].starts_with(&format!("{v},")), "{log}");
    // Before the first sync finished there was nothing to read.
    let out = hspq_on(dir.path(), &["sql", "select 1", "--as-of", "2000-01-01"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("no sync had finished by"),
        "{stderr}"
    );
    // v0 never existed; the newest version is named as such (it does not follow syncs).
    let out = hspq_on(dir.path(), &["sql", "select 1", "--as-of", "v0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("v0 does not exist"), "{stderr}");
    let newest = latest_entry(dir.path()).unwrap()["version"]
        .as_u64()
        .unwrap();
    let out = hspq_on(
        dir.path(),
        &["sql", "select 1", "--as-of", &newest.to_string()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("reading v{newest} of ")) && stderr.contains("the newest version"),
        "{stderr}"
    );
    // A time still to come is refused: frozen at today's newest, it would change meaning.
    // Today's date too: its end, in the API's timezone, has not come.
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Stockholm)
        .date_naive()
        .to_string();
    for future in ["2999-01-01", "2999-01-01T00:00:00Z", &today] {
        let out = hspq_on(dir.path(), &["sql", "select 1", "--as-of", future]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.code() == Some(1) && stderr.contains("is still to come"),
            "{stderr}"
        );
    }
    // Through hspq serve, a connection reads it after `SET hspq.as_of`, and the newest after
    // `RESET`; another connection is not affected.
    const DIGEST: &str = "select count(*) || ':' || sum(hash(security_center_id, product, date, \
                          usage_value, ingested_at)) from daily_usage";
    let digest = |more: &[&str]| -> String {
        let out = sql_csv(dir.path(), DIGEST, more);
        out.lines().nth(1).unwrap().to_string()
    };
    let (digest_then, digest_now) = (digest(&["--as-of", &version]), digest(&[]));
    assert_ne!(digest_then, digest_now);
    let server = common::serve::Server::start(dir.path());
    let psql = |commands: &[String]| -> String {
        let mut cmd = Command::new(common::serve::psql());
        cmd.arg(server.conninfo())
            .args(["-X", "-At", "-q", "-v", "ON_ERROR_STOP=1"])
            .env("PGPASSWORD", common::serve::PASSWORD);
        for c in commands {
            cmd.arg("-c").arg(c);
        }
        let out = cmd.output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let set = format!("set hspq.as_of = '{version}'");
    assert_eq!(
        psql(&[set.clone(), "show hspq.as_of".into(), DIGEST.into()]),
        format!("{version}\n{digest_then}\n")
    );
    assert_eq!(
        psql(&[set.clone(), "reset hspq.as_of".into(), DIGEST.into()]),
        format!("{digest_now}\n")
    );
    assert_eq!(psql(&[DIGEST.into()]), format!("{digest_now}\n"));
    // What SHOW says when none is set is taken back as a value.
    assert_eq!(
        psql(&[
            set.clone(),
            "set hspq.as_of = 'newest'".into(),
            "show hspq.as_of".into(),
            DIGEST.into()
        ]),
        format!("newest\n{digest_now}\n")
    );
    // Set in a block, it lasts as PostgreSQL's settings do: a rollback undoes SET, SET LOCAL
    // ends with its block, and what pools send before handing a connection on (RESET ALL,
    // DISCARD ALL) brings the newest back.
    let c = |s: &str| s.to_string();
    let local = format!("set local hspq.as_of = '{version}'");
    let then_newest = format!("newest\n{digest_now}\n");
    assert_eq!(
        psql(&[
            c("begin"),
            set.clone(),
            c("rollback"),
            c("show hspq.as_of"),
            c(DIGEST)
        ]),
        then_newest
    );
    assert_eq!(
        psql(&[
            c("begin"),
            local.clone(),
            c(DIGEST),
            c("commit"),
            c("show hspq.as_of"),
            c(DIGEST)
        ]),
        format!("{digest_then}\n{then_newest}")
    );
    assert_eq!(
        psql(&[local, c("show hspq.as_of"), c(DIGEST)]),
        then_newest,
        "SET LOCAL outside a block has no effect"
    );
    assert_eq!(
        psql(&[
            c("begin"),
            set.clone(),
            c("commit"),
            c("show hspq.as_of"),
            c(DIGEST)
        ]),
        format!("{version}\n{digest_then}\n")
    );
    // A rollback to a savepoint undoes what was set after it, and only that.
    assert_eq!(
        psql(&[
            c("begin"),
            c("savepoint a"),
            set.clone(),
            c("rollback to savepoint a"),
            c("show hspq.as_of"),
            c(DIGEST),
            c("commit"),
            c("show hspq.as_of"),
        ]),
        format!("{then_newest}newest\n")
    );
    assert_eq!(
        psql(&[
            c("begin"),
            set.clone(),
            c("savepoint \"A\""),
            c("reset hspq.as_of"),
            c("rollback to \"A\""),
            c("show hspq.as_of"),
            c(DIGEST),
            c("commit"),
            c("show hspq.as_of"),
        ]),
        format!("{version}\n{digest_then}\n{version}\n")
    );
    for reset in ["reset all", "discard all"] {
        assert_eq!(
            psql(&[set.clone(), c(reset), c("show hspq.as_of"), c(DIGEST)]),
            then_newest,
            "{reset}"
        );
    }
    // A version never kept is the client's mistake: 22023, as a bad value, not XX000.
    let never = psql(&[
        "\\set VERBOSITY verbose".into(),
        "set hspq.as_of = 'v999999'".into(),
    ]);
    assert!(
        never.contains("22023") && never.contains("v999999"),
        "{never}"
    );
    let refused = psql(&["set hspq.as_of = 'yesterday-ish'".into()]);
    assert!(
        refused.contains("is not a version of the lake"),
        "{refused}"
    );
    drop(server);
    // A sync keeping versions only a millisecond lets the first one go, with a clear error.
    let mut opts = ingest_options(&sim, dir.path(), MSSP_KEY, 2);
    opts.windows.full = true;
    opts.lake.version_retention = Duration::from_millis(1);
    hspq::ingest::run(opts).await.unwrap();
    let out = hspq_on(dir.path(), &["sql", "select 1", "--as-of", &version]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{version} is no longer kept"))
            && stderr.contains("the oldest version kept is v"),
        "{stderr}"
    );
    // Its files went from the history; the last sync's retired ones just arrived.
    let history = dir.path().join("_hspq/history");
    for path in first["manifest"]["files"].as_object().unwrap().keys() {
        assert!(!history.join(path).exists(), "{path} stays in the history");
    }
    assert!(!walk(&history).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_entries_list_their_files_and_share_a_sync_object_that_clean_up_keeps_only_while_named()
{
    let sim = sim(|c| c.companies = 5).await;
    let dir = tempfile::tempdir().unwrap();
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    full_sync(&sim, dir.path()).await;
    let log = dir.path().join("_hspq/log");
    let entries: Vec<serde_json::Value> = walk(&log)
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect();
    let mut named = std::collections::BTreeSet::new();
    for e in &entries {
        // A plain reader finds the live files in the entry itself; the sync state is elsewhere.
        assert!(e["manifest"]["files"].is_object(), "{e}");
        assert!(e["manifest"].get("state").is_none(), "{e}");
        let object = e["sync"]
            .as_str()
            .expect("each entry names its sync object");
        assert!(dir.path().join(object).is_file(), "{object} is missing");
        named.insert(dir.path().join(object));
    }
    // The clean-up at the sync's end removed every object no kept entry names, and entries
    // that kept the state (refreshes, the release, commits of report files) share one.
    let objects: std::collections::BTreeSet<_> =
        walk(&dir.path().join("_hspq/sync")).into_iter().collect();
    assert_eq!(objects, named);
    assert!(objects.len() < entries.len(), "{} objects", objects.len());
    // Staged chunks merged into their partitions are in no version: deleted, not kept in the
    // history, which holds the retired data files.
    let history = dir.path().join("_hspq/history");
    assert!(!walk(&history).is_empty());
    assert!(!history.join("_hspq").exists());
    // The newest object holds each listed customer's fetched range, as hspq reads it.
    let state = sync_state(dir.path(), &latest_entry(dir.path()).unwrap());
    let customers = state["state"]["customers"].as_object().unwrap();
    let listed = sim.world().customers(Partnership::Mssp).len();
    assert_eq!(customers.len(), listed, "{state}");
    assert_eq!(state["staged"], serde_json::json!([]));
    let lake = Lake::open(&dir.path().into()).unwrap();
    let read = hspq::lake::log::latest(&lake).await.unwrap().unwrap();
    assert_eq!(
        serde_json::to_value(&read.manifest.state).unwrap(),
        state["state"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lake_whose_log_is_damaged_is_rebuilt_by_doing_what_the_error_says() {
    let sim = sim(|c| c.companies = 5).await;
    let dir = tempfile::tempdir().unwrap();
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    // Files of later epochs than a new log's first run.
    full_sync(&sim, dir.path()).await;
    const COUNT: &str = "select count(*) from daily_usage";
    let rows = sql_csv(dir.path(), COUNT, &[]);
    // The newest log entry cut short.
    let log = dir.path().join("_hspq/log");
    let newest = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let entry = std::fs::read(&newest).unwrap();
    std::fs::write(&newest, &entry[..entry.len() / 2]).unwrap();
    let out = hspq_on(dir.path(), &["sql", COUNT]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is damaged")
            && stderr.contains(&log.display().to_string())
            && stderr.contains("move it aside and run `hspq ingest --full`"),
        "{stderr}"
    );
    // As it says: the log aside, a full sync rebuilds the lake, and the files the old log
    // listed (newer epochs than the new log's) go rather than fence the rebuild off.
    std::fs::rename(&log, dir.path().join("_hspq/log.damaged")).unwrap();
    full_sync(&sim, dir.path()).await;
    assert_eq!(sql_csv(dir.path(), COUNT, &[]), rows);
    assert_eq!(parquet_files(dir.path()), manifest_files(dir.path()));
    assert_listed_files_intact(dir.path());
    // And the same with the whole bookkeeping folder gone.
    std::fs::remove_dir_all(dir.path().join("_hspq")).unwrap();
    full_sync(&sim, dir.path()).await;
    assert_eq!(sql_csv(dir.path(), COUNT, &[]), rows);
    assert_eq!(parquet_files(dir.path()), manifest_files(dir.path()));
}

/// Found from outside: with the newest sync object gone, every reader failed and the advice
/// (move the log aside, sync --full) threw away what the API no longer gives (the runs'
/// history, customer_history). Readers need only the files the entry lists; the next sync
/// fetches everything again, keeping what the lake holds. The same for one cut short (which
/// still got that advice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_sync_object_costs_a_full_fetch_and_nothing_the_lake_holds() {
    for cut_short in [false, true] {
        lost_sync_object(cut_short).await;
    }
}

async fn lost_sync_object(cut_short: bool) {
    let sim = sim(|c| c.companies = 10).await;
    let dir = tempfile::tempdir().unwrap();
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    const COUNT: &str = "select count(*) from daily_usage";
    let rows = sql_csv(dir.path(), COUNT, &[]);
    let runs = lake_rows(dir.path(), "sync_runs", &["run_id"]);
    let object = dir
        .path()
        .join(latest_entry(dir.path()).unwrap()["sync"].as_str().unwrap());
    if cut_short {
        let packed = std::fs::read(&object).unwrap();
        std::fs::write(&object, &packed[..packed.len() / 2]).unwrap();
    } else {
        std::fs::remove_file(&object).unwrap();
    }
    assert_eq!(sql_csv(dir.path(), COUNT, &[]), rows, "readers read on");
    let requests_before = sim.requests().len();
    let mut opts = ingest_options(&sim, dir.path(), MSSP_KEY, 2);
    opts.windows.full = false;
    hspq::ingest::run(opts).await.unwrap();
    // Everything fetched again (an incremental sync of an unchanged world asks for little)...
    let asked = sim.requests().len() - requests_before;
    let mut opts = ingest_options(&sim, dir.path(), MSSP_KEY, 2);
    opts.windows.full = false;
    let before_incremental = sim.requests().len();
    hspq::ingest::run(opts).await.unwrap();
    let incremental = sim.requests().len() - before_incremental;
    assert!(
        asked > 2 * incremental,
        "{asked} requests, an incremental sync {incremental}"
    );
    // ... and nothing the lake held lost: every earlier run is still listed.
    let after = lake_rows(dir.path(), "sync_runs", &["run_id"]);
    assert!(runs.iter().all(|r| after.contains(r)), "{runs:?} {after:?}");
    assert_eq!(after.len(), runs.len() + 2);
    assert_eq!(sql_csv(dir.path(), COUNT, &[]), rows);
    assert_eq!(parquet_files(dir.path()), manifest_files(dir.path()));
    assert_lake_matches_world(dir.path(), sim.world(), Partnership::Mssp, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_refuses_a_lake_it_did_not_make_and_changes_nothing() {
    let sim = sim(|c| c.companies = 3).await;
    let dir = tempfile::tempdir().unwrap();
    ingest_lake(&sim, dir.path(), &[MSSP_KEY]).await;
    let before = latest_entry(dir.path()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hspq"))
        .args(["demo", "--companies", "3", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("holds a lake hspq demo did not make"),
        "{stderr}"
    );
    assert_eq!(latest_entry(dir.path()).unwrap(), before);
    assert!(!dir.path().join("_hspq/demo").exists());
}

//! `hspq ingest` end to end against the in-process simulator: every dataset of the lake is
//! compared row for row with the simulator's own data, read back by a real DuckDB from the
//! real Parquet files; incremental runs, faults, bad answers, the lock, and secrets.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use chrono::Days;
use common::lake::*;
use common::*;
use hspq::ingest::{IngestError, IngestOptions, IngestSummary};
use hspq::sim::{Fault, FaultRates, Partnership, Simulator};

fn options(sim: &Simulator, data: &Path, api_key: &str, sessions: usize) -> IngestOptions {
    ingest_options(sim, data, api_key, sessions)
}

async fn ingest(sim: &Simulator, data: &Path, api_key: &str) -> Result<IngestSummary, IngestError> {
    hspq::ingest::run(options(sim, data, api_key, 2)).await
}

/// `hspq ingest -q` of the MSSP key from `sim` into `data`, with `flags`; stderr piped.
fn ingest_command(
    sim: &Simulator,
    data: &Path,
    cache: &Path,
    flags: &[&str],
) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hspq"));
    cmd.args(["ingest", "-q"])
        .args(flags)
        .args(["--base-url", &sim.base_url(), "--data"])
        .arg(data)
        .env("HSPQ_ORG_KEY", ORG_KEY)
        .env("HSPQ_API_KEY", MSSP_KEY)
        .env("XDG_CACHE_HOME", cache)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mssp_key_with_customers_mirrors_every_dataset_row_for_row() {
    let sim = sim(|c| c.companies = 25).await;
    let lake = tempfile::tempdir().unwrap();
    let summary = ingest(&sim, lake.path(), MSSP_KEY).await.unwrap();
    assert_eq!(summary.report_type, "mssp");
    assert_eq!(summary.periods_fetched, 24);
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
    assert_lake_matches_world(lake.path(), sim.world(), Partnership::Mssp, true);
    // The manifest lists exactly the files on disk; nothing else is visible.
    assert_eq!(parquet_files(lake.path()), manifest_files(lake.path()));
    assert_listed_files_intact(lake.path());
    // me holds no key; no file holds a key or a token.
    let me = lake_rows(
        lake.path(),
        "me",
        &[
            "report_type",
            "api_key_prefix",
            "array_to_string(scopes, ',')",
        ],
    );
    assert_eq!(
        me,
        vec!["mssp|hsp_simmssp0|me:read,mssp-report:read,customers:read"]
    );
    let text = all_text(lake.path());
    for secret in [ORG_KEY, MSSP_KEY, "pps_"] {
        assert!(!text.contains(secret), "{secret} is in the lake");
    }
    let runs = lake_rows(
        lake.path(),
        "sync_runs",
        &["status", "error", "rows_written > 0", "requests > 0"],
    );
    assert_eq!(runs, vec!["succeeded|∅|true|true"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reseller_key_without_customers_mirrors_its_report_only() {
    let sim = sim(|c| c.companies = 20).await;
    let lake = tempfile::tempdir().unwrap();
    let key = "hsp_simresl1_dummy_report";
    let summary = ingest(&sim, lake.path(), key).await.unwrap();
    assert_eq!(
        (summary.report_type.as_str(), summary.customers_fetched),
        ("reseller", 0)
    );
    assert_lake_matches_world(lake.path(), sim.world(), Partnership::Reseller, false);
    assert!(
        !lake.path().join("billing_totals").exists(),
        "the reseller API has no totals"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reseller_key_with_customers_mirrors_customers_too() {
    let sim = sim(|c| c.companies = 15).await;
    let lake = tempfile::tempdir().unwrap();
    ingest(&sim, lake.path(), RESELLER_KEY).await.unwrap();
    assert_lake_matches_world(lake.path(), sim.world(), Partnership::Reseller, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_fetches_only_the_current_period_and_two_requests_per_customer() {
    let sim = sim(|c| c.companies = 30).await;
    let lake = tempfile::tempdir().unwrap();
    ingest(&sim, lake.path(), MSSP_KEY).await.unwrap();
    let files_before = manifest_files(lake.path());
    sim.clear_requests();
    let summary = ingest(&sim, lake.path(), MSSP_KEY).await.unwrap();
    let gets: Vec<String> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.uri)
        .collect();
    let customers = sim.world().customers(Partnership::Mssp).len();
    let current = &sim.world().periods(Partnership::Mssp)[0];
    let current_prefix = format!("/v1/mssp-report/{}/{}", current.year, current.label());
    let period_calls = gets
        .iter()
        .filter(|u| u.starts_with(&current_prefix))
        .count();
    // Detail, companies, usage (one page each at limit=1000) and the totals.
    assert_eq!(period_calls, 4, "{gets:#?}");
    assert_eq!(
        gets.iter().filter(|u| u.contains("/engagement?")).count(),
        customers
    );
    assert_eq!(
        gets.iter().filter(|u| u.contains("/churn-risk?")).count(),
        customers
    );
    // Plus /me, the period list and the customer list: nothing else.
    assert_eq!(gets.len(), 4 + 2 * customers + 3, "{gets:#?}");
    assert_eq!(summary.periods_fetched, 1);
    // Engagement was asked from the last `to` minus the lookback.
    let last = sim.world().last_customer_day();
    let from = last - Days::new(7);
    assert!(
        gets.iter()
            .any(|u| u.ends_with(&format!("engagement?from={from}&to={last}"))),
        "{gets:#?}"
    );
    // Same data as before, one version of each row.
    assert_lake_matches_world(lake.path(), sim.world(), Partnership::Mssp, true);
    let files_after = manifest_files(lake.path());
    assert!(
        files_after.iter().any(|f| !files_before.contains(f)),
        "re-fetched partitions were rewritten"
    );
    assert_eq!(parquet_files(lake.path()), files_after);
    let runs = lake_rows(lake.path(), "sync_runs", &["status"]);
    assert_eq!(runs, vec!["succeeded", "succeeded"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_faults_at_ten_percent_the_lake_holds_the_same_rows() {
    // Which requests draw a fault depends on the order the two sessions' requests arrive in:
    // about 150 requests, of which about ten are retried (5xx, dropped, revoked: half the kinds),
    // so that fewer than 3 means a broken fault injection, not chance (p < 0.003). It was 5 of
    // 133 requests once, below the old bound of 6.
    let sim = sim(|c| {
        c.companies = 40;
        c.faults = FaultRates::uniform(0.1);
        c.faults.slow_by = std::time::Duration::from_millis(20);
    })
    .await;
    let lake = tempfile::tempdir().unwrap();
    let summary = ingest(&sim, lake.path(), MSSP_KEY).await.unwrap();
    assert!(
        summary.retries >= 3,
        "faults were injected and retried: {summary:?}"
    );
    assert_lake_matches_world(lake.path(), sim.world(), Partnership::Mssp, true);
    assert_eq!(sim.active_sessions(), 0, "every session was invalidated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_of_an_unexpected_type_fails_the_run_naming_endpoint_and_field_and_keeps_the_lake()
{
    let sim = sim(|c| c.companies = 10).await;
    let lake = tempfile::tempdir().unwrap();
    ingest(&sim, lake.path(), MSSP_KEY).await.unwrap();
    let before = latest_manifest(lake.path()).unwrap();
    let current = &sim.world().periods(Partnership::Mssp)[0];
    let path = format!("/v1/mssp-report/{}/{}/usage", current.year, current.label());
    sim.inject_at(&path, Fault::WrongType, 1);
    let err = ingest(&sim, lake.path(), MSSP_KEY).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&path) && text.contains("billing_value"),
        "{text}"
    );
    let manifest_after = latest_manifest(lake.path()).unwrap();
    // The data files are exactly those before (only the failed run's own sync_runs row is new).
    let data = |m: &serde_json::Value| -> BTreeSet<String> {
        m["files"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| !k.starts_with("sync_runs/"))
            .cloned()
            .collect()
    };
    assert_eq!(data(&before), data(&manifest_after));
    assert_eq!(parquet_files(lake.path()), manifest_files(lake.path()));
    let runs = lake_rows(lake.path(), "sync_runs", &["status"]);
    assert_eq!(runs, vec!["failed", "succeeded"]);
    assert_lake_matches_world(lake.path(), sim.world(), Partnership::Mssp, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ingest_on_the_same_lake_is_refused_while_the_first_holds_the_lock() {
    let sim = sim(|c| c.companies = 5).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = hspq::lake::Lake::open(&dir.path().into()).unwrap();
    let held = hspq::lake::LakeWriter::acquire(&lake, "other-run", Default::default())
        .await
        .unwrap();
    let err = ingest(&sim, dir.path(), MSSP_KEY).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("another hspq run") && text.contains("other-run"),
        "{text}"
    );
    // Refused before it opened any of the API's sessions (the holder may hold them all, and
    // the refusal would then be about those, not naming it).
    assert_eq!(sim.sessions_created(), 0);
    held.release(hspq::lake::log::Ending::Finished)
        .await
        .unwrap();
    ingest(&sim, dir.path(), MSSP_KEY).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_left_by_a_dead_process_is_taken_over() {
    let sim = sim(|c| c.companies = 5).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("_hspq/log")).unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let entry = serde_json::json!({
        "version": 1,
        "kind": "acquire",
        "run_id": "dead-run",
        "nonce": "0",
        "written_at": "2026-01-01T00:00:00Z",
        "lease": {
            "run_id": "dead-run",
            "host": std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim(),
            "owner": { "pid": pid, "started": 1 },
            "acquired_at": "2026-01-01T00:00:00Z",
            "expires_at": "2099-01-01T00:00:00Z"
        },
        "manifest": { "version": 1, "files": {}, "state": { "periods": {}, "customers": {} } }
    });
    std::fs::write(
        dir.path().join("_hspq/log/00000000000000000001.json"),
        entry.to_string(),
    )
    .unwrap();
    ingest(&sim, dir.path(), MSSP_KEY).await.unwrap();
    assert!(lake_is_free(dir.path()), "released after the run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_that_is_not_found_is_skipped_with_a_warning() {
    let sim = sim(|c| c.companies = 8).await;
    let lake = tempfile::tempdir().unwrap();
    let first = sim.world().customers(Partnership::Mssp)[0].id.clone();
    sim.inject_at(
        &format!("/v1/customers/{first}/engagement"),
        Fault::Status(404),
        1,
    );
    let summary = ingest(&sim, lake.path(), MSSP_KEY).await.unwrap();
    assert_eq!(summary.warnings.len(), 1);
    assert!(
        summary.warnings[0].contains(&first),
        "{:?}",
        summary.warnings
    );
    let warnings = lake_rows(
        lake.path(),
        "sync_runs",
        &["array_to_string(warnings, ';')"],
    );
    assert!(warnings[0].contains(&first));
    let ids = lake_rows(lake.path(), "engagement", &["security_center_id"]);
    assert!(!ids.is_empty() && !ids.contains(&first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_prints_the_plan_and_writes_nothing() {
    let sim = sim(|c| c.companies = 12).await;
    let lake = tempfile::tempdir().unwrap();
    let mut opts = options(&sim, lake.path(), MSSP_KEY, 1);
    opts.dry_run = true;
    opts.client.rate = 1.0;
    let summary = hspq::ingest::run(opts).await.unwrap();
    let plan = summary.plan.unwrap();
    assert!(
        plan.contains("period 2026-03") && plan.contains("engagement and churn risk"),
        "{plan}"
    );
    assert!(plan.contains("requests:"), "{plan}");
    assert!(!lake.path().join("_hspq").exists());
}

/// Every Parquet file a reader can see is complete (its footer parses).
fn assert_all_files_complete(dir: &Path) {
    for path in walk(dir) {
        let name = path.display().to_string();
        if name.contains("/_hspq/") || !name.ends_with(".parquet") {
            continue;
        }
        let file = std::fs::File::open(&path).unwrap();
        parquet::file::reader::SerializedFileReader::new(file)
            .unwrap_or_else(|e| panic!("{name} is not a complete Parquet file: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_runs_resume_to_the_same_lake_without_refetching_finished_periods() {
    let sim = sim(|c| {
        c.companies = 20;
        c.rate = 20.0;
    })
    .await;
    let lake = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let spawn = || {
        ingest_command(
            &sim,
            lake.path(),
            cache.path(),
            &["--rate", "40", "--sessions", "1"],
        )
        .spawn()
        .unwrap()
    };
    // Kill at points spread over the run: during the periods, between commits, in the customers.
    let mut committed_before_last_kill = BTreeSet::new();
    for delay_ms in [700u64, 1300, 2100, 2900] {
        let mut child = spawn();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the kill at {delay_ms} ms"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert_all_files_complete(lake.path());
        if let Some(entry) = latest_entry(lake.path()) {
            committed_before_last_kill = sync_state(lake.path(), &entry)["state"]["periods"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(_, v)| v["is_partial"] == false)
                .map(|(k, _)| k.clone())
                .collect();
        }
    }
    assert!(
        !committed_before_last_kill.is_empty(),
        "some periods were committed before the kills"
    );
    sim.clear_requests();
    let out = spawn().wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Closed periods committed by the killed runs were not fetched again.
    for key in &committed_before_last_kill {
        let (_, y, p) = (
            key.split('/').next(),
            key.split('/').nth(1).unwrap(),
            key.split('/').nth(2).unwrap(),
        );
        let prefix = format!("/v1/mssp-report/{y}/{p}");
        assert!(
            !sim.requests().iter().any(|r| r.uri.starts_with(&prefix)),
            "{prefix} fetched again"
        );
    }
    assert_lake_matches_world(lake.path(), sim.world(), Partnership::Mssp, true);
    assert_eq!(parquet_files(lake.path()), manifest_files(lake.path()));
    assert!(lake_is_free(lake.path()));
    let statuses = lake_rows(lake.path(), "sync_runs", &["status"]);
    assert_eq!(
        statuses.iter().filter(|s| *s == "succeeded").count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| s == "succeeded" || s == "interrupted"),
        "{statuses:?}"
    );
    // The killed runs' sessions were invalidated by the later runs.
    assert_eq!(sim.active_sessions(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refetched_range_replaces_every_row_in_it_and_keeps_the_rest() {
    let sim = sim(|c| c.companies = 10).await;
    let lake = tempfile::tempdir().unwrap();
    ingest(&sim, lake.path(), MSSP_KEY).await.unwrap();
    let id = sim.world().customers(Partnership::Mssp)[0].id.clone();
    let rows_of = |ds: &str| -> Vec<String> {
        lake_rows(
            lake.path(),
            ds,
            &["security_center_id", "cast(date as varchar)"],
        )
        .into_iter()
        .filter(|r| r.starts_with(&format!("{id}|")))
        .map(|r| r.split('|').nth(1).unwrap().to_string())
        .collect()
    };
    let before = rows_of("engagement");
    let last = sim.world().last_customer_day();
    let from = (last - Days::new(7)).to_string();
    assert!(
        before.iter().any(|d| *d >= from),
        "the customer had rows in the lookback"
    );
    // The API now says nothing happened in the re-fetched range for this customer.
    sim.inject_at(
        &format!("/v1/customers/{id}/engagement"),
        Fault::EmptyLists,
        1,
    );
    sim.inject_at(
        &format!("/v1/customers/{id}/churn-risk"),
        Fault::EmptyLists,
        1,
    );
    ingest(&sim, lake.path(), MSSP_KEY).await.unwrap();
    let after = rows_of("engagement");
    let kept: Vec<&String> = before.iter().filter(|d| **d < from).collect();
    assert_eq!(
        after.iter().collect::<Vec<_>>(),
        kept,
        "rows in the range vanished, the rest stayed"
    );
    assert!(rows_of("churn").iter().all(|d| *d < from));
    // Other customers are untouched.
    let others = lake_rows(lake.path(), "engagement", &["security_center_id"]);
    assert!(others.iter().any(|r| *r != id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_sync_closes_the_old_current_period_and_opens_the_new_one() {
    let lake = tempfile::tempdir().unwrap();
    let early = sim(|c| c.companies = 10).await;
    ingest(&early, lake.path(), MSSP_KEY).await.unwrap();
    drop(early);
    // Sixteen days later the 2026/03 period (26 Feb - 25 Mar) has closed and 2026/04 is current.
    let later = sim(|c| {
        c.companies = 10;
        c.today = today() + Days::new(16);
    })
    .await;
    let summary = ingest(&later, lake.path(), MSSP_KEY).await.unwrap();
    assert_eq!(
        summary.periods_fetched, 2,
        "the old current period and the new one"
    );
    let periods = lake_rows(
        lake.path(),
        "periods",
        &["year", "period", "period_to", "is_current", "is_partial"],
    );
    assert_eq!(
        periods.len(),
        25,
        "the period that left the API's list stays in the lake"
    );
    assert!(
        periods.contains(&"2026|03|2026-03-25|false|false".to_string()),
        "{periods:?}"
    );
    assert!(
        periods.contains(&"2026|04|2026-03-26|true|true".to_string()),
        "{periods:?}"
    );
    let w = later.world();
    let march = w.period(Partnership::Mssp, 2026, 3).unwrap();
    let want: Vec<String> = w
        .eligible(Partnership::Mssp, &march)
        .iter()
        .flat_map(|c| {
            w.daily(c, &march, None)
                .into_iter()
                .map(move |d| format!("{}|{}|{}|{}", c.id, d.product, d.date, d.usage_value))
        })
        .collect();
    let got: Vec<String> = lake_rows(
        lake.path(),
        "daily_usage",
        &[
            "year",
            "period",
            "security_center_id",
            "product",
            "date",
            "usage_value",
        ],
    )
    .into_iter()
    .filter_map(|r| r.strip_prefix("2026|03|").map(str::to_string))
    .collect();
    assert_eq!(
        got,
        sorted(want),
        "2026/03 holds the whole closed period once"
    );
    let last = lake_rows(lake.path(), "engagement", &["max(date)"]);
    assert_eq!(last, vec![w.last_customer_day().to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_a_sync_with_status_130_its_sessions_invalidated_and_the_next_run_completes() {
    let sim = sim(|c| c.companies = 20).await;
    let lake = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let ingest = || {
        ingest_command(
            &sim,
            lake.path(),
            cache.path(),
            &["--sessions", "2", "--rate", "5"],
        )
    };
    let run = ingest().spawn().unwrap();
    // Well into the sync: both sessions open and periods coming in.
    wait_for_requests(&sim, 20);
    signal(run.id(), "-INT");
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(sim.active_sessions(), 0, "every session was invalidated");
    // What it committed is whole, and the next run takes the lake and finishes the sync.
    assert_listed_files_intact(lake.path());
    let log = |dir: &Path| {
        String::from_utf8(succeeded(hspq_on(dir, &["log", "--format", "csv"]))).unwrap()
    };
    // `hspq log` says the run was interrupted, and no time reads its half-done lake as a
    // finished sync's.
    let stopped = log(lake.path());
    assert!(
        stopped.lines().last().unwrap().contains(",interrupted,"),
        "{stopped}"
    );
    let now = chrono::Utc::now().to_rfc3339();
    let out = hspq_on(lake.path(), &["sql", "select 1", "--as-of", &now]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no sync had finished by"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = ingest().output().unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_lake_matches_world(lake.path(), sim.world(), Partnership::Mssp, true);
    let finished = log(lake.path());
    assert!(
        finished.lines().last().unwrap().contains(",finished,"),
        "{finished}"
    );
    let now = chrono::Utc::now().to_rfc3339();
    succeeded(hspq_on(lake.path(), &["sql", "select 1", "--as-of", &now]));
}

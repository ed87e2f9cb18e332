//! The churn score's leakage-safe backtest on simulated partners (the churn issue's goal:
//! pooled top-decile lift ≥ 3 and AUC ≥ 0.7 for the default score), printed as figures.
//!
//! For each seed: the simulator in process (rate limit off) with 2,000 companies per
//! partnership, one first sync of the MSSP key into a fresh lake by `hspq::ingest`, then
//! `hspq query churn_backtest -p report_type=mssp` through the binary. A first sync fetches
//! engagement only for today's customers, so every past cut-off is scored from usage and billing
//! alone (the `components` column says so): the figures are what a partner gets on day one.
//! Pooled over the seeds: lift from the summed counts, AUC weighted by each seed's pairs.
//!
//! With `HSPQ_BENCH_SYNCS=N` (default 1) the lake is instead synced N times, a month apart, the
//! last on today, as a partner syncing regularly would: cut-offs after the first sync then use
//! the engagement those syncs fetched.
//!
//! `cargo bench --bench churn`; `HSPQ_BENCH_COMPANIES=N` and `HSPQ_BENCH_SEEDS=1,2,3` change
//! the world.

use std::process::Command;

const ORG: &str = "hsp_org_simulator_dummy_0000";
const MSSP: &str = "hsp_simmssp0_dummy_full";

#[tokio::main]
async fn main() {
    let companies: u32 = std::env::var("HSPQ_BENCH_COMPANIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let seeds: Vec<u64> = std::env::var("HSPQ_BENCH_SEEDS")
        .unwrap_or_else(|_| "1,2,3".into())
        .split(',')
        .map(|s| s.trim().parse().expect("seeds are numbers"))
        .collect();
    let syncs: u64 = std::env::var("HSPQ_BENCH_SYNCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
    println!("churn backtest: {companies} MSSP companies, seeds {seeds:?}, {syncs} sync(s) a month apart, horizon 60 days, top 10 %");
    println!(
        "{:<6} {:<20} {:>7} {:>7} {:>7} {:>9} {:>7} {:>9} {:>7} {:>6}  components",
        "seed",
        "model",
        "cutoffs",
        "scored",
        "events",
        "base_rate",
        "auc",
        "precision",
        "recall",
        "lift"
    );
    // (scored, events, flagged, flagged leavers, pairs, AUC x pairs) per model, over the seeds.
    let mut pooled: std::collections::BTreeMap<String, [f64; 6]> = Default::default();
    let mut fits: Vec<(u64, String)> = Vec::new();
    for seed in &seeds {
        let dir = tempfile::tempdir().unwrap();
        for back in (0..syncs).rev() {
            let day = today - chrono::Months::new(back as u32);
            sync(&dir, *seed, companies, day).await;
        }
        let out = Command::new(env!("CARGO_BIN_EXE_hspq"))
            .args([
                "query",
                "churn_backtest",
                "-p",
                "report_type=mssp",
                "--format",
                "json",
                "--data",
            ])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        // What fitting the weights on this lake gives, measured out of time by `churn fit`.
        let fit = Command::new(env!("CARGO_BIN_EXE_hspq"))
            .args(["churn", "fit", "--dry-run", "--format", "csv", "--data"])
            .arg(dir.path())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&fit.stderr);
        for line in said.lines().filter(|l| l.contains("leavers at")) {
            fits.push((*seed, line.to_string()));
        }
        for r in &rows {
            let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
            let model = r["model"].as_str().unwrap_or("?").to_string();
            println!(
                "{:<6} {:<20} {:>7} {:>7} {:>7} {:>9.4} {:>7.4} {:>9.4} {:>7.4} {:>6.2}  {}",
                seed,
                model,
                f("cutoffs"),
                f("scored"),
                f("events"),
                f("base_rate"),
                f("auc"),
                f("precision_at_k"),
                f("recall_at_k"),
                f("lift"),
                r["components"].as_str().unwrap_or("")
            );
            let (scored, events) = (f("scored"), f("events"));
            let hits = f("recall_at_k") * events;
            let flagged = hits / f("precision_at_k");
            let pairs = events * (scored - events);
            let p = pooled.entry(model).or_default();
            for (slot, v) in
                p.iter_mut()
                    .zip([scored, events, flagged, hits, pairs, f("auc") * pairs])
            {
                *slot += v;
            }
        }
    }
    println!("fitted weights (hspq churn fit --dry-run), out of time against the default ones:");
    for (seed, line) in &fits {
        println!("{seed:<6} {line}");
    }
    for (model, [scored, events, flagged, hits, pairs, auc_pairs]) in &pooled {
        let lift = (hits / flagged) / (events / scored);
        let auc = auc_pairs / pairs;
        let verdict = if model == "churn score" {
            format!(
                "  (goals: lift ≥ 3 {}, AUC ≥ 0.7 {})",
                if lift >= 3.0 { "met" } else { "NOT met" },
                if auc >= 0.7 { "met" } else { "NOT met" }
            )
        } else {
            String::new()
        };
        println!("pooled {model:<20} lift {lift:.2}, AUC {auc:.4}, {events} leavers among {scored} scorings{verdict}");
    }
}

/// One sync of the MSSP key of the world of `seed` on the simulator's `day` into `dir`.
async fn sync(dir: &tempfile::TempDir, seed: u64, companies: u32, day: chrono::NaiveDate) {
    let mut config = hspq::sim::SimConfig::new(day);
    config.seed = seed;
    config.companies = companies;
    config.rate = 0.0;
    let sim = hspq::sim::Simulator::start_local(config)
        .await
        .expect("simulator starts");
    let mut client = hspq::api::ClientConfig::new(sim.base_url().parse().unwrap());
    client.sessions = 5;
    client.rate = 0.0;
    client.token_cache = None;
    hspq::ingest::run(hspq::ingest::IngestOptions {
        data: dir.path().into(),
        client,
        creds: hspq::api::Credentials::new(ORG, MSSP).unwrap(),
        windows: hspq::ingest::plan::Windows {
            history_months: 12,
            lookback_days: 7,
            full: false,
        },
        dry_run: false,
        quiet: true,
        lake: Default::default(),
    })
    .await
    .expect("the sync succeeds");
}

//! The churn score's leakage-safe backtest on simulated partners of several worlds (the churn
//! issue's goals), printed as figures.
//!
//! A world is the simulator's [`Mechanics`] (how usage moves over time and how leavers show it)
//! and its share of pausing companies: `fading` (the simulator's own), `sudden` (no leaver shows
//! a sign), `seasonal`, `dropping` (leavers give up products one by one), `suspensions` (fading,
//! a third of the companies pausing once) and, held out from every choice made for the default
//! score and reported apart, `growing`. For each world and seed: the simulator in process (rate
//! limit off) with 2,000 companies per partnership, one first sync of the MSSP key into a fresh
//! lake by `hspq::ingest`, then `hspq query churn_backtest -p report_type=mssp` through the
//! binary. A first sync fetches engagement only for today's customers, so every past cut-off is
//! scored from usage and billing alone (the `components` column says so): the figures are what a
//! partner gets on day one. Pooled over the seeds: lift from the summed counts, AUC weighted by
//! each seed's pairs. The goals: on every world the default score's AUC and lift at least the
//! naive rule's minus 0.01, above it where leavers show a sign (all but `sudden`), and AUC ≥ 0.75
//! on `fading`.
//!
//! With `HSPQ_BENCH_SYNCS=N` (default 1) the lake is instead synced N times, a month apart, the
//! last on today, as a partner syncing regularly would: cut-offs after the first sync then use
//! the engagement those syncs fetched.
//!
//! `cargo bench --bench churn`; `HSPQ_BENCH_COMPANIES=N`, `HSPQ_BENCH_SEEDS=1,2,3` and
//! `HSPQ_BENCH_WORLDS=fading,seasonal` change what runs.

use std::collections::BTreeMap;
use std::process::Command;

use hspq::sim::Mechanics;

const ORG: &str = "hsp_org_simulator_dummy_0000";
const MSSP: &str = "hsp_simmssp0_dummy_full";

/// A world of the bench: its name, mechanics and share of pausing companies.
struct World {
    name: &'static str,
    mechanics: Mechanics,
    pauses: f64,
    /// Kept out of every choice made for the default score: reported apart.
    held_out: bool,
}

const WORLDS: [World; 6] = [
    World {
        name: "fading",
        mechanics: Mechanics::Fading,
        pauses: 0.0,
        held_out: false,
    },
    World {
        name: "sudden",
        mechanics: Mechanics::Sudden,
        pauses: 0.0,
        held_out: false,
    },
    World {
        name: "seasonal",
        mechanics: Mechanics::Seasonal,
        pauses: 0.0,
        held_out: false,
    },
    World {
        name: "dropping",
        mechanics: Mechanics::Dropping,
        pauses: 0.0,
        held_out: false,
    },
    World {
        name: "suspensions",
        mechanics: Mechanics::Fading,
        pauses: 0.33,
        held_out: false,
    },
    World {
        name: "growing",
        mechanics: Mechanics::Growing,
        pauses: 0.0,
        held_out: true,
    },
];

/// Summed over seeds: scorings, leavers, flagged, flagged leavers, pairs, AUC × pairs.
type Pooled = [f64; 6];

/// A world's figures pooled by model, and what fitting said, per seed.
type Outcome = (BTreeMap<String, Pooled>, Vec<(u64, String)>);

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
    let wanted: Option<Vec<String>> = std::env::var("HSPQ_BENCH_WORLDS")
        .ok()
        .map(|w| w.split(',').map(|s| s.trim().to_string()).collect());
    let worlds: Vec<&World> = WORLDS
        .iter()
        .filter(|w| {
            wanted
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| n == w.name))
        })
        .collect();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
    println!("churn backtest: {companies} MSSP companies, seeds {seeds:?}, {syncs} sync(s) a month apart, horizon 60 days, top 10 %");
    let mut summary: Vec<(&World, Outcome)> = Vec::new();
    for world in worlds {
        println!(
            "\nworld {}{}",
            world.name,
            if world.held_out { " (held out)" } else { "" }
        );
        summary.push((
            world,
            backtest(world, companies, &seeds, syncs, today).await,
        ));
    }
    println!("\npooled over the seeds; goals: churn score AUC and lift ≥ the naive rule's − 0.01 on every world, above it where leavers show a sign, AUC ≥ 0.75 on fading");
    println!(
        "{:<12} {:<12} {:>7} {:>7} {:>9}   {:>7} {:>7}   verdict",
        "world", "", "lift", "AUC", "leavers", "naive", "naive"
    );
    for held_out in [false, true] {
        for (world, (pooled, _)) in summary.iter().filter(|(w, _)| w.held_out == held_out) {
            let figures = |model: &str| {
                pooled
                    .get(model)
                    .map(|[scored, events, flagged, hits, pairs, auc_pairs]| {
                        (
                            (hits / flagged) / (events / scored),
                            auc_pairs / pairs,
                            *events,
                        )
                    })
            };
            let (Some((lift, auc, events)), Some((naive_lift, naive_auc, _))) =
                (figures("churn score"), figures("naive rule"))
            else {
                continue;
            };
            let signs = world.mechanics != Mechanics::Sudden;
            let mut verdict = Vec::new();
            if auc < naive_auc - 0.01 || lift < naive_lift - 0.01 {
                verdict.push("below the naive rule".to_string());
            } else if signs && (auc <= naive_auc || lift <= naive_lift) {
                verdict.push("not above the naive rule".to_string());
            }
            if world.name == "fading" && auc < 0.75 {
                verdict.push("AUC < 0.75".to_string());
            }
            println!(
                "{:<12} {:<12} {lift:>7.2} {auc:>7.4} {events:>9}   {naive_lift:>7.2} {naive_auc:>7.4}   {}",
                world.name,
                if world.held_out { "(held out)" } else { "" },
                if verdict.is_empty() { "met".to_string() } else { format!("NOT met: {}", verdict.join(", ")) }
            );
        }
    }
    println!("\nfitted weights (hspq churn fit --dry-run), out of time against the default ones:");
    for (world, (_, fits)) in &summary {
        for (seed, line) in fits {
            println!("{:<12} {seed:<6} {line}", world.name);
        }
    }
}

/// The backtest of `world` for each seed: rows printed, pooled by model; and what fitting said.
async fn backtest(
    world: &World,
    companies: u32,
    seeds: &[u64],
    syncs: u64,
    today: chrono::NaiveDate,
) -> Outcome {
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
    let mut pooled: BTreeMap<String, Pooled> = BTreeMap::new();
    let mut fits: Vec<(u64, String)> = Vec::new();
    for seed in seeds {
        let dir = tempfile::tempdir().unwrap();
        for back in (0..syncs).rev() {
            let day = today - chrono::Months::new(back as u32);
            sync(&dir, world, *seed, companies, day).await;
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
    (pooled, fits)
}

/// One sync of the MSSP key of `world` with `seed` on the simulator's `day` into `dir`.
async fn sync(
    dir: &tempfile::TempDir,
    world: &World,
    seed: u64,
    companies: u32,
    day: chrono::NaiveDate,
) {
    let mut config = hspq::sim::SimConfig::new(day);
    config.seed = seed;
    config.mechanics = world.mechanics;
    config.pauses = world.pauses;
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

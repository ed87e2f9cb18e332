//! How close the client gets to the API's bound of S·R requests per second, against the
//! simulator at its default strict limit of 1 request/s per session.
//!
//! For 1 and 4 sessions it sends K requests as fast as the pacer allows and reports
//! - the achieved rate from the simulator's own arrival times (per session: intervals between
//!   the first and last arrival), as a fraction of S·R; goal ≥ 0.97;
//! - wall time against the bound K/(S·R);
//! - 429s seen (goal: 0 without injected faults).
//!
//! `cargo bench --bench api_rate`; `HSPQ_BENCH_PER_SESSION=N` sets requests per session
//! (default 30).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hspq::api::{models::Me, Client, ClientConfig, Credentials};
use hspq::sim::{SimConfig, Simulator};

// Threads to spare, as the binary has: the simulator answering in-process must not delay
// the arrival of the requests it times.
#[tokio::main(worker_threads = 8)]
async fn main() {
    let per_session: usize = std::env::var("HSPQ_BENCH_PER_SESSION")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    println!("api_rate: simulator at 1 request/s per session, {per_session} requests per session");
    println!(
        "sessions  requests  wall_s  bound_s  wall/bound  achieved_req_s  fraction_of_bound  429s"
    );
    for sessions in [1usize, 4] {
        run(sessions, per_session).await;
    }
}

async fn run(sessions: usize, per_session: usize) {
    let today = chrono::NaiveDate::from_ymd_opt(2026, 3, 12).unwrap();
    let sim = Simulator::start_local(SimConfig::new(today)).await.unwrap();
    let mut config = ClientConfig::new(sim.base_url().parse().unwrap());
    config.sessions = sessions;
    config.rate = 1.0;
    let keys = sim.keys();
    let creds = Credentials::new(&keys.organization_key, &keys.api_keys[0].api_key).unwrap();
    let client = Client::connect(config, creds).await.unwrap();
    sim.clear_requests();
    let total = sessions * per_session;
    let started = Instant::now();
    let tasks: Vec<_> = (0..total)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.get::<Me>("me").await.map(|_| ()) })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let wall = started.elapsed();
    let stats = client.stats();
    client.close().await;

    let mut arrivals: BTreeMap<u64, Vec<tokio::time::Instant>> = BTreeMap::new();
    let mut rejected = 0;
    for r in sim.requests() {
        if r.method == "GET" {
            if r.status == 429 {
                rejected += 1;
            }
            arrivals.entry(r.session.unwrap()).or_default().push(r.at);
        }
    }
    let achieved: f64 = arrivals
        .values()
        .filter(|a| a.len() > 1)
        .map(|a| (a.len() - 1) as f64 / (*a.last().unwrap() - a[0]).as_secs_f64())
        .sum();
    let bound = Duration::from_secs_f64(total as f64 / sessions as f64);
    println!(
        "{sessions:>8}  {total:>8}  {:>6.2}  {:>7.2}  {:>10.3}  {achieved:>14.3}  {:>17.3}  {}",
        wall.as_secs_f64(),
        bound.as_secs_f64(),
        wall.as_secs_f64() / bound.as_secs_f64(),
        achieved / sessions as f64,
        stats.rate_limited.max(rejected),
    );
}

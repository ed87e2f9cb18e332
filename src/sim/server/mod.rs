//! The simulator's HTTP surface: every endpoint of the vendor's "Scope requirements summary",
//! with the documented bodies, status codes, rate limit, session rules and injected faults.
//!
//! Each session-bound handler first takes a [`gate::Gated`]: the request passed [`State::gate`]
//! for the need its route declares, which authenticates, checks the origin lock, draws faults, applies the rate limit and checks the scope, in that order, so
//! that every accepted request (whatever its outcome) counts against the session's pace.
//!
//! Where things live: the shared [`State`], the routes and the request log here; the gate
//! (sessions, origin, faults, pacing, scopes) and the error format in [`gate`]; the handlers by
//! endpoint family in [`sessions`], [`reports`] and [`customers`].

mod customers;
mod gate;
mod reports;
mod sessions;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use axum::extract::{Query, Request, State as AxState};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;
use tokio::time::Instant;

use super::world::{Partnership, World};
use super::{FaultQueue, RequestRecord, SimConfig};

use customers::{churn_risk, customer, customers, engagement};
pub(crate) use gate::ApiError;
use gate::Need;
use reports::{billing, companies, company_usage, period_detail, periods, usage};
use sessions::{create_session, delete_session, me, validate_session};

type Shared = std::sync::Arc<State>;
type Params = Query<HashMap<String, String>>;

pub(crate) struct State {
    pub(crate) config: SimConfig,
    pub(crate) world: World,
    sessions: Mutex<Sessions>,
    pub(crate) scripted: FaultQueue,
    pub(crate) log: Mutex<Vec<RequestRecord>>,
    /// When each request arrived, and its path (the log has a request only once answered).
    pub(crate) arrivals: Mutex<Vec<(Instant, String)>>,
    rng: Mutex<StdRng>,
}

#[derive(Default)]
struct Sessions {
    by_token: HashMap<String, SessionEntry>,
    created: u64,
}

struct SessionEntry {
    serial: u64,
    key: usize,
    origin: IpAddr,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    expires: Instant,
    last_accepted: Option<Instant>,
}

impl SessionEntry {
    fn expired(&self, now: Instant) -> bool {
        now >= self.expires
    }
}

/// The session serial a handler answered for; read by the request log.
#[derive(Clone, Copy)]
struct Serial(u64);

impl State {
    pub(crate) fn new(config: SimConfig) -> State {
        let world = World::new(config.seed, config.companies, config.periods, config.today)
            .with_mechanics(config.mechanics)
            .with_pauses(config.pauses);
        let rng = StdRng::seed_from_u64(config.fault_seed);
        State {
            config,
            world,
            sessions: Mutex::new(Sessions::default()),
            scripted: Mutex::new(Default::default()),
            log: Mutex::new(Vec::new()),
            arrivals: Mutex::new(Vec::new()),
            rng: Mutex::new(rng),
        }
    }

    pub(crate) fn active_sessions(&self) -> usize {
        let now = Instant::now();
        let s = self.sessions.lock().expect("sessions");
        s.by_token.values().filter(|e| !e.expired(now)).count()
    }

    pub(crate) fn sessions_created(&self) -> u64 {
        self.sessions.lock().expect("sessions").created
    }

    pub(crate) fn expire_sessions(&self) {
        let now = Instant::now();
        let mut s = self.sessions.lock().expect("sessions");
        for e in s.by_token.values_mut() {
            e.expires = now;
            e.expires_at = Utc::now();
        }
    }
}

pub(crate) fn router(state: Shared) -> Router {
    Router::new()
        .route(
            "/v1/auth/session",
            post(create_session).delete(delete_session),
        )
        .route("/v1/auth/session/validate", post(validate_session))
        .route("/v1/me", get(me).layer(Extension(Need::Me)))
        .nest("/v1/mssp-report", report_routes(Partnership::Mssp))
        .nest("/v1/reseller-report", report_routes(Partnership::Reseller))
        .route(
            "/v1/customers",
            get(customers).layer(Extension(Need::Customers)),
        )
        .route(
            "/v1/customers/{scid}",
            get(customer).layer(Extension(Need::Customers)),
        )
        .route(
            "/v1/customers/{scid}/engagement",
            get(engagement).layer(Extension(Need::Customers)),
        )
        .route(
            "/v1/customers/{scid}/churn-risk",
            get(churn_risk).layer(Extension(Need::Customers)),
        )
        .fallback(|| async { ApiError::new(404, "Not found.") })
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

fn report_routes(p: Partnership) -> Router<Shared> {
    let mut r = Router::new()
        .route("/", get(periods))
        .route("/{year}/{period}", get(period_detail))
        .route("/{year}/{period}/companies", get(companies))
        .route("/{year}/{period}/companies/{id}/usage", get(company_usage))
        .route("/{year}/{period}/usage", get(usage));
    if p == Partnership::Mssp {
        r = r.route("/{year}/{period}/usage/billing", get(billing));
    }
    // The gate checks the report's scope; the handlers answer for this partnership.
    r.layer(Extension(Need::Report(p))).layer(Extension(p))
}

tokio::task_local! {
    /// The path being answered, for path-targeted scripted faults.
    static REQUEST_PATH: String;
    /// When the request arrived: the rate limit counts arrivals, not the moment a busy
    /// handler gets to look at them.
    static REQUEST_ARRIVAL: Instant;
}

async fn record(AxState(state): AxState<Shared>, req: Request, next: Next) -> Response {
    let at = Instant::now();
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let path = req.uri().path().to_string();
    state
        .arrivals
        .lock()
        .expect("arrivals")
        .push((at, path.clone()));
    let resp = REQUEST_ARRIVAL
        .scope(at, REQUEST_PATH.scope(path, next.run(req)))
        .await;
    let session = resp.extensions().get::<Serial>().map(|s| s.0);
    state.log.lock().expect("request log").push(RequestRecord {
        at,
        session,
        method,
        uri,
        status: resp.status().as_u16(),
    });
    resp
}

fn merge(target: &mut Value, extra: Value) {
    if let (Value::Object(t), Value::Object(e)) = (target, extra) {
        t.extend(e);
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

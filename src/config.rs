//! Every setting of a run in one place, resolved once from flags and environment before any
//! I/O. The binary's `cli.rs` parses the command line and fills this in; the rest of hspq reads
//! it and never looks at flags, environment variables or `--data` text itself.

use crate::api::{ClientConfig, Credentials, Secret};
use crate::ingest::plan::Windows;
use crate::ingest::IngestOptions;
use crate::lake::{LakeLocation, WriterOptions};
use crate::query::print::PrintOptions;

/// The API's documented base URL.
pub const DEFAULT_BASE_URL: &str = "https://portal-api.holmsecurity.com/v1";

/// The lake `--data` names when neither it nor `HSPQ_DATA` is given.
pub const DEFAULT_DATA: &str = "./hspq-data";

/// A run's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// The lake (`--data`, `HSPQ_DATA`).
    pub lake: LakeLocation,
    /// How results are printed (`--format`, `--output`, `--max-rows`; the terminal).
    pub print: PrintOptions,
    /// How to reach the API (`--base-url`, `--sessions`, `--rate`).
    pub api: ClientConfig,
    /// What a sync fetches and how it holds the lake.
    pub sync: SyncSettings,
    /// Where and for whom `hspq serve` listens.
    pub serve: ServeSettings,
    /// What `hspq report` covers (`--report-type`, `--periods`, `--top`).
    pub report: crate::report::ReportOptions,
    /// The past version readers show (`--as-of`); `None` follows the newest.
    pub as_of: Option<crate::lake::log::AsOf>,
}

/// Where and for whom `hspq serve` listens (`--bind`, `--port`, `--user`, the password from
/// `HSPQ_SERVE_PASSWORD` or `--password-file`, `--query-timeout`, `--max-connections`,
/// `--memory-limit`, `--tls-cert` and `--tls-key`).
#[derive(Clone, Debug)]
pub struct ServeSettings {
    /// The address to listen on.
    pub bind: std::net::IpAddr,
    /// The port (0: any free one).
    pub port: u16,
    /// The one user name clients log in with.
    pub user: String,
    /// Its password; `hspq serve` refuses to start without one.
    pub password: Option<Secret>,
    /// A statement running longer is cancelled.
    pub query_timeout: std::time::Duration,
    /// Clients connected at once at most.
    pub max_connections: usize,
    /// Bytes the clients' DuckDB sessions may use together (`--memory-limit`).
    pub memory_limit: u64,
    /// `--tls-cert` and `--tls-key`, loaded; with them every client must use TLS.
    pub tls: Option<crate::serve::Tls>,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            bind: std::net::Ipv4Addr::LOCALHOST.into(),
            port: 5433,
            user: "hspq".into(),
            password: None,
            query_timeout: std::time::Duration::from_secs(300),
            max_connections: 32,
            memory_limit: 4 << 30,
            tls: None,
        }
    }
}

/// What a sync fetches and how it holds the lake.
#[derive(Clone, Debug)]
pub struct SyncSettings {
    /// History, lookback, `--full`.
    pub windows: Windows,
    /// Print the plan, write nothing.
    pub dry_run: bool,
    /// No progress bar even on a terminal.
    pub quiet: bool,
    /// `--lock-ttl`, `--retention`.
    pub lake: WriterOptions,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            windows: Windows {
                history_months: 12,
                lookback_days: 7,
                full: false,
            },
            dry_run: false,
            quiet: false,
            lake: WriterOptions::default(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            lake: LakeLocation::Local(DEFAULT_DATA.into()),
            print: PrintOptions::default(),
            api: ClientConfig::new(DEFAULT_BASE_URL.parse().expect("a valid URL")),
            sync: SyncSettings::default(),
            serve: ServeSettings::default(),
            report: crate::report::ReportOptions {
                top: 25,
                ..Default::default()
            },
            as_of: None,
        }
    }
}

impl Config {
    /// What `hspq ingest` needs to sync with the key pair `creds`.
    pub fn ingest_options(&self, creds: Credentials) -> IngestOptions {
        IngestOptions {
            data: self.lake.clone(),
            client: self.api.clone(),
            creds,
            windows: self.sync.windows,
            dry_run: self.sync.dry_run,
            quiet: self.sync.quiet,
            lake: self.sync.lake.clone(),
        }
    }
}

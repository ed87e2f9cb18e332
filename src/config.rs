//! Every setting of a run in one place, resolved once from flags and environment before any
//! I/O. The binary's `cli.rs` parses the command line and fills this in; the rest of hspq reads
//! it and never looks at flags, environment variables or `--data` text itself.
//!
//! The settings' types live here, below every module that acts on them (their behaviour lives
//! with those modules: `query::print` prints by [`PrintOptions`], `serve::tls` loads [`Tls`]),
//! so config imports nothing above the API client and the lake.

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;

use crate::api::{ClientConfig, Secret};
use crate::lake::{LakeLocation, WriterOptions};

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
    pub report: ReportOptions,
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
    pub tls: Option<Tls>,
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
            report: ReportOptions {
                top: 25,
                ..Default::default()
            },
            as_of: None,
        }
    }
}

/// How far back and how much to re-fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows {
    /// History on a customer's first sync, in months.
    pub history_months: u32,
    /// Days re-fetched before the last fetched `to`.
    pub lookback_days: u32,
    /// Ignore the state: fetch everything again.
    pub full: bool,
}

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people (the default on a terminal).
    Table,
    /// Comma-separated values with a header (the default otherwise).
    Csv,
    /// One JSON array of objects.
    Json,
    /// One JSON object per line.
    Ndjson,
    /// A Markdown table.
    Markdown,
    /// A zstd Parquet file (needs --output).
    Parquet,
}

/// How results are printed.
#[derive(Clone, Debug)]
pub struct PrintOptions {
    /// The format.
    pub format: Format,
    /// A file to write to instead of stdout.
    pub output: Option<PathBuf>,
    /// Add to the file instead of replacing it (the shell's `.output`).
    pub append: bool,
    /// Rows shown at most by the formats for people (table, markdown).
    pub max_rows: usize,
    /// The screen's width, which a table fits into.
    pub width: usize,
    /// The widest a table's column may be; longer values are cut with `…`.
    pub column_width: usize,
    /// Send a result for people taller than the screen through the pager.
    pub pager: bool,
    /// Say how long a statement took.
    pub timer: bool,
    /// Say on stderr how many rows a result had (off for listings such as `hspq status`).
    pub count: bool,
    /// How to see the rows a limited result left out, in the words of the caller's interface
    /// ("--max-rows or --format csv" on the command line, ".maxrows N or .export FILE" in the
    /// shell).
    pub more: String,
}

/// What the report covers.
#[derive(Clone, Debug, Default)]
pub struct ReportOptions {
    /// `mssp` or `reseller`; both when `None`.
    pub report_type: Option<String>,
    /// Only the latest N periods of billing; all when `None`.
    pub periods: Option<u32>,
    /// Companies in the churn list.
    pub top: usize,
}

/// A certificate and its key, checked and ready to serve.
#[derive(Clone)]
pub struct Tls {
    pub(crate) acceptor: pgwire::tokio::TlsAcceptor,
    /// The certificate as PEM, which SCRAM's channel binding hashes.
    pub(crate) cert_pem: Arc<Vec<u8>>,
}

impl Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

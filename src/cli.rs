//! The command line: clap derive only. Doc comments are the `--help` text. [`Command::config`]
//! turns the flags and environment into the one [`Config`] the rest of hspq reads.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use hspq::config::{Config, ServeSettings, SyncSettings, DEFAULT_BASE_URL, DEFAULT_DATA};
use hspq::ingest::plan::Windows;
use hspq::lake::log::AsOf;
use hspq::lake::{LakeLocation, WriterOptions};
use hspq::query::output::Format;
use hspq::query::print::{screen_width, PrintOptions};

/// Mirror the Holm Security Partner Portal API into a Parquet lake and query it offline.
#[derive(Debug, Parser)]
#[command(name = "hspq", version, about)]
pub struct Opts {
    /// More detail on stderr (-v: debug, -vv: trace). RUST_LOG overrides it.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// What to do; without one, `hspq` on a terminal opens the SQL shell.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the simulator, sync it into a fresh lake and print the bundled reports.
    Demo(DemoArgs),
    /// What the lake holds: datasets, periods, rows, bytes, last sync and its age.
    Status(StatusArgs),
    /// The lake's versions: each finished sync (and churn fit) with what it changed; what
    /// --as-of can read.
    Log(LogArgs),
    /// Serve the built-in Partner Portal API simulator on loopback.
    Simulate(SimulateArgs),
    /// Mirror every endpoint the key's scopes allow into the lake, incrementally.
    #[command(alias = "sync")]
    Ingest(IngestArgs),
    /// Run SQL against the lake's views and print the last statement's result.
    Sql(SqlArgs),
    /// The interactive SQL shell over the lake (also bare `hspq` on a terminal).
    Repl(ReplArgs),
    /// Run a bundled query (see `hspq queries`).
    Query(QueryArgs),
    /// List the bundled queries with their parameters.
    Queries,
    /// The view definitions, for plain DuckDB users.
    Views(ViewsArgs),
    /// Check the key pair: create a session, read /v1/me, invalidate the session.
    Check(ApiArgs),
    /// The churn score's weights, fitted on the lake's own history.
    #[command(subcommand)]
    Churn(ChurnCommand),
    /// Serve the lake's views, read-only, over the PostgreSQL protocol, to psql and PostgreSQL
    /// drivers.
    Serve(ServeArgs),
    /// Write one self-contained HTML file with the billing and churn picture: billing per
    /// product and period, the biggest movers, the churn list, the churn backtest, the
    /// reconciliation findings and the lake's freshness.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The address to listen on; loopback unless you mean it.
    #[arg(long, env = "HSPQ_SERVE_BIND", default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// The port (5433, beside a local PostgreSQL's 5432; 0 picks a free one).
    #[arg(long, env = "HSPQ_SERVE_PORT", default_value_t = 5433)]
    pub port: u16,
    /// The user name clients log in with.
    #[arg(long, env = "HSPQ_SERVE_USER", default_value = "hspq")]
    pub user: String,
    /// A file holding the password (its first line); HSPQ_SERVE_PASSWORD gives it instead.
    /// There is no flag for the password itself: the command line is visible to every user.
    #[arg(long, env = "HSPQ_SERVE_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// A statement running longer is cancelled: seconds, or with s, m or h.
    #[arg(long, env = "HSPQ_SERVE_QUERY_TIMEOUT", default_value = "5m", value_parser = hspq::duration::parse)]
    pub query_timeout: std::time::Duration,
    /// Clients connected at once at most; more are turned away.
    #[arg(long, env = "HSPQ_SERVE_MAX_CONNECTIONS", default_value_t = 32,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: usize,
    /// The memory the clients' queries may use together: 8GB, 512MB, or a share of this
    /// machine's memory (50%). One client alone may use all of it.
    #[arg(long, env = "HSPQ_SERVE_MEMORY_LIMIT", default_value = "50%", value_parser = parse_memory)]
    pub memory_limit: u64,
    /// Write the address once listening to this file (for scripts using --port 0).
    #[arg(long)]
    pub port_file: Option<PathBuf>,
    /// TLS: the server's certificate (chain), PEM. With it, clients must connect with TLS
    /// (sslmode=require or verify-full) and SCRAM is bound to it.
    #[arg(long, env = "HSPQ_SERVE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS: the certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "HSPQ_SERVE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl ServeArgs {
    /// The password from HSPQ_SERVE_PASSWORD or --password-file.
    fn password(&self) -> Result<Option<hspq::api::Secret>> {
        if let Some(file) = &self.password_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the password file {}", file.display()))?;
            let line = text.lines().next().unwrap_or_default().trim_end();
            if line.is_empty() {
                anyhow::bail!("the password file {} is empty", file.display());
            }
            return Ok(Some(hspq::api::Secret::new(line)));
        }
        Ok(std::env::var("HSPQ_SERVE_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
            .map(hspq::api::Secret::new))
    }
}

#[derive(Debug, Subcommand)]
pub enum ChurnCommand {
    /// Fit the churn score's weights on the lake's past leavers (a logistic regression over its
    /// components, with 30 leavers at least), print them with an out-of-time backtest next to
    /// the default weights, and store them in the lake, where churn_risk uses them.
    Fit(FitArgs),
}

#[derive(Debug, Args)]
pub struct FitArgs {
    /// A leaving counts when it falls within this many days after a cut-off; the fitted score is
    /// the chance of leaving within it.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(7..=366))]
    pub horizon_days: u32,
    /// Days of recent activity, as in churn_risk.
    #[arg(long, default_value_t = 28, value_parser = clap::value_parser!(u32).range(7..=183))]
    pub window_days: u32,
    /// The share of companies flagged at each cut-off for precision, recall and lift.
    #[arg(long, default_value_t = 0.1)]
    pub top_share: f64,
    /// Fit one report type only; the other keeps its weights.
    #[arg(long, value_parser = ["mssp", "reseller"])]
    pub report_type: Option<String>,
    /// Print the fit and its backtest; store nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Store the fitted weights even where they do not beat the default ones out of time (by
    /// default only those 0.01 of AUC better, and no worse in lift, are stored).
    #[arg(long, conflicts_with = "dry_run")]
    pub store_anyway: bool,
    /// Drop the stored weights instead: churn_risk goes back to the default weights.
    #[arg(long, conflicts_with_all = ["dry_run", "store_anyway"])]
    pub reset: bool,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub writer: WriterArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Where the lake is.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// The lake: a folder or s3://bucket/prefix.
    #[arg(long, env = "HSPQ_DATA", default_value = DEFAULT_DATA)]
    pub data: String,
}

impl DataArgs {
    fn location(&self) -> Result<LakeLocation> {
        Ok(self.data.parse()?)
    }
}

/// How results are printed.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format; default: table on a terminal, csv otherwise.
    #[arg(long, env = "HSPQ_FORMAT", value_enum)]
    pub format: Option<hspq::query::output::Format>,
    /// Write the result to this file instead of stdout (required for parquet).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Rows shown at most by the formats for people (table, markdown); csv, json, ndjson and
    /// parquet write every row.
    #[arg(long, default_value_t = 40)]
    pub max_rows: usize,
}

/// Which version of the lake a reader shows.
#[derive(Debug, Args)]
pub struct AsOfArgs {
    /// Read the lake as it was: v42 (a version `hspq log` lists), a time
    /// (2026-12-01T08:00:00Z) or a date (2026-12-01, the end of that day in Stockholm) for the
    /// state after the last sync that finished by then.
    #[arg(long, value_name = "WHEN", value_parser = parse_as_of)]
    pub as_of: Option<AsOf>,
}

fn parse_as_of(text: &str) -> Result<AsOf, hspq::lake::log::AsOfError> {
    text.parse()
}

/// `hspq repl`'s arguments.
#[derive(Debug, Args)]
pub struct ReplArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub as_of: AsOfArgs,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// SQL text (several statements allowed); `-` or nothing reads it from stdin.
    #[arg(allow_hyphen_values = true)]
    pub sql: Option<String>,
    #[command(flatten)]
    pub as_of: AsOfArgs,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub as_of: AsOfArgs,
    /// The HTML file to write; without it the report goes to stdout (when that is not a
    /// terminal).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Only this report type.
    #[arg(long, value_parser = ["mssp", "reseller"])]
    pub report_type: Option<String>,
    /// Only the latest N periods of billing.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub periods: Option<u32>,
    /// Companies in the churn list.
    #[arg(long, value_name = "N", default_value_t = 25)]
    pub top: usize,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The bundled query's name.
    pub name: String,
    /// A parameter, KEY=VALUE (repeatable).
    #[arg(long = "param", short = 'p', value_parser = hspq::query::bundled::parse_param)]
    pub params: Vec<(String, String)>,
    #[command(flatten)]
    pub as_of: AsOfArgs,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ViewsTarget {
    /// Print CREATE VIEW statements for the DuckDB CLI or Python.
    #[arg(long)]
    pub sql: bool,
    /// Write a DuckDB database file holding the views.
    #[arg(long, value_name = "FILE")]
    pub duckdb: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ViewsArgs {
    #[command(flatten)]
    pub target: ViewsTarget,
    /// Keep each key's newest row in every view: exact at any moment, even while a sync
    /// commits, but several times slower on large scans than the plain globs printed by default.
    #[arg(long)]
    pub dedup: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo lake goes (not read from HSPQ_DATA: simulated data must never land in a
    /// real lake by accident).
    #[arg(long, default_value = "./hspq-demo")]
    pub data: String,
    /// Companies per partnership in the simulated partner.
    #[arg(long, default_value_t = 300)]
    pub companies: u32,
    /// Requests per second per session the simulator allows (the real API allows 1).
    #[arg(long, default_value_t = 25.0)]
    pub rate: f64,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// `text` for people, `json` for scripts.
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,
}

/// How `hspq status` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    /// Lines and a table, for people.
    Text,
    /// One JSON object, for scripts.
    Json,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The lake: a folder or s3://bucket/prefix (AWS_* variables configure S3).
    #[arg(long, env = "HSPQ_DATA", default_value = DEFAULT_DATA)]
    pub data: String,
    #[command(flatten)]
    pub api: ApiArgs,
    /// Engagement and churn days re-fetched before the last fetched `to`.
    #[arg(long, env = "HSPQ_LOOKBACK_DAYS", default_value_t = 7)]
    pub lookback_days: u32,
    /// Months of engagement and churn history on a customer's first sync.
    #[arg(long, env = "HSPQ_HISTORY_MONTHS", default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=24))]
    pub history_months: u32,
    /// Fetch everything again, closed periods included.
    #[arg(long)]
    pub full: bool,
    /// Print which requests a sync would make and how long they take; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// No progress bar, even on a terminal.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub writer: WriterArgs,
}

/// How a run that writes the lake holds it (`hspq ingest`, `hspq churn fit`).
#[derive(Debug, Args)]
pub struct WriterArgs {
    /// How long the lake stays taken by a run that stops writing (paused, stalled) before
    /// another run may take it over: seconds, or with s, m or h.
    #[arg(long, env = "HSPQ_LOCK_TTL", default_value = "10m", value_parser = hspq::duration::parse)]
    pub lock_ttl: std::time::Duration,
    /// How old a lake file that no commit lists, and whose writer cannot be proven gone, must
    /// be before a sync deletes it: seconds, or with s, m or h.
    #[arg(long, env = "HSPQ_RETENTION", default_value = "1h", value_parser = hspq::duration::parse)]
    pub retention: std::time::Duration,
    /// How long the lake as it was after each finished sync stays readable with --as-of: files
    /// a sync replaces wait this long under _hspq/history/ (s, m, h or d; 0 keeps none). Not
    /// --history-months, which is how far back engagement is fetched.
    #[arg(long, env = "HSPQ_VERSION_RETENTION", default_value = "7d", value_parser = hspq::duration::parse_or_zero)]
    pub version_retention: std::time::Duration,
}

impl WriterArgs {
    fn options(&self) -> WriterOptions {
        WriterOptions {
            lock_ttl: self.lock_ttl,
            retention: self.retention,
            version_retention: self.version_retention,
            ..Default::default()
        }
    }
}

/// `8GB`, `512MiB`, `1.5g`, or `50%` of this machine's memory (or its cgroup's limit), in bytes.
fn parse_memory(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let wrong =
        || anyhow::anyhow!("{text:?} is not an amount of memory: use e.g. 8GB, 512MB or 50%");
    if let Some(share) = t.strip_suffix('%') {
        let share: f64 = share.trim().parse().map_err(|_| wrong())?;
        if !(share > 0.0 && share <= 100.0) {
            anyhow::bail!("{text:?}: a share of memory is above 0% and at most 100%");
        }
        let total = hspq::serve::physical_memory().ok_or_else(|| {
            anyhow::anyhow!(
                "cannot tell this machine's memory for {text:?}: give an amount, e.g. 8GB"
            )
        })?;
        return Ok((total as f64 * share / 100.0) as u64);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| wrong())?;
    let unit = unit.trim().to_ascii_lowercase();
    let scale: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(wrong()),
    };
    let bytes = number * scale;
    if !(1.0..1e18).contains(&bytes) {
        return Err(wrong());
    }
    Ok(bytes as u64)
}

/// Where and how to reach the API.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// API base URL.
    #[arg(long, env = "HSPQ_BASE_URL", default_value = DEFAULT_BASE_URL)]
    pub base_url: String,
    /// Sessions to open in parallel (1 to 5, the API's cap per organisation).
    #[arg(long, env = "HSPQ_SESSIONS", default_value_t = 1)]
    pub sessions: usize,
    /// Requests per second per session (the API allows 1).
    #[arg(long, env = "HSPQ_RATE", default_value_t = 1.0)]
    pub rate: f64,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 8719)]
    pub port: u16,
    /// Address to listen on (loopback unless you mean it).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Write the base URL to this file once listening (for scripts using --port 0).
    #[arg(long)]
    pub port_file: Option<PathBuf>,
    /// JSON with the organization key and the API keys to accept; default: the simulator's
    /// dummy keys, which it prints.
    #[arg(long)]
    pub keys_file: Option<PathBuf>,
    /// Seed of the synthetic data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Companies per partnership (MSSP and reseller).
    #[arg(long, default_value_t = 40)]
    pub companies: u32,
    /// Periods each report lists, the current one included (at most 24).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=24))]
    pub periods: u32,
    /// Requests per second per session; 0 turns the limit off.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Session lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub session_ttl: u64,
    /// Share of requests (0 to 1) that fail: 5xx, dropped connections, spurious 429s, slow
    /// answers, unknown fields, revoked sessions.
    #[arg(long, default_value_t = 0.0)]
    pub faults: f64,
    /// "Today" in Europe/Stockholm (YYYY-MM-DD); default: the real date.
    #[arg(long)]
    pub today: Option<chrono::NaiveDate>,
    /// How usage moves over time and how leavers show it (the churn score's benchmark scores
    /// every kind).
    #[arg(long, value_enum, default_value_t)]
    pub mechanics: hspq::sim::Mechanics,
    /// Share of the companies (0 to 1) that pause once for two months or so and come back.
    #[arg(long, default_value_t = 0.0)]
    pub pauses: f64,
}

impl Command {
    /// The settings this command runs with, from its flags and the environment, validated before
    /// any I/O. Settings a command has no flag for keep their defaults.
    pub fn config(&self) -> Result<Config> {
        let mut config = Config::default();
        match self {
            Command::Log(LogArgs { data, output }) => {
                config.lake = data.location()?;
                config.print = output.print_options();
                config.print.count = false;
            }
            Command::Sql(SqlArgs {
                data,
                output,
                as_of,
                ..
            })
            | Command::Query(QueryArgs {
                data,
                output,
                as_of,
                ..
            }) => {
                config.lake = data.location()?;
                config.print = output.print_options();
                config.as_of = as_of.as_of.clone();
            }
            Command::Report(args) => {
                config.lake = args.data.location()?;
                config.as_of = args.as_of.as_of.clone();
                config.report = hspq::report::ReportOptions {
                    report_type: args.report_type.clone(),
                    periods: args.periods,
                    top: args.top,
                };
            }
            Command::Repl(args) => {
                config.lake = args.data.location()?;
                config.as_of = args.as_of.as_of.clone();
                config.print = shell_print_options();
            }
            Command::Status(StatusArgs { data, .. }) | Command::Views(ViewsArgs { data, .. }) => {
                config.lake = data.location()?;
                config.print.count = false;
            }
            Command::Ingest(args) => {
                config.lake = args.data.parse()?;
                config.api = args.api.client_config()?;
                config.sync = SyncSettings {
                    windows: Windows {
                        history_months: args.history_months,
                        lookback_days: args.lookback_days,
                        full: args.full,
                    },
                    dry_run: args.dry_run,
                    quiet: args.quiet,
                    lake: args.writer.options(),
                };
            }
            Command::Check(api) => config.api = api.client_config()?,
            Command::Churn(ChurnCommand::Fit(args)) => {
                if !(args.top_share > 0.0 && args.top_share <= 1.0) {
                    anyhow::bail!(
                        "--top-share must be more than 0 and at most 1, not {}",
                        args.top_share
                    );
                }
                config.lake = args.data.location()?;
                config.print = args.output.print_options();
                config.sync.lake = args.writer.options();
            }
            Command::Demo(args) => {
                config.lake = args.data.parse()?;
                config.api.sessions = 5;
                config.api.rate = rate_or_unlimited(args.rate)?;
                config.sync.quiet = !std::io::stderr().is_terminal();
            }
            Command::Serve(args) => {
                config.lake = args.data.location()?;
                config.serve = ServeSettings {
                    bind: args.bind,
                    port: args.port,
                    user: args.user.clone(),
                    password: args.password()?,
                    query_timeout: args.query_timeout,
                    max_connections: args.max_connections,
                    memory_limit: args.memory_limit,
                    tls: match (&args.tls_cert, &args.tls_key) {
                        (Some(cert), Some(key)) => Some(hspq::serve::Tls::load(cert, key)?),
                        _ => None,
                    },
                };
                hspq::serve::memory_check(args.memory_limit)?;
                if config.serve.password.is_none() {
                    anyhow::bail!(
                        "hspq serve needs a password: set HSPQ_SERVE_PASSWORD or pass \
                         --password-file FILE"
                    );
                }
            }
            Command::Simulate(_) | Command::Queries => {}
        }
        Ok(config)
    }
}

impl OutputArgs {
    fn print_options(&self) -> PrintOptions {
        let format = self.format.unwrap_or(
            if std::io::stdout().is_terminal() && self.output.is_none() {
                Format::Table
            } else {
                Format::Csv
            },
        );
        PrintOptions {
            format,
            output: self.output.clone(),
            max_rows: self.max_rows,
            width: screen_width(),
            timer: format == Format::Table,
            ..PrintOptions::default()
        }
    }
}

/// The shell prints tables for a person at a terminal, through the pager when a result is
/// taller than the screen, and CSV for a script piped in.
fn shell_print_options() -> PrintOptions {
    let person = std::io::stdin().is_terminal();
    PrintOptions {
        format: if person { Format::Table } else { Format::Csv },
        pager: person && std::io::stdout().is_terminal(),
        more: ".maxrows N or .export FILE".into(),
        ..PrintOptions::default()
    }
}

impl ApiArgs {
    fn client_config(&self) -> Result<hspq::api::ClientConfig> {
        let url = url::Url::parse(&self.base_url).with_context(|| {
            format!(
                "--base-url {:?} is not a URL (e.g. {DEFAULT_BASE_URL})",
                self.base_url
            )
        })?;
        let mut config = hspq::api::ClientConfig::new(url);
        config.sessions = self.sessions;
        config.rate = positive_rate(self.rate)?;
        config.token_cache = hspq::api::default_token_cache();
        Ok(config)
    }
}

/// A simulator's rate limit (and the demo's pace): 0 turns it off.
pub fn rate_or_unlimited(rate: f64) -> Result<f64> {
    if !(rate >= 0.0 && rate.is_finite()) {
        anyhow::bail!("--rate must be 0 (no limit) or more, not {rate}");
    }
    Ok(rate)
}

fn positive_rate(rate: f64) -> Result<f64> {
    // Below one request a day a sync would never end (and the pause overflows a Duration).
    const SLOWEST: f64 = 1.0 / 86_400.0;
    if !(rate >= SLOWEST && rate.is_finite()) {
        anyhow::bail!(
            "--rate must be at least one request a day ({SLOWEST:.6} per second), not {rate}"
        );
    }
    Ok(rate)
}

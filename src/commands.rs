//! What each subcommand does, on top of the library.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use hspq::api::{models::Me, Client, ClientConfig, Credentials};
use hspq::sim::{FaultRates, SimConfig, SimKeys, Simulator};

use crate::cli::{ApiArgs, Command, IngestArgs, SimulateArgs};

pub async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Simulate(args) => simulate(args).await,
        Command::Ingest(args) => ingest(args).await,
        Command::Check(args) => check(args).await,
    }
}

/// Today's date where the API lives.
fn stockholm_today() -> chrono::NaiveDate {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Stockholm)
        .date_naive()
}

async fn simulate(args: SimulateArgs) -> Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.faults) {
        anyhow::bail!("--faults must be a share from 0 to 1, not {}", args.faults);
    }
    if args.rate < 0.0 || !args.rate.is_finite() {
        anyhow::bail!("--rate must be 0 (no limit) or more, not {}", args.rate);
    }
    let (keys, own_keys) = match &args.keys_file {
        Some(path) => (SimKeys::load(path).map_err(anyhow::Error::msg)?, true),
        None => (SimKeys::dummy(), false),
    };
    let mut config = SimConfig::new(args.today.unwrap_or_else(stockholm_today));
    config.seed = args.seed;
    config.companies = args.companies;
    config.periods = args.periods;
    config.rate = args.rate;
    config.session_ttl = Duration::from_secs(args.session_ttl);
    config.faults = FaultRates::uniform(args.faults);
    config.keys = keys;
    let today = config.today;
    let sim = Simulator::start(config, (args.bind, args.port).into())
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}:{} (pick another with --port, or --port 0 for a free one)",
                args.bind, args.port
            )
        })?;
    let url = sim.base_url();
    if let Some(path) = &args.port_file {
        std::fs::write(path, format!("{url}\n"))
            .with_context(|| format!("cannot write --port-file {}", path.display()))?;
    }
    println!("{url}");
    eprintln!(
        "hspq simulate: serving the Partner Portal API at {url} (today {today}, {} companies per partnership, rate {} req/s per session, faults {}); Ctrl-C stops it",
        args.companies,
        if args.rate > 0.0 { args.rate.to_string() } else { "unlimited".into() },
        args.faults
    );
    let keys = sim.keys();
    if own_keys {
        for k in &keys.api_keys {
            eprintln!(
                "  accepts key {:?} ({} report, customers:read {})",
                k.name, k.report, k.customers
            );
        }
    } else {
        // The simulator's own dummy keys are not secrets: show how to use them.
        eprintln!(
            "  export HSPQ_BASE_URL={url} HSPQ_ORG_KEY={}",
            keys.organization_key
        );
        for k in &keys.api_keys {
            eprintln!("  HSPQ_API_KEY={:<28} # {}", k.api_key, k.name);
        }
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    eprintln!("hspq simulate: stopped");
    Ok(ExitCode::SUCCESS)
}

fn client_config(args: &ApiArgs) -> Result<ClientConfig> {
    let url = url::Url::parse(&args.base_url).with_context(|| {
        format!(
            "--base-url {:?} is not a URL (e.g. https://portal-api.holmsecurity.com/v1)",
            args.base_url
        )
    })?;
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        anyhow::bail!(
            "--rate must be more than 0 requests per second, not {}",
            args.rate
        );
    }
    let mut config = ClientConfig::new(url);
    config.sessions = args.sessions;
    config.rate = args.rate;
    config.token_cache = hspq::api::default_token_cache();
    Ok(config)
}

async fn check(args: ApiArgs) -> Result<ExitCode> {
    let creds = Credentials::from_env().map_err(anyhow::Error::msg)?;
    let config = client_config(&args)?;
    let client = Client::connect(config, creds).await?;
    let me = client.get::<Me>("me").await;
    client.close().await;
    let me = me?;
    println!("partner:  {}", me.partner_name);
    println!("key:      {} ({})", me.api_key_name, me.api_key_prefix);
    println!("scopes:   {}", me.scopes.join(", "));
    let origins = if me.allowed_origins.is_empty() {
        "any (consider restricting the key)".to_string()
    } else {
        me.allowed_origins.join(", ")
    };
    println!("origins:  {origins}");
    Ok(ExitCode::SUCCESS)
}

async fn ingest(args: IngestArgs) -> Result<ExitCode> {
    use hspq::ingest::plan::Windows;
    use hspq::ingest::{human_duration, IngestError, IngestOptions};
    let creds = Credentials::from_env().map_err(anyhow::Error::msg)?;
    let opts = IngestOptions {
        data: args.data.clone(),
        client: client_config(&args.api)?,
        creds,
        windows: Windows {
            history_months: args.history_months,
            lookback_days: args.lookback_days,
            full: args.full,
        },
        dry_run: args.dry_run,
        quiet: args.quiet,
    };
    let summary = match hspq::ingest::run(opts).await {
        Ok(s) => s,
        Err(IngestError::Interrupted) => {
            eprintln!("hspq: {}", IngestError::Interrupted);
            return Ok(ExitCode::from(130));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(plan) = summary.plan {
        println!("{plan}");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "hspq ingest: {} report into {}: {} period(s) and {} customer(s) fetched, {} rows ({:.1} MB) written in {}; {} requests, {} retries, {} rate-limited",
        summary.report_type,
        args.data,
        summary.periods_fetched,
        summary.customers_fetched,
        summary.rows_written,
        summary.bytes_written as f64 / 1e6,
        human_duration(summary.elapsed),
        summary.requests,
        summary.retries,
        summary.rate_limited,
    );
    for w in &summary.warnings {
        eprintln!("  warning: {w}");
    }
    Ok(ExitCode::SUCCESS)
}

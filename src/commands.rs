//! What each subcommand does, on top of the library.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use hspq::api::{models::Me, Client, ClientConfig, Credentials};
use hspq::sim::{FaultRates, SimConfig, SimKeys, Simulator};

use crate::cli::{
    ApiArgs, Command, IngestArgs, OutputArgs, QueryArgs, SimulateArgs, SqlArgs, ViewsArgs,
};
use hspq::query::output::{Format, OutputError, ResultWriter, TableOptions};
use hspq::query::QueryError;

pub async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Simulate(args) => simulate(args).await,
        Command::Ingest(args) => ingest(args).await,
        Command::Check(args) => check(args).await,
        Command::Sql(args) => sql(args).await,
        Command::Query(args) => query(args).await,
        Command::Queries => queries(),
        Command::Views(args) => views(args),
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

/// Where a result goes: stdout, or a file; in which format.
fn result_writer(args: &OutputArgs) -> Result<(ResultWriter<'static>, Format)> {
    use std::io::IsTerminal;
    let format = args.format.unwrap_or(
        if std::io::stdout().is_terminal() && args.output.is_none() {
            Format::Table
        } else {
            Format::Csv
        },
    );
    let width = terminal_width();
    let table = TableOptions {
        max_rows: args.max_rows,
        width,
        ..TableOptions::default()
    };
    let writer = match (&args.output, format) {
        (None, Format::Parquet) => {
            anyhow::bail!("--format parquet writes a file: add --output FILE.parquet")
        }
        (Some(path), Format::Parquet) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            ResultWriter::parquet(Box::new(std::io::BufWriter::new(file)))
        }
        (Some(path), f) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            ResultWriter::new(f, Box::new(std::io::BufWriter::new(file)), table)
        }
        (None, f) => ResultWriter::new(
            f,
            Box::new(std::io::BufWriter::new(std::io::stdout())),
            table,
        ),
    };
    Ok((writer, format))
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(120)
}

/// Prints the result's footer (table format) and maps a closed pipe to success.
fn finish_result(
    outcome: Result<(usize, Option<arrow::datatypes::SchemaRef>), QueryError>,
    writer: ResultWriter<'static>,
    format: Format,
    max_rows: usize,
    started: std::time::Instant,
) -> Result<ExitCode> {
    let (rows, schema) = match outcome {
        Ok(r) => r,
        Err(QueryError::Output(OutputError::Closed)) => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(e.into()),
    };
    match writer.finish(schema) {
        Ok(_) | Err(OutputError::Closed) => {}
        Err(e) => return Err(e.into()),
    }
    if format == Format::Table {
        let shown = rows.min(max_rows);
        let more = if shown < rows {
            format!(" ({shown} shown; --max-rows or --format csv for all)")
        } else {
            String::new()
        };
        eprintln!(
            "{rows} row{}{more} in {:.3} s",
            if rows == 1 { "" } else { "s" },
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn read_sql(arg: Option<String>) -> Result<String> {
    use std::io::{IsTerminal, Read};
    match arg.as_deref() {
        Some("-") | None => {
            if arg.is_none() && std::io::stdin().is_terminal() {
                anyhow::bail!(
                    "give the SQL as an argument (hspq sql \"select ...\"), or pipe it on stdin"
                );
            }
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading SQL from stdin")?;
            Ok(text)
        }
        Some(sql) => Ok(sql.to_string()),
    }
}

async fn sql(args: SqlArgs) -> Result<ExitCode> {
    let text = read_sql(args.sql)?;
    let engine = hspq::query::Engine::open(&args.data.data).await?;
    if let Some(n) = &engine.notice {
        eprintln!("hspq: {n}");
    }
    let (mut writer, format) = result_writer(&args.output)?;
    let started = std::time::Instant::now();
    let outcome = engine.run(&text, &mut writer);
    finish_result(outcome, writer, format, args.output.max_rows, started)
}

async fn query(args: QueryArgs) -> Result<ExitCode> {
    let q = hspq::query::bundled::find(&args.name)?;
    q.values(&args.params)?;
    let engine = hspq::query::Engine::open(&args.data.data).await?;
    if let Some(n) = &engine.notice {
        eprintln!("hspq: {n}");
    }
    let (mut writer, format) = result_writer(&args.output)?;
    let started = std::time::Instant::now();
    let outcome = q.run(&engine, &args.params, &mut writer);
    finish_result(outcome, writer, format, args.output.max_rows, started)
}

fn queries() -> Result<ExitCode> {
    for q in hspq::query::bundled::all() {
        println!("{:<24} {}", q.name, q.description);
        for p in &q.params {
            let default = match (&p.default, p.required) {
                (_, true) => "required".to_string(),
                (Some(d), _) => format!("default {d}"),
                (None, _) => "default: none".to_string(),
            };
            println!(
                "  --param {}=<{}>  {} ({default})",
                p.name,
                p.ty.to_lowercase(),
                p.doc
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn views(args: ViewsArgs) -> Result<ExitCode> {
    let data = &args.data.data;
    let root = if data.starts_with("s3://") {
        data.trim_end_matches('/').to_string()
    } else {
        std::path::Path::new(data)
            .canonicalize()
            .with_context(|| format!("no lake at {data}: run hspq ingest --data {data} first"))?
            .display()
            .to_string()
    };
    let sql = hspq::query::views::all_views_sql(&root);
    if args.target.sql {
        println!("{sql}");
        return Ok(ExitCode::SUCCESS);
    }
    let path = args.target.duckdb.expect("clap requires one target");
    let conn = duckdb::Connection::open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    conn.execute_batch(&sql).map_err(|e| {
        anyhow::anyhow!(
            "creating the views in {}: {}",
            path.display(),
            hspq::query::sql_message(&e)
        )
    })?;
    eprintln!(
        "hspq views: wrote {} views over {root} into {}",
        hspq::lake::Dataset::ALL.len(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

//! What each subcommand does, on top of the library.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use hspq::api::{models::Me, Client, ClientConfig, Credentials};
use hspq::sim::{FaultRates, SimConfig, SimKeys, Simulator};

use crate::cli::{
    ApiArgs, Command, DemoArgs, IngestArgs, OutputArgs, QueryArgs, SimulateArgs, SqlArgs,
    StatusArgs, ViewsArgs,
};
use hspq::query::output::{Format, OutputError, ResultWriter, TableOptions};
use hspq::query::QueryError;

pub async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Simulate(args) => simulate(args).await,
        Command::Demo(args) => demo(args).await,
        Command::Status(args) => status(args).await,
        Command::Ingest(args) => ingest(args).await,
        Command::Check(args) => check(args).await,
        Command::Sql(args) => sql(args).await,
        Command::Repl(args) => repl(args).await,
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
        lake: hspq::lake::WriterOptions {
            lock_ttl: args.lock_ttl,
            retention: args.retention,
            ..Default::default()
        },
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
    let shown = rows.min(max_rows);
    if format == Format::Markdown && shown < rows {
        eprintln!("{rows} rows ({shown} shown; --max-rows for more)");
    }
    if format == Format::Table {
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
    let local = !data.starts_with("s3://");
    let sql = hspq::query::views::all_views_sql(&root, |d| {
        // On S3 every dataset is assumed present; locally an absent folder gets an empty view.
        !local || std::path::Path::new(&root).join(d.name()).is_dir()
    });
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

async fn demo(args: DemoArgs) -> Result<ExitCode> {
    use hspq::ingest::plan::Windows;
    use hspq::ingest::{human_duration, IngestOptions};
    let started = std::time::Instant::now();
    let mut config = SimConfig::new(stockholm_today());
    config.companies = args.companies;
    config.rate = args.rate;
    let sim = Simulator::start_local(config)
        .await
        .context("starting the simulator")?;
    eprintln!(
        "hspq demo: simulated partner at {} with {} companies per partnership (MSSP and reseller), 24 periods; \
         its rate limit is relaxed to {} requests/s per session (the real API allows 1)",
        sim.base_url(),
        args.companies,
        args.rate
    );
    let keys = sim.keys().clone();
    for (label, key) in [("MSSP", &keys.api_keys[0]), ("reseller", &keys.api_keys[1])] {
        let mut client = ClientConfig::new(sim.base_url().parse()?);
        client.sessions = 5;
        client.rate = args.rate;
        let summary = hspq::ingest::run(IngestOptions {
            data: args.data.clone(),
            client,
            creds: Credentials::new(&keys.organization_key, &key.api_key)
                .map_err(anyhow::Error::msg)?,
            windows: Windows {
                history_months: 12,
                lookback_days: 7,
                full: false,
            },
            dry_run: false,
            quiet: !std::io::IsTerminal::is_terminal(&std::io::stderr()),
            lake: Default::default(),
        })
        .await?;
        eprintln!(
            "hspq demo: {label} synced: {} periods, {} customers, {} rows, {} requests in {}",
            summary.periods_fetched,
            summary.customers_fetched,
            summary.rows_written,
            summary.requests,
            human_duration(summary.elapsed)
        );
    }
    drop(sim);
    let engine = hspq::query::Engine::open(&args.data).await?;
    let table = TableOptions {
        max_rows: 10,
        width: terminal_width(),
        ..TableOptions::default()
    };
    let report = |title: &str, sql: &str| -> Result<()> {
        println!("\n{title}");
        let all = TableOptions {
            max_rows: 100,
            ..table
        };
        let mut out = ResultWriter::new(Format::Table, Box::new(std::io::stdout()), all);
        let (_, schema) = engine.run(sql, &mut out)?;
        out.finish(schema)?;
        Ok(())
    };
    let churn = hspq::query::bundled::find("churn_risk")?;
    println!("\nChurn risk, top 10 (hspq query churn_risk)");
    let mut out = ResultWriter::new(Format::Table, Box::new(std::io::stdout()), table);
    let (_, schema) = churn.run(&engine, &[], &mut out)?;
    out.finish(schema)?;
    report(
        "Billing trend, last three periods, MSSP (hspq query billing_trend)",
        "select year, period, product, billing_total, change, change_pct from ( \
           select *, billing_total - lag(billing_total) over w as change, \
                  round(100.0 * (billing_total - lag(billing_total) over w) / nullif(lag(billing_total) over w, 0), 1) as change_pct, \
                  dense_rank() over (order by year desc, period desc) as recent \
           from (select year, period, product, cast(sum(billing_value) as bigint) as billing_total \
                 from billing where report_type = 'mssp' group by all) \
           window w as (partition by product order by year, period)) \
         where recent <= 3 order by product, year, period",
    )?;
    println!("\nBilling reconciliation (hspq query billing_reconciliation)");
    let findings = {
        let mut out = ResultWriter::new(Format::Csv, Box::new(std::io::sink()), table);
        let recon = hspq::query::bundled::find("billing_reconciliation")?;
        recon.run(&engine, &[], &mut out)?.0
    };
    println!(
        "{}",
        if findings == 0 {
            "  every check agrees: MSSP totals = sum of per-company values; reseller billing = daily arrays".to_string()
        } else {
            format!(
                "  {findings} disagreement(s): hspq query billing_reconciliation --data {}",
                args.data
            )
        }
    );
    println!(
        "\nDone in {elapsed}. Next (from a checkout, hspq is target/release/hspq, or `cargo install --path .`):\n  hspq repl --data {data}\n  hspq sql --data {data} \"select * from churn limit 5\"\n  hspq queries\n  HSPQ_DATA={data} jupyter notebook notebooks/churn_analysis.ipynb",
        elapsed = human_duration(started.elapsed()),
        data = args.data,
    );
    Ok(ExitCode::SUCCESS)
}

async fn status(args: StatusArgs) -> Result<ExitCode> {
    let data = &args.data.data;
    let engine = hspq::query::Engine::open(data).await?;
    let lake = hspq::lake::Lake::open(&engine.root.display().to_string())?;
    let latest = hspq::lake::log::latest(&lake).await?;
    let lease = latest.as_ref().and_then(|e| e.lease.clone());
    let manifest = latest.map(|e| e.manifest).unwrap_or_default();
    let staged = manifest.staged.len();
    // Rows of `n` columns as text (duckdb-rs knows the column count only after execution).
    let one = |sql: &str, n: usize| -> Result<Vec<Vec<String>>> {
        let mut stmt = engine.connection().prepare(sql)?;
        let rows = stmt.query_map([], |r| {
            (0..n)
                .map(|i| r.get::<_, Option<String>>(i).map(|v| v.unwrap_or_default()))
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    };
    let mut datasets = serde_json::Map::new();
    for d in hspq::lake::Dataset::ALL {
        let prefix = format!("{}/", d.name());
        let files: Vec<_> = manifest
            .files
            .iter()
            .filter(|(p, _)| p.starts_with(&prefix))
            .collect();
        datasets.insert(
            d.name().into(),
            serde_json::json!({
                "files": files.len(),
                "rows": files.iter().map(|(_, f)| f.rows).sum::<u64>(),
                "bytes": files.iter().map(|(_, f)| f.size).sum::<u64>(),
            }),
        );
    }
    let periods = one(
        "select report_type, count(*)::varchar, (count(*) filter (where not is_partial))::varchar, \
                min(year || '-' || period), max(year || '-' || period) from periods group by 1 order by 1",
        5,
    )?;
    let last_ok = one(
        "select run_id, cast(finished_at as varchar), cast(cast(epoch(now() - finished_at) as bigint) as varchar) from sync_runs \
         where status = 'succeeded' order by finished_at desc limit 1",
        3,
    )?;
    let last_failed = one(
        "select run_id, status, cast(started_at as varchar), coalesce(error, '') from sync_runs \
         where status in ('failed', 'interrupted') order by started_at desc limit 1",
        4,
    )?;
    let reports: Vec<serde_json::Value> = periods
        .iter()
        .map(|r| serde_json::json!({"report_type": r[0], "periods": r[1].parse::<u64>().unwrap_or(0), "closed": r[2].parse::<u64>().unwrap_or(0), "first": r[3], "last": r[4]}))
        .collect();
    let age = last_ok.first().and_then(|r| r[2].parse::<u64>().ok());
    let status = serde_json::json!({
        "lake": data,
        "datasets": datasets,
        "reports": reports,
        "last_success": last_ok.first().map(|r| serde_json::json!({"run_id": r[0], "finished_at": r[1], "age_seconds": age})),
        "last_failure": last_failed.first().map(|r| serde_json::json!({"run_id": r[0], "status": r[1], "started_at": r[2], "error": r[3]})),
        "sync_running": lease.as_ref().map(|l| serde_json::json!({"run_id": l.run_id, "host": l.host, "pid": l.owner.pid, "since": l.acquired_at, "lease_expires_at": l.expires_at})),
        "staged_chunks": staged,
    });
    if args.format == "json" {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("lake: {data}");
    if let Some(l) = &lease {
        println!(
            "  a sync holds the lake: run {} (pid {} on {}) since {}, lease until {}",
            l.run_id,
            l.owner.pid,
            l.host,
            l.acquired_at.format("%Y-%m-%d %H:%M:%SZ"),
            l.expires_at.format("%Y-%m-%d %H:%M:%SZ")
        );
    }
    if staged > 0 {
        println!(
            "  {staged} chunk(s) of customer data fetched and not merged yet: the next hspq ingest merges them"
        );
    }
    for r in &periods {
        println!(
            "  {} report: {} periods ({} closed), {} to {}",
            r[0], r[1], r[2], r[3], r[4]
        );
    }
    println!(
        "  {:<16} {:>6} {:>12} {:>12}",
        "dataset", "files", "rows", "bytes"
    );
    for (name, v) in &datasets {
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        println!(
            "  {:<16} {:>6} {:>12} {:>12}",
            name,
            n("files"),
            n("rows"),
            n("bytes")
        );
    }
    match (last_ok.first(), age) {
        (Some(r), Some(age)) => println!(
            "last successful sync: {} ({} ago), run {}",
            r[1],
            hspq::ingest::human_duration(std::time::Duration::from_secs(age)),
            r[0]
        ),
        _ => println!("last successful sync: none"),
    }
    if let Some(r) = last_failed.first() {
        println!("last {} run: {} at {}: {}", r[1], r[0], r[2], r[3]);
    }
    if let Some(n) = &engine.notice {
        eprintln!("hspq: {n}");
    }
    Ok(ExitCode::SUCCESS)
}

async fn repl(args: crate::cli::DataArgs) -> Result<ExitCode> {
    Ok(match hspq::repl::run(&args.data).await? {
        hspq::repl::Ended::Ok => ExitCode::SUCCESS,
        hspq::repl::Ended::Failed => ExitCode::FAILURE,
        hspq::repl::Ended::Interrupted => {
            eprintln!("hspq: interrupted");
            ExitCode::from(130)
        }
    })
}

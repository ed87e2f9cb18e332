//! What each subcommand does, on top of the library, with the settings resolved in
//! [`Config`]; results print through the one [`Printer`].

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hspq::api::{models::Me, Client, Credentials};
use hspq::config::Config;
use hspq::lake::log::AsOf;
use hspq::lake::LakeLocation;
use hspq::query::output::{Format, ResultWriter};
use hspq::query::print::{PrintOptions, Printer};
use hspq::query::status::LakeStatus;
use hspq::query::Engine;
use hspq::sim::{FaultRates, SimConfig, SimKeys, Simulator};

use crate::cli::{
    ChurnCommand, Command, DemoArgs, FitArgs, QueryArgs, ReportArgs, ServeArgs, SimulateArgs,
    SqlArgs, StatusArgs, StatusFormat, ViewsArgs,
};

pub async fn run(command: Command, config: Config) -> Result<ExitCode> {
    match command {
        Command::Simulate(args) => simulate(args).await,
        Command::Demo(args) => demo(args, &config).await,
        Command::Status(args) => status(args, &config).await,
        Command::Ingest(_) => ingest(&config).await,
        Command::Check(_) => check(&config).await,
        Command::Log(_) => log(&config).await,
        Command::Sql(args) => sql(args, &config).await,
        Command::Repl(_) => repl(&config).await,
        Command::Query(args) => query(args, &config).await,
        Command::Queries => {
            print!("{}", hspq::query::bundled::describe_all());
            Ok(ExitCode::SUCCESS)
        }
        Command::Views(args) => views(args, &config).await,
        Command::Churn(ChurnCommand::Fit(args)) => churn_fit(args, &config).await,
        Command::Serve(args) => serve(args, &config).await,
        Command::Report(args) => report(args, &config).await,
    }
}

async fn report(args: ReportArgs, config: &Config) -> Result<ExitCode> {
    if args.output.is_none() && std::io::stdout().is_terminal() {
        anyhow::bail!(
            "the report is an HTML file: pass --output report.html (or redirect stdout to a file)"
        );
    }
    let engine = open_as_of(&config.lake, config.as_of.as_ref()).await?;
    let html = hspq::report::render(&engine, &config.lake.to_string(), &config.report)?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, &html)
                .with_context(|| format!("cannot write the report to {}", path.display()))?;
            eprintln!(
                "hspq report: wrote {} ({} KB)",
                path.display(),
                html.len() / 1024
            );
        }
        None => std::io::stdout().write_all(html.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: ServeArgs, config: &Config) -> Result<ExitCode> {
    let user = config.serve.user.clone();
    let (tls, sslmode) = match config.serve.tls {
        Some(_) => (", TLS required", " sslmode=require"),
        None => ("", ""),
    };
    hspq::serve::run(config.lake.clone(), config.serve.clone(), |addr| {
        eprintln!(
            "hspq serve: the views of {} on {addr}, read-only{tls}; connect with\n  \
             psql \"host={} port={} user={user} dbname=hspq{sslmode}\"\n\
             (the password is HSPQ_SERVE_PASSWORD's; Ctrl-C stops)",
            config.lake,
            addr.ip(),
            addr.port()
        );
        if let Some(file) = &args.port_file {
            if let Err(e) = std::fs::write(file, addr.to_string()) {
                eprintln!("hspq serve: cannot write {}: {e}", file.display());
            }
        }
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

async fn churn_fit(args: FitArgs, config: &Config) -> Result<ExitCode> {
    use hspq::churn::{self, FitOptions};
    let opts = FitOptions {
        horizon_days: args.horizon_days,
        window_days: args.window_days,
        top_share: args.top_share,
        report_type: args.report_type.clone(),
    };
    // Opening the engine first makes a missing lake an error, not a new lake.
    let engine = open(&config.lake).await?;
    // A fit that stores takes the lake before the minute of fitting: a sync holding it fails
    // the fit at once, naming it; and no sync starts meanwhile.
    let writer = match args.dry_run {
        true => None,
        false => Some(churn::Writer::take(&config.lake, config.sync.lake.clone()).await?),
    };
    let outcome = fit_and_store(&args, &opts, config, &engine, writer.as_ref()).await;
    if let Some(writer) = writer {
        let ending = match &outcome {
            Ok(_) => hspq::lake::log::Ending::Finished,
            Err(_) => hspq::lake::log::Ending::Failed,
        };
        let finished = writer.finish(ending).await;
        // Having lost the lake says more than whatever else failed.
        if let Err(lost @ hspq::lake::LakeError::Lost(_)) = finished {
            return Err(lost.into());
        }
        let code = outcome?;
        finished?;
        return Ok(code);
    }
    outcome
}

async fn fit_and_store(
    args: &FitArgs,
    opts: &hspq::churn::FitOptions,
    config: &Config,
    engine: &hspq::query::Engine,
    writer: Option<&hspq::churn::Writer>,
) -> Result<ExitCode> {
    use hspq::churn;
    let both = ["mssp".to_string(), "reseller".to_string()];
    let report_types = args.report_type.clone().map_or(both.to_vec(), |r| vec![r]);
    if let (true, Some(writer)) = (args.reset, writer) {
        writer.store(&[], &report_types, opts).await?;
        eprintln!(
            "hspq churn fit: stored weights dropped ({}): churn_risk scores with the default weights",
            report_types.join(", ")
        );
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("hspq churn fit: scoring every past cut-off and fitting (a minute on a large lake)");
    let fits = churn::fit(engine, opts)?;
    if fits.is_empty() {
        anyhow::bail!(
            "no past cut-off to learn from: a cut-off needs {} days of usage before it and {} days \
             of history after it (run hspq ingest, or a shorter --horizon-days)",
            2 * opts.window_days,
            opts.horizon_days
        );
    }
    let table = churn::report(&fits, &churn::default_weights(engine)?)?;
    Printer::new(config.print.clone()).print_batches(table.schema(), &[table])?;
    let mut better = Vec::new();
    for fit in &fits {
        let what = format!("{} ({})", fit.report_type, fit.components);
        match fit.judged() {
            Ok(how) => {
                eprintln!("{what}: {how}: better");
                better.push(fit.clone());
            }
            Err(why) if args.store_anyway && fit.model.is_some() => {
                eprintln!("{what}: {why}: stored all the same (--store-anyway)");
                better.push(fit.clone());
            }
            Err(why) => eprintln!("{what}: {why}: the default weights stay"),
        }
    }
    let Some(writer) = writer else {
        eprintln!("hspq churn fit: --dry-run: nothing stored");
        return Ok(ExitCode::SUCCESS);
    };
    if better.is_empty() {
        eprintln!(
            "hspq churn fit: nothing stored: no fit beat the default weights out of time by the \
             margin ({} of AUC, lift no lower); churn_risk scores as before (--store-anyway \
             stores the fitted weights all the same)",
            churn::MARGIN
        );
        return Ok(ExitCode::SUCCESS);
    }
    let fitted: Vec<&str> = report_types
        .iter()
        .filter(|rt| better.iter().any(|f| &f.report_type == *rt))
        .map(String::as_str)
        .collect();
    writer.store(&better, &[], opts).await?;
    eprintln!(
        "hspq churn fit: stored in the lake: churn_risk scores {} with the weights that beat the \
         default ones, and says which in its weights column (hspq churn fit --reset goes back to \
         the default weights)",
        fitted.join(" and ")
    );
    Ok(ExitCode::SUCCESS)
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
    if !(0.0..=1.0).contains(&args.pauses) {
        anyhow::bail!("--pauses must be a share from 0 to 1, not {}", args.pauses);
    }
    crate::cli::rate_or_unlimited(args.rate)?;
    let (keys, own_keys) = match &args.keys_file {
        Some(path) => (SimKeys::load(path)?, true),
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
    config.mechanics = args.mechanics;
    config.pauses = args.pauses;
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

async fn check(config: &Config) -> Result<ExitCode> {
    let creds = Credentials::from_env()?;
    let client = Client::connect(config.api.clone(), creds).await?;
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

async fn ingest(config: &Config) -> Result<ExitCode> {
    use hspq::duration;
    use hspq::ingest::IngestError;
    let creds = Credentials::from_env()?;
    let opts = hspq::ingest::IngestOptions::new(config, creds);
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
        config.lake,
        summary.periods_fetched,
        summary.customers_fetched,
        summary.rows_written,
        summary.bytes_written as f64 / 1e6,
        duration::human(summary.elapsed),
        summary.requests,
        summary.retries,
        summary.rate_limited,
    );
    for w in &summary.warnings {
        eprintln!("  warning: {w}");
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

/// The engine over the lake, having said what the user should know about its data.
async fn open(lake: &LakeLocation) -> Result<Engine> {
    open_as_of(lake, None).await
}

/// The engine over the lake as `--as-of` names it (the newest without it).
async fn open_as_of(lake: &LakeLocation, as_of: Option<&AsOf>) -> Result<Engine> {
    let engine = Engine::open_as_of(lake, as_of).await?;
    if let Some(n) = &engine.notice {
        eprintln!("hspq: {n}");
    }
    Ok(engine)
}

async fn sql(args: SqlArgs, config: &Config) -> Result<ExitCode> {
    let text = read_sql(args.sql)?;
    let engine = open_as_of(&config.lake, config.as_of.as_ref()).await?;
    Printer::new(config.print.clone()).print(|out| engine.run(&text, out))?;
    Ok(ExitCode::SUCCESS)
}

async fn query(args: QueryArgs, config: &Config) -> Result<ExitCode> {
    let q = hspq::query::bundled::find(&args.name)?;
    q.values(&args.params)?;
    let engine = open_as_of(&config.lake, config.as_of.as_ref()).await?;
    Printer::new(config.print.clone()).print(|out| q.run(&engine, &args.params, out))?;
    Ok(ExitCode::SUCCESS)
}

async fn views(args: ViewsArgs, config: &Config) -> Result<ExitCode> {
    let root = match &config.lake {
        LakeLocation::S3 { .. } => config.lake.to_string(),
        LakeLocation::Local(dir) => dir
            .canonicalize()
            .with_context(|| {
                format!(
                    "no lake at {}: run hspq ingest --data {0} first",
                    config.lake
                )
            })?
            .display()
            .to_string(),
    };
    // A dataset without live files gets an empty view: a glob matching nothing is an error.
    // A lake copied without its log lists no live files: its folders say what is there, as
    // they do for the engine, and nothing says each file holds a key once.
    let engine = open(&config.lake).await?;
    let entry = engine.commit()?;
    let sql = hspq::query::views::all_views_sql(&root, |d| {
        let unique = match &entry {
            Some(entry) => {
                let prefix = format!("{}/", d.name());
                let mut files = entry
                    .manifest
                    .files
                    .iter()
                    .filter(|(path, _)| path.starts_with(&prefix))
                    .peekable();
                files.peek()?;
                files.all(|(_, f)| f.unique_keys)
            }
            None if engine.root.join(d.name()).is_dir() => false,
            None => return None,
        };
        Some(unique && !args.dedup)
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

async fn demo(args: DemoArgs, config: &Config) -> Result<ExitCode> {
    use hspq::duration;
    use hspq::query::bundled;
    let started = std::time::Instant::now();
    // Simulated data must never land in a real lake: only a new folder or an earlier demo's.
    const DEMO_MARK: &str = "_hspq/demo";
    let lake = hspq::lake::Lake::open(&config.lake)?;
    if hspq::lake::log::latest(&lake).await?.is_some() && lake.get(DEMO_MARK).await?.is_none() {
        anyhow::bail!(
            "{} holds a lake hspq demo did not make: the demo writes simulated data, which must \
             never land in a real lake; pass --data a new folder",
            config.lake
        );
    }
    lake.put(DEMO_MARK, "made by hspq demo: simulated data\n".into())
        .await?;
    let mut sim_config = SimConfig::new(stockholm_today());
    sim_config.companies = args.companies;
    sim_config.rate = args.rate;
    let sim = Simulator::start_local(sim_config)
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
    let mut config = config.clone();
    config.api.base_url = sim.base_url().parse()?;
    config.api.token_cache = None;
    for (label, key) in [("MSSP", &keys.api_keys[0]), ("reseller", &keys.api_keys[1])] {
        let creds = Credentials::new(&keys.organization_key, &key.api_key)?;
        let summary = hspq::ingest::run(hspq::ingest::IngestOptions::new(&config, creds)).await?;
        eprintln!(
            "hspq demo: {label} synced: {} periods, {} customers, {} rows, {} requests in {}",
            summary.periods_fetched,
            summary.customers_fetched,
            summary.rows_written,
            summary.requests,
            duration::human(summary.elapsed)
        );
    }
    drop(sim);
    let engine = open(&config.lake).await?;
    // Each report under a title that says how to get all of it.
    let report =
        |title: &str, max_rows: usize, name: &str, params: &[(&str, &str)]| -> Result<()> {
            let command = format!(
                "hspq query {name}{}",
                params
                    .iter()
                    .map(|(k, v)| format!(" -p {k}={v}"))
                    .collect::<String>()
            );
            println!("\n{title} ({command})");
            let q = bundled::find(name)?;
            let params: Vec<(String, String)> = params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            // Narrower columns, so the reasons fit next to who and how much.
            let printer = Printer::new(PrintOptions {
                max_rows,
                more: command,
                column_width: 30,
                ..config.print.clone()
            });
            printer.print(|out| q.run(&engine, &params, out))?;
            Ok(())
        };
    report("Churn risk, top 10", 10, "churn_risk", &[])?;
    println!("{}", backtest_summary(&engine)?);
    report(
        "Billing trend, last three periods, MSSP",
        100,
        "billing_trend",
        &[("report_type", "mssp"), ("periods", "3")],
    )?;
    println!("\nBilling reconciliation (hspq query billing_reconciliation)");
    // Counted, not printed: an empty table of findings says less than one line.
    let recon = bundled::find("billing_reconciliation")?;
    let findings = {
        let mut out = ResultWriter::new(Format::Csv, Box::new(std::io::sink()), Default::default());
        recon.run(&engine, &[], &mut out)?.0
    };
    println!(
        "{}",
        if findings == 0 {
            "  every check agrees: MSSP totals = sum of per-company values; reseller billing = daily arrays".to_string()
        } else {
            format!(
                "  {findings} disagreement(s): hspq query billing_reconciliation --data {}",
                config.lake
            )
        }
    );
    println!(
        "\nDone in {elapsed}. Next (from a checkout, hspq is target/release/hspq, or `cargo install --path .`):\n  hspq repl --data {data}\n  hspq sql --data {data} \"select * from churn limit 5\"\n  hspq queries\n  HSPQ_DATA={data} jupyter notebook notebooks/churn_analysis.ipynb",
        elapsed = duration::human(started.elapsed()),
        data = args.data,
    );
    Ok(ExitCode::SUCCESS)
}

/// `churn_backtest`'s verdict in a few lines: would the score have seen the leavers coming?
fn backtest_summary(engine: &Engine) -> Result<String> {
    let mut json = Vec::new();
    {
        let mut out = ResultWriter::new(Format::Json, Box::new(&mut json), Default::default());
        let q = hspq::query::bundled::find("churn_backtest")?;
        let (_, schema) = q.run(engine, &[], &mut out)?;
        out.finish(schema)?;
    }
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&json)?;
    let pct = |v: &serde_json::Value| {
        v.as_f64()
            .map_or("-".into(), |x| format!("{:.1} %", 100.0 * x))
    };
    let num = |v: &serde_json::Value| v.as_f64().map_or("-".into(), |x| format!("{x:.2}"));
    let cutoffs = rows
        .first()
        .map_or(0, |r| r["cutoffs"].as_u64().unwrap_or(0));
    let mut lines = vec![format!(
        "Backtest (hspq query churn_backtest): the top 10 % by score at each of {cutoffs} past month starts"
    )];
    for r in rows.iter().filter(|r| r["model"] == "churn score") {
        let baseline = rows
            .iter()
            .find(|b| b["model"] == "naive rule" && b["report_type"] == r["report_type"]);
        lines.push(format!(
            "  {}: {} left within 60 days, {} overall: lift {}, AUC {} (naive rule: {}, {})",
            r["report_type"].as_str().unwrap_or("?"),
            pct(&r["precision_at_k"]),
            pct(&r["base_rate"]),
            num(&r["lift"]),
            num(&r["auc"]),
            baseline.map_or("-".into(), |b| num(&b["lift"])),
            baseline.map_or("-".into(), |b| num(&b["auc"])),
        ));
    }
    if lines.len() == 1 {
        lines.push("  no cut-off yet: the lake's history is too short".into());
    }
    Ok(lines.join("\n"))
}

async fn log(config: &Config) -> Result<ExitCode> {
    use arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray, UInt64Array};
    // Opening the engine first makes a missing lake an error (and an S3 lake its local copy).
    let engine = open(&config.lake).await?;
    let lake = hspq::lake::Lake::open(&engine.root.as_path().into())?;
    let lines = hspq::lake::log::lines(&lake).await?;
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "version",
            Arc::new(UInt64Array::from_iter_values(
                lines.iter().map(|l| l.version),
            )),
        ),
        (
            "at",
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    lines.iter().map(|l| l.at.timestamp_micros()),
                )
                .with_timezone("UTC"),
            ),
        ),
        (
            "run_id",
            Arc::new(StringArray::from_iter_values(
                lines.iter().map(|l| &l.run_id),
            )),
        ),
        (
            "status",
            Arc::new(StringArray::from_iter_values(
                lines.iter().map(|l| l.status),
            )),
        ),
        (
            "datasets_changed",
            Arc::new(StringArray::from_iter_values(
                lines.iter().map(|l| l.datasets.join(",")),
            )),
        ),
        (
            "partitions_changed",
            Arc::new(UInt64Array::from_iter_values(
                lines.iter().map(|l| l.partitions as u64),
            )),
        ),
        (
            "rows_written",
            Arc::new(UInt64Array::from_iter_values(
                lines.iter().map(|l| l.rows_written),
            )),
        ),
        (
            "rows",
            Arc::new(UInt64Array::from_iter_values(lines.iter().map(|l| l.rows))),
        ),
    ];
    let batch = arrow::record_batch::RecordBatch::try_from_iter(columns)?;
    Printer::new(config.print.clone()).print_batches(batch.schema(), &[batch])?;
    Ok(ExitCode::SUCCESS)
}

async fn status(args: StatusArgs, config: &Config) -> Result<ExitCode> {
    let engine = open(&config.lake).await?;
    let status = LakeStatus::read(&engine, &config.lake.to_string())?;
    if args.format == StatusFormat::Json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", status.heading());
    let (schema, batch) = status.datasets();
    Printer::new(config.print.clone()).print_batches(schema, &[batch])?;
    print!("{}", status.footing());
    Ok(ExitCode::SUCCESS)
}

async fn repl(config: &Config) -> Result<ExitCode> {
    Ok(match hspq::repl::run(config).await? {
        hspq::repl::Ended::Ok => ExitCode::SUCCESS,
        hspq::repl::Ended::Failed => ExitCode::FAILURE,
        hspq::repl::Ended::Interrupted => {
            eprintln!("hspq: interrupted");
            ExitCode::from(130)
        }
    })
}

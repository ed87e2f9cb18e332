//! The `hspq` binary: parse, run, map the outcome to an exit code. Errors print as one line on
//! stderr; data goes to stdout.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let opts = cli::Opts::parse();
    init_logging(opts.verbose);
    // The simulator gets more worker threads than cores: building a large answer must not
    // keep the threads that read the next request from running, since it times arrivals to
    // the millisecond. Everything else keeps the default (one per core): more threads mean
    // more malloc arenas and a higher peak memory for a sync.
    let serves = matches!(
        opts.command,
        Some(cli::Command::Simulate(_) | cli::Command::Demo(_))
    );
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if serves {
        builder.worker_threads(8);
    }
    if matches!(opts.command, Some(cli::Command::Serve(_))) {
        // hspq serve encodes results on these threads, recursing once per level of a nested
        // list: 2 MiB overflowed at about 130 levels (only the pages used are committed).
        builder.thread_stack_size(64 << 20);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hspq: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = match opts.command {
        Some(c) => c,
        None if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
            cli::Command::Repl(cli::ReplArgs {
                data: cli::DataArgs {
                    data: std::env::var("HSPQ_DATA")
                        .unwrap_or_else(|_| hspq::config::DEFAULT_DATA.into()),
                },
                as_of: cli::AsOfArgs { as_of: None },
            })
        }
        None => {
            let _ = <cli::Opts as clap::CommandFactory>::command().print_help();
            return ExitCode::from(2);
        }
    };
    // A setting that cannot be used is a usage error, like a flag clap refuses.
    let config = match command.config() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("hspq: {err:#}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(commands::run(command, config)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("hspq: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "hspq=info",
        1 => "hspq=debug",
        _ => "hspq=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .with_target(false)
        .without_time()
        .init();
}

//! The `hspq` binary: parse, run, map the outcome to an exit code. Errors print as one line on
//! stderr; data goes to stdout.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

/// jemalloc for the whole process: its `malloc` is exported unprefixed, so the prebuilt
/// libduckdb's allocations go through it too (see Cargo.toml for what it measured).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
            eprintln!("hspq: {}", message(&err));
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(commands::run(command, config)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("hspq: {}", message(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, one after the other, leaving out a cause whose text the message
/// already quotes: errors that name their source in their own text (`lake list ...: {source}`)
/// would otherwise repeat it, once per level.
fn message(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
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

#[cfg(test)]
mod tests {
    use super::message;

    #[test]
    fn a_cause_the_message_already_quotes_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("lake list x: {source}")]
        struct Quoting {
            source: std::io::Error,
        }
        let io = || std::io::Error::other("permission denied");
        let quoting = anyhow::Error::from(Quoting { source: io() });
        assert_eq!(message(&quoting), "lake list x: permission denied");
        // A context that does not quote its cause still shows it.
        let wrapped = anyhow::Error::from(io()).context("cannot open views.duckdb");
        assert_eq!(
            message(&wrapped),
            "cannot open views.duckdb: permission denied"
        );
    }
}

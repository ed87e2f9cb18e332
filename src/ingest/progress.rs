//! Progress of a sync: a bar with requests done/planned and an ETA at the current pace on a
//! terminal; plain, line-oriented log lines (one per step) otherwise. Both on stderr.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tracing::info;

/// Where progress goes.
pub struct Progress {
    bar: Option<ProgressBar>,
    lines: bool,
}

impl Progress {
    /// A bar when stderr is a terminal, log lines otherwise; nothing at all when `quiet`.
    pub fn new(quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            let style = ProgressStyle::with_template(
                "{spinner} {msg:40!} [{bar:30}] {pos}/{len} requests, ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress { bar, lines: !quiet }
    }

    /// A new step: what is being fetched.
    pub fn step(&self, what: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(what.to_string()),
            None if self.lines => info!("{what}"),
            None => {}
        }
    }

    /// Requests done so far and planned in all.
    pub fn requests(&self, done: u64, planned: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(planned.max(done));
            bar.set_position(done);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

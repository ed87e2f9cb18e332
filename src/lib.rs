//! hspq: mirror the Holm Security Partner Portal API into a Parquet lake and query it offline.
//!
//! # Layout
//! - [`api`]: the Partner Portal API client: session pool, pacer, retry, pagination, models.
//! - [`ingest`]: `hspq ingest`: what to fetch, API answers → Arrow batches → lake commits.
//! - [`lake`]: the Parquet lake: schemas, partition layout, writer, manifest, lock, storage.
//! - [`query`]: DuckDB views over the lake, SQL execution, output formats, bundled queries.
//! - [`churn`]: `hspq churn fit`: the churn score's weights fitted on the lake's own history.
//! - [`serve`]: `hspq serve`: the views over the PostgreSQL wire protocol, for BI tools.
//! - [`repl`]: the interactive shell: editor, completion, dot-commands.
//! - [`sim`]: the API simulator (synthetic data + HTTP server), written apart from the client.
//! - [`process`]: whether the owner of a leftover (session, lock) still runs.
//! - [`cpu`]: running CPU-heavy steps without holding up request I/O.
//! - [`duration`]: durations as the command line takes them and messages print them.
//! - [`config`]: every setting of a run, resolved once (the binary's `cli.rs` parses the
//!   command line into it).
//!
//! Data flows one way: api → ingest → lake → query → repl/cli. A module never reaches back.
//!
//! # Which module may import which
//! Imports go down only, never up or sideways between peers:
//! - at the bottom: [`api`], [`lake`] and the small shared modules ([`duration`], [`process`],
//!   [`cpu`]); [`config`] holds every setting's type and imports nothing above `api` and `lake`;
//! - [`ingest`] over `api` and `lake`; [`query`] over `lake`;
//! - [`churn`], [`report`], [`serve`] and [`repl`] over `query` (and `lake` where they commit);
//! - [`sim`] beside everything: it shares no code with the client it checks;
//! - the binary's own `cli`, `commands` and `main` on top.
#![warn(missing_docs)]

pub mod api;
pub mod churn;
pub mod config;
pub mod cpu;
pub mod duration;
pub mod ingest;
pub mod lake;
pub mod process;
pub mod query;
pub mod repl;
pub mod report;
pub mod serve;
pub mod sim;

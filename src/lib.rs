//! hspq: mirror the Holm Security Partner Portal API into a Parquet lake and query it offline.
//!
//! # Layout
//! - [`api`]: the Partner Portal API client: session pool, pacer, retry, pagination, models.
//! - [`sim`]: the API simulator (synthetic data + HTTP server), written apart from the client.
//! - `cli`/`config` (binary side): the command line and its resolved settings.
//!
//! Data flows one way: api → ingest → lake → query → repl/cli. A module never reaches back.
#![warn(missing_docs)]

pub mod api;
pub mod sim;

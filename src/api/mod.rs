//! The Partner Portal API client.
//!
//! - [`Client`]: up to five sessions, paced per session by start time ([`Pacer`]), renewed
//!   before expiry and after a 401, retried on 429/5xx/transport errors ([`RetryConfig`]),
//!   invalidated on [`Client::close`].
//! - [`Pages`]: pagination over `next` links (relative or absolute) or `offset`.
//! - [`models`]: typed answers that keep unknown fields.
//! - [`ApiError`]: documented failures, each with its fix; never a key or token.
//!
//! Written from the vendor docs, apart from the simulator in `crate::sim`.

mod client;
mod error;
pub mod models;
mod pacer;
mod retry;
mod secret;
pub mod token_cache;

pub use client::{Client, ClientConfig, ClientStats, Pages, MAX_PAGE, MAX_SESSIONS};
pub use error::ApiError;
pub use pacer::{Pacer, Reservation};
pub use retry::{rate_limit_wait, Backoff, BackoffConfig, RetryConfig};
pub use secret::{Credentials, KeyError, Secret};
pub use token_cache::default_path as default_token_cache;

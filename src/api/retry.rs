//! Retry settings and backoff, after object_store's `RetryConfig`/`BackoffConfig`.
//!
//! 5xx answers, timeouts and dropped connections back off exponentially with decorrelated
//! jitter, capped; a 429 waits what the API asks (`retry_after_ms`, else `Retry-After`), never
//! less than a small floor. The random source is injectable so tests are deterministic.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::RngExt;

/// Exponential backoff bounds.
#[derive(Clone, Debug, PartialEq)]
pub struct BackoffConfig {
    /// First backoff (default 200 ms).
    pub init_backoff: Duration,
    /// Longest backoff (default 30 s).
    pub max_backoff: Duration,
    /// Growth factor (default 2).
    pub base: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            init_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            base: 2.0,
        }
    }
}

/// When to give up.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryConfig {
    /// Retries of one request after 5xx, timeouts and connection errors (default 8).
    pub max_retries: usize,
    /// Retries of one request after 429s (default 20: the API tells us how long to wait).
    pub max_rate_limited: usize,
    /// Give up retrying once a request has taken this long (default 10 min).
    pub retry_timeout: Duration,
    /// Backoff after 5xx and transport errors.
    pub backoff: BackoffConfig,
    /// The shortest wait after a 429, whatever the API says (default 50 ms).
    pub rate_limit_floor: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: 8,
            max_rate_limited: 20,
            retry_timeout: Duration::from_secs(600),
            backoff: BackoffConfig::default(),
            rate_limit_floor: Duration::from_millis(50),
        }
    }
}

/// Successive backoff delays for one request.
#[derive(Debug)]
pub struct Backoff {
    init: f64,
    max: f64,
    base: f64,
    next: f64,
    rng: StdRng,
}

impl Backoff {
    /// A backoff seeded from the OS.
    pub fn new(config: &BackoffConfig) -> Backoff {
        Backoff::with_rng(config, rand::make_rng::<StdRng>())
    }

    /// A backoff with a given random source (deterministic in tests).
    pub fn with_rng(config: &BackoffConfig, rng: StdRng) -> Backoff {
        let init = config.init_backoff.as_secs_f64();
        Backoff {
            init,
            max: config.max_backoff.as_secs_f64(),
            base: config.base,
            next: init,
            rng,
        }
    }

    /// The next delay: random between the initial backoff and `base` times the previous one,
    /// capped ("decorrelated jitter").
    pub fn next_delay(&mut self) -> Duration {
        let range = self.init..=(self.next * self.base).max(self.init);
        let delay = self.rng.random_range(range).min(self.max);
        self.next = delay;
        Duration::from_secs_f64(delay)
    }
}

/// How long a 429 asks us to wait: the body's `retry_after_ms`, else `X-Retry-After-Ms`, else
/// `Retry-After` seconds; never less than `floor`.
pub fn rate_limit_wait(
    body_ms: Option<u64>,
    header_ms: Option<u64>,
    header_secs: Option<u64>,
    floor: Duration,
) -> Duration {
    let asked = body_ms
        .or(header_ms)
        .map(Duration::from_millis)
        .or(header_secs.map(Duration::from_secs))
        .unwrap_or(Duration::from_secs(1));
    asked.max(floor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn backoff_grows_within_bounds_and_is_reproducible() {
        let config = BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 3.0,
        };
        let run = || {
            let mut b = Backoff::with_rng(&config, StdRng::seed_from_u64(9));
            (0..20).map(|_| b.next_delay()).collect::<Vec<_>>()
        };
        let delays = run();
        assert_eq!(delays, run());
        let mut prev = config.init_backoff;
        for d in &delays {
            assert!(
                *d >= config.init_backoff && *d <= config.max_backoff,
                "{d:?}"
            );
            assert!(d.as_secs_f64() <= prev.as_secs_f64() * 3.0 + 1e-9);
            prev = *d;
        }
        assert!(delays.iter().any(|d| *d > Duration::from_millis(500)));
    }

    #[test]
    fn rate_limit_wait_prefers_the_body_then_headers_and_keeps_a_floor() {
        let floor = Duration::from_millis(50);
        assert_eq!(
            rate_limit_wait(Some(750), Some(10), Some(9), floor),
            Duration::from_millis(750)
        );
        assert_eq!(
            rate_limit_wait(None, Some(300), Some(1), floor),
            Duration::from_millis(300)
        );
        assert_eq!(
            rate_limit_wait(None, None, Some(2), floor),
            Duration::from_secs(2)
        );
        assert_eq!(rate_limit_wait(Some(0), None, None, floor), floor);
        assert_eq!(
            rate_limit_wait(None, None, None, floor),
            Duration::from_secs(1)
        );
    }
}

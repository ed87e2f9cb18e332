//! Durations as people write them on the command line (`90`, `90s`, `10m`, `1h`, `7d`) and
//! read them in messages (`3 min 20 s`): one place for both, below every module that needs
//! them.

use std::time::Duration;

/// Why a duration could not be read; each names the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// No number where one was expected.
    #[error("{0:?} is not a duration: use seconds, or a number with s, m, h or d")]
    NotANumber(String),
    /// A unit other than s, m, h, d.
    #[error("unknown unit {unit:?} in {text:?}: use s, m, h or d")]
    Unit {
        /// The unit as written.
        unit: String,
        /// The whole text.
        text: String,
    },
    /// Zero where a duration must pass.
    #[error("must be at least one second")]
    Zero,
}

/// "1 h 02 min", "3 min 20 s", "12 s".
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86_400 && s.is_multiple_of(86_400) {
        format!("{} day{}", s / 86_400, if s == 86_400 { "" } else { "s" })
    } else if s >= 3600 {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// `90`, `90s`, `10m`, `1h`.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| DurationError::NotANumber(text.to_string()))?;
    let secs = match unit.trim() {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        other => {
            return Err(DurationError::Unit {
                unit: other.to_string(),
                text: text.to_string(),
            })
        }
    };
    if secs == 0 {
        return Err(DurationError::Zero);
    }
    Ok(Duration::from_secs(secs))
}

/// A duration as [`parse`] reads it, or `0` for none.
pub fn parse_or_zero(text: &str) -> Result<Duration, DurationError> {
    let digits = text.trim().trim_end_matches(['s', 'm', 'h', 'd']);
    match digits.parse::<u64>() {
        Ok(0) => Ok(Duration::ZERO),
        _ => parse(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_written_and_print_as_people_say_them() {
        assert_eq!(parse("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse(" 10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse("0"), Err(DurationError::Zero));
        assert!(parse("5 years")
            .unwrap_err()
            .to_string()
            .contains("unknown unit \"years\""));
        assert!(parse("soon")
            .unwrap_err()
            .to_string()
            .contains("not a duration"));
        assert_eq!(parse_or_zero("0d"), Ok(Duration::ZERO));
        assert_eq!(human(Duration::from_secs(86_400 * 7)), "7 days");
        assert_eq!(human(Duration::from_secs(3_720)), "1 h 02 min");
        assert_eq!(human(Duration::from_secs(200)), "3 min 20 s");
        assert_eq!(human(Duration::from_millis(12_300)), "12.3 s");
    }
}

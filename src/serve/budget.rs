//! One memory budget for the whole server (`--memory-limit`): the memory limit of the one
//! DuckDB database all the clients' sessions run in ([`super::shared`]), which DuckDB shares
//! among the queries running. A lone client may use all of it; many together no more. DuckDB
//! spills large sorts, joins and aggregates beyond it into the server's scratch folder rather
//! than failing.
//!
//! Outside DuckDB's limit, each open result holds about four of DuckDB's batches (see
//! [`super::stream`]) and the rows a client asked for at once (an Execute's row limit, a
//! FETCH's count), and a COPY 1,024 rows.

use super::ServeError;

/// The least the budget may be: below it DuckDB cannot run the views' scans.
const LEAST: u64 = 64 << 20;

/// This machine's memory, or its cgroup's limit when that is lower (a container).
pub fn physical_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let total = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?
        * 1024;
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|m| m.trim().parse::<u64>().ok());
    Some(cgroup.map_or(total, |c| c.min(total)))
}

/// `budget` bytes, if DuckDB can work in them.
pub fn check(budget: u64) -> Result<u64, ServeError> {
    if budget < LEAST {
        return Err(ServeError::Start(format!(
            "--memory-limit {} is below the {} the clients' queries need: raise it",
            bytes(budget),
            bytes(LEAST)
        )));
    }
    Ok(budget)
}

/// Bytes as people read them (`1.5 GiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = "bytes";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    match unit {
        "bytes" => format!("{n} bytes"),
        _ => format!("{value:.1} {unit}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_too_small_is_refused() {
        assert_eq!(check(1 << 30).unwrap(), 1 << 30);
        let err = check(32 << 20).unwrap_err().to_string();
        assert!(
            err.contains("--memory-limit 32.0 MiB is below the 64.0 MiB"),
            "{err}"
        );
        assert!(physical_memory().unwrap() > 1 << 30);
        assert_eq!(bytes(1536 << 20), "1.5 GiB");
    }
}

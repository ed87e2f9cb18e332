//! One memory budget for the whole server (`--memory-limit`), split evenly among the clients.
//!
//! Each client has a DuckDB database of its own (its views, its `SET hspq.as_of`, its catalog
//! and its Landlock confinement are its own), so the budget cannot be one DuckDB setting shared
//! by all: each session's DuckDB gets `memory_limit = budget / --max-connections`, and since no
//! more sessions than that are open at once, no set of clients can take more than the budget
//! together. The price: a lone client gets its part, not the whole; DuckDB spills large sorts,
//! joins and aggregates beyond it into the server's scratch folder rather than failing.
//!
//! Outside DuckDB's limit, each open result holds about four of DuckDB's batches (see
//! [`super::stream`]) and the rows a client asked for at once (an Execute's row limit, a
//! FETCH's count), and a COPY 1,024 rows.

use super::ServeError;

/// The least a client's part may be: below it DuckDB cannot run the views' scans.
const LEAST_PART: u64 = 64 << 20;

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

/// Each client's part of `budget` bytes, or why it is too small.
pub fn part(budget: u64, max_connections: usize) -> Result<u64, ServeError> {
    let part = budget / max_connections.max(1) as u64;
    if part < LEAST_PART {
        return Err(ServeError::Start(format!(
            "--memory-limit {} over --max-connections {max_connections} leaves {} for each \
             client, below the {} a client needs: raise --memory-limit or lower \
             --max-connections",
            bytes(budget),
            bytes(part),
            bytes(LEAST_PART)
        )));
    }
    Ok(part)
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
    fn the_budget_is_split_and_a_part_too_small_is_refused() {
        assert_eq!(part(32 << 30, 32).unwrap(), 1 << 30);
        let err = part(1 << 30, 32).unwrap_err().to_string();
        assert!(err.contains("32.0 MiB for each client"), "{err}");
        assert!(physical_memory().unwrap() > 1 << 30);
        assert_eq!(bytes(1536 << 20), "1.5 GiB");
    }
}

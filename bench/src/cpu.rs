//! CPU time of another process, from `/proc/PID/stat`.
//!
//! utime + stime covers every thread the process ever had, exited ones included, so a thread pool that shrinks
//! during a phase cannot hide work. The unit is the clock tick (10 ms on Linux): phases are long enough that this
//! rounding stays a few percent of the figures reported.

use std::time::Duration;

/// Clock ticks per second (`getconf CLK_TCK`); 100 when it cannot be asked, which is what Linux uses everywhere.
pub fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// utime + stime of a `/proc/PID/stat` line. The command name (field 2) is in parentheses and may itself contain
/// spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(stat: &str, ticks_per_second: u64) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = utime + stime;
    Some(Duration::from_nanos(
        ticks.saturating_mul(1_000_000_000) / ticks_per_second.max(1),
    ))
}

/// A process's CPU time so far, or `None` when it is gone or unreadable.
pub fn process_cpu(pid: u32, ticks_per_second: u64) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat, ticks_per_second)
}

/// The CPU time so far of the live threads of `pid` whose name (`comm`) starts with `prefix`, e.g. `gatehouse-dp`
/// for the data plane's pingora threads. Exited threads are not counted, unlike [`process_cpu`]: use it for
/// long-lived thread pools.
pub fn threads_cpu(pid: u32, ticks_per_second: u64, prefix: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let name = stat
            .find('(')
            .zip(stat.rfind(')'))
            .map(|(a, b)| &stat[a + 1..b]);
        if name.is_some_and(|n| n.starts_with(prefix)) {
            total += parse_stat(&stat, ticks_per_second).unwrap_or_default();
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utime_and_stime_are_read_after_a_command_name_with_spaces_and_parentheses() {
        let line = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 9 0 1000 0 0";
        assert_eq!(parse_stat(line, 100), Some(Duration::from_millis(2870)));
    }

    #[test]
    fn a_truncated_stat_line_is_none_not_a_panic() {
        assert_eq!(parse_stat("12 (x) S 1 2", 100), None);
        assert_eq!(parse_stat("no parenthesis", 100), None);
    }

    #[test]
    fn the_cpu_time_of_this_process_can_be_read() {
        assert!(process_cpu(std::process::id(), clock_ticks()).is_some());
        assert_eq!(process_cpu(u32::MAX, 100), None);
        assert!(threads_cpu(std::process::id(), clock_ticks(), "").is_some());
        assert_eq!(threads_cpu(u32::MAX, 100, ""), None);
    }
}

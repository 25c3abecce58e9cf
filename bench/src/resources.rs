//! Memory and the open-files limit of a process, from `/proc/PID/status` and `/proc/PID/limits`, and a sampler of
//! the resident set during a phase.
//!
//! `VmHWM` is the peak resident set over the process's whole life (earlier phases included), so the peak of one
//! phase is taken by sampling `VmRSS` while it runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The value in kB of a `Key:   1234 kB` line of `/proc/PID/status`, e.g. `VmRSS` or `VmHWM`.
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// A field of `/proc/PID/status` in kB, or `None` when the process is gone or the field missing (kernel threads).
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    parse_status_kib(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        key,
    )
}

/// kB (the kernel's KiB) to MiB.
pub fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The soft limit on open files from the `Max open files` line of `/proc/PID/limits`; `None` for `unlimited` or
/// when the line is missing.
pub fn parse_open_files_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A process's soft limit on open files (`ulimit -n`), when it can be read.
pub fn open_files_limit(pid: u32) -> Option<u64> {
    parse_open_files_limit(&std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?)
}

/// Resident memory of a process around and during one phase, in kB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rss {
    /// `VmRSS` before the phase (and its warm-up).
    pub before_kib: u64,
    /// The largest `VmRSS` sampled while the phase ran.
    pub peak_kib: u64,
    /// `VmHWM` after the phase: the process's peak over its whole life.
    pub hwm_kib: Option<u64>,
    pub samples: usize,
}

/// Reads `VmRSS` of `pid` every `interval` on a thread of its own (so a busy client runtime cannot delay it) and
/// keeps the largest value.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(u64, usize)>,
}

impl RssSampler {
    pub fn start(pid: u32, interval: Duration) -> std::io::Result<RssSampler> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || {
                let (mut peak, mut samples) = (0, 0);
                loop {
                    if let Some(kib) = status_kib(pid, "VmRSS") {
                        peak = peak.max(kib);
                        samples += 1;
                    }
                    if stopped.load(Ordering::Relaxed) {
                        return (peak, samples);
                    }
                    std::thread::sleep(interval);
                }
            })?;
        Ok(RssSampler { stop, thread })
    }

    /// Takes a last sample and returns the peak and the number of samples.
    pub fn stop(self) -> (u64, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or((0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tgatehouse\nVmPeak:\t  912340 kB\nVmHWM:\t   98304 kB\nVmRSS:\t   65536 kB\n\
                          RssAnon:\t   40000 kB\nThreads:\t12\n";

    #[test]
    fn status_fields_are_read_by_exact_key_in_kib() {
        assert_eq!(parse_status_kib(STATUS, "VmRSS"), Some(65536));
        assert_eq!(parse_status_kib(STATUS, "VmHWM"), Some(98304));
        // `Rss` is not `RssAnon`: the key must be followed by its colon.
        assert_eq!(parse_status_kib(STATUS, "Rss"), None);
        assert_eq!(parse_status_kib("Name:\tkthreadd\n", "VmRSS"), None);
        assert_eq!(kib_to_mib(150 * 1024), 150.0);
    }

    #[test]
    fn the_soft_open_files_limit_is_the_first_number_of_its_line() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             96553                96553                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_files_limit(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_files_limit(unlimited), None);
        assert_eq!(parse_open_files_limit(""), None);
    }

    #[test]
    fn this_process_can_be_read_and_sampled() {
        let me = std::process::id();
        assert!(status_kib(me, "VmRSS").is_some_and(|k| k > 0));
        assert!(open_files_limit(me).is_some_and(|n| n > 0));
        assert_eq!(status_kib(u32::MAX, "VmRSS"), None);
        let sampler = RssSampler::start(me, Duration::from_millis(1)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let (peak, samples) = sampler.stop();
        assert!(peak > 0 && samples >= 2, "{peak} {samples}");
    }
}

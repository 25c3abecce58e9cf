//! The latency histogram of a rollup row: [`BUCKETS`] fixed buckets on a log scale (each bound about 1.6 times the
//! previous, 1-1.5-2.5-4-6-10 per decade), one column each (`h00` … `h29`), so that SQL sums them like any count.
//! Percentiles are interpolated linearly inside the bucket that holds the wanted rank; the top bucket is open and
//! ends at the largest duration seen (`duration_max`). An estimate is therefore in the same bucket as the exact
//! value (nearest rank) or, when the rank falls on a bucket's edge, in the one next to it.

/// How many buckets.
pub const BUCKETS: usize = 30;

/// The exclusive upper bound of bucket `i` (ms), for every bucket but the last, which holds 600 s and more.
pub const UPPER_MS: [i64; BUCKETS - 1] = [
    1, 2, 4, 6, 10, 15, 25, 40, 60, 100, 150, 250, 400, 600, 1_000, 1_500, 2_500, 4_000, 6_000,
    10_000, 15_000, 25_000, 40_000, 60_000, 100_000, 150_000, 250_000, 400_000, 600_000,
];

/// The column names, in bucket order (SQL text this module owns).
pub const COLUMNS: [&str; BUCKETS] = [
    "h00", "h01", "h02", "h03", "h04", "h05", "h06", "h07", "h08", "h09", "h10", "h11", "h12",
    "h13", "h14", "h15", "h16", "h17", "h18", "h19", "h20", "h21", "h22", "h23", "h24", "h25",
    "h26", "h27", "h28", "h29",
];

/// The bucket a duration falls in.
pub fn bucket_of(duration_ms: i64) -> usize {
    UPPER_MS.partition_point(|upper| *upper <= duration_ms)
}

/// Bucket `i`'s lower bound (inclusive).
pub fn lower_ms(i: usize) -> i64 {
    if i == 0 { 0 } else { UPPER_MS[i - 1] }
}

/// The `q` quantile (0 < q ≤ 1) of the durations counted in `counts`, whose largest is `max_ms`; `None` when no
/// duration was counted.
pub fn quantile(counts: &[i64; BUCKETS], max_ms: i64, q: f64) -> Option<f64> {
    let total: i64 = counts.iter().sum();
    if total <= 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0_i64;
    for (i, &count) in counts.iter().enumerate() {
        if count <= 0 {
            continue;
        }
        if (below + count) as f64 >= rank {
            let low = lower_ms(i) as f64;
            let high = (UPPER_MS.get(i).copied().unwrap_or(max_ms) as f64).max(low);
            let within = ((rank - below as f64) / count as f64).clamp(0.0, 1.0);
            // Never beyond the largest duration seen.
            return Some((low + within * (high - low)).min((max_ms as f64).max(low)));
        }
        below += count;
    }
    Some(max_ms as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_fall_in_their_bucket() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 1);
        assert_eq!(bucket_of(3), 2);
        assert_eq!(bucket_of(4), 3);
        assert_eq!(bucket_of(599_999), 28);
        assert_eq!(bucket_of(600_000), 29);
        assert_eq!(bucket_of(i64::MAX), 29);
        for (i, upper) in UPPER_MS.iter().enumerate() {
            assert_eq!(bucket_of(upper - 1), i);
            assert_eq!(bucket_of(*upper), i + 1);
            assert_eq!(lower_ms(i + 1), *upper);
        }
        assert!(UPPER_MS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn quantiles_are_interpolated_inside_the_bucket_of_the_rank() {
        let mut counts = [0; BUCKETS];
        assert_eq!(quantile(&counts, 0, 0.5), None);
        // 100 durations in [100, 150): the median is halfway through the bucket.
        counts[bucket_of(120)] = 100;
        assert_eq!(quantile(&counts, 149, 0.5), Some(125.0));
        // The largest duration caps the estimate.
        assert_eq!(quantile(&counts, 130, 1.0), Some(130.0));
        // The open top bucket ends at the largest duration.
        let mut top = [0; BUCKETS];
        top[BUCKETS - 1] = 2;
        assert_eq!(quantile(&top, 700_000, 1.0), Some(700_000.0));
        assert_eq!(quantile(&top, 700_000, 0.5), Some(650_000.0));
        // One duration of each of 1..=1000 ms: p50 and p99 land in the buckets of 500 and 990.
        let mut spread = [0; BUCKETS];
        for d in 1..=1000 {
            spread[bucket_of(d)] += 1;
        }
        let p50 = quantile(&spread, 1000, 0.5).unwrap();
        assert_eq!(bucket_of(p50 as i64), bucket_of(500), "{p50}");
        let p99 = quantile(&spread, 1000, 0.99).unwrap();
        assert!(bucket_of(p99 as i64).abs_diff(bucket_of(990)) <= 1, "{p99}");
    }
}

//! Cutting a time range into UTC buckets, and numbering a log's bucket in SQL.
//!
//! Hours and days have one length, so a log's bucket is integer arithmetic on its epoch-ms `created_at` (Unix time
//! has no leap seconds: every multiple of 86,400,000 ms is a UTC midnight). Months do not, so their first instants
//! are computed here and SQL picks a log's month with a `CASE` over them: a range of at most 400 days crosses at
//! most 14 of them. Every bucket is reported clipped to the range asked for, so the first and last may be partial.

use chrono::{DateTime, Datelike, NaiveDate, Utc};

/// The length of the buckets of a usage report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Hour,
    Day,
    /// Calendar months in UTC, from the 1st at 00:00.
    Month,
    /// One bucket: the whole range.
    Total,
}

impl Interval {
    /// The name the API uses.
    pub fn name(self) -> &'static str {
        match self {
            Interval::Hour => "hour",
            Interval::Day => "day",
            Interval::Month => "month",
            Interval::Total => "total",
        }
    }
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// How SQL numbers a log's bucket, from 0 for the bucket holding the range's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketNumber {
    /// `(created_at - origin) / width`: exact integer division, since every log counted is at or after the start,
    /// itself at or after `origin`.
    Width { origin_ms: i64, width_ms: i64 },
    /// The number of `starts` at or before `created_at`: `CASE WHEN created_at < starts[0] THEN 0 WHEN … ELSE n END`.
    /// Empty: every log is in bucket 0.
    Starts(Vec<i64>),
}

/// A range `[start_ms, end_ms)` cut into buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buckets {
    pub start_ms: i64,
    pub end_ms: i64,
    pub number: BucketNumber,
}

impl Buckets {
    /// The buckets of `interval` over `[start_ms, end_ms)`; `start_ms < end_ms`.
    pub fn new(interval: Interval, start_ms: i64, end_ms: i64) -> Self {
        let width = |width_ms: i64| BucketNumber::Width {
            origin_ms: start_ms.div_euclid(width_ms) * width_ms,
            width_ms,
        };
        let number = match interval {
            Interval::Hour => width(HOUR_MS),
            Interval::Day => width(DAY_MS),
            Interval::Month => BucketNumber::Starts(month_starts(start_ms, end_ms)),
            Interval::Total => BucketNumber::Starts(vec![]),
        };
        Self {
            start_ms,
            end_ms,
            number,
        }
    }

    /// Where bucket `index` begins and ends, clipped to the range.
    pub fn bounds(&self, index: i64) -> (i64, i64) {
        let (start, end) = match &self.number {
            BucketNumber::Width {
                origin_ms,
                width_ms,
            } => {
                let start = origin_ms.saturating_add(index.saturating_mul(*width_ms));
                (start, start.saturating_add(*width_ms))
            }
            BucketNumber::Starts(starts) => {
                let at = |i: i64| -> Option<i64> {
                    usize::try_from(i).ok().and_then(|i| starts.get(i)).copied()
                };
                (
                    at(index - 1).unwrap_or(self.start_ms),
                    at(index).unwrap_or(self.end_ms),
                )
            }
        };
        (start.max(self.start_ms), end.min(self.end_ms))
    }
}

/// The first instants of the UTC months that begin strictly inside `(start_ms, end_ms)`.
fn month_starts(start_ms: i64, end_ms: i64) -> Vec<i64> {
    let Some(start) = DateTime::<Utc>::from_timestamp_millis(start_ms) else {
        return vec![];
    };
    let (mut year, mut month) = (start.year(), start.month());
    let mut out = Vec::new();
    loop {
        (year, month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        let Some(first) = NaiveDate::from_ymd_opt(year, month, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp_millis())
        else {
            return out;
        };
        if first >= end_ms {
            return out;
        }
        out.push(first);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    fn text(ms: i64) -> String {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    fn bounds(b: &Buckets, index: i64) -> (String, String) {
        let (s, e) = b.bounds(index);
        (text(s), text(e))
    }

    #[test]
    fn hours_and_days_are_aligned_in_utc_and_clipped_to_the_range() {
        for (interval, start, end, index, want) in [
            (
                Interval::Hour,
                "2027-03-01T10:30:00Z",
                "2027-03-01T13:15:00Z",
                0,
                ("2027-03-01T10:30:00Z", "2027-03-01T11:00:00Z"),
            ),
            (
                Interval::Hour,
                "2027-03-01T10:30:00Z",
                "2027-03-01T13:15:00Z",
                1,
                ("2027-03-01T11:00:00Z", "2027-03-01T12:00:00Z"),
            ),
            (
                Interval::Hour,
                "2027-03-01T10:30:00Z",
                "2027-03-01T13:15:00Z",
                3,
                ("2027-03-01T13:00:00Z", "2027-03-01T13:15:00Z"),
            ),
            (
                Interval::Day,
                "2027-03-01T10:30:00+02:00",
                "2027-03-04T00:00:00Z",
                0,
                ("2027-03-01T08:30:00Z", "2027-03-02T00:00:00Z"),
            ),
            (
                Interval::Day,
                "2027-03-01T10:30:00Z",
                "2027-03-04T00:00:00Z",
                2,
                ("2027-03-03T00:00:00Z", "2027-03-04T00:00:00Z"),
            ),
            (
                Interval::Day,
                "1969-12-31T12:00:00Z",
                "1970-01-02T00:00:00Z",
                1,
                ("1970-01-01T00:00:00Z", "1970-01-02T00:00:00Z"),
            ),
        ] {
            let b = Buckets::new(interval, ms(start), ms(end));
            assert_eq!(
                bounds(&b, index),
                (want.0.to_owned(), want.1.to_owned()),
                "{interval:?} {start}..{end} #{index}"
            );
        }
    }

    #[test]
    fn a_log_s_hour_or_day_is_its_distance_from_the_aligned_origin() {
        let b = Buckets::new(
            Interval::Hour,
            ms("2027-03-01T10:30:00Z"),
            ms("2027-03-02T00:00:00Z"),
        );
        let BucketNumber::Width {
            origin_ms,
            width_ms,
        } = b.number
        else {
            panic!("{b:?}")
        };
        assert_eq!(text(origin_ms), "2027-03-01T10:00:00Z");
        for (at, want) in [
            ("2027-03-01T10:30:00Z", 0),
            ("2027-03-01T10:59:59Z", 0),
            ("2027-03-01T11:00:00Z", 1),
            ("2027-03-01T23:59:59Z", 13),
        ] {
            assert_eq!((ms(at) - origin_ms) / width_ms, want, "{at}");
        }
    }

    #[test]
    fn months_start_on_the_first_in_utc_and_cross_the_year() {
        let b = Buckets::new(
            Interval::Month,
            ms("2026-11-20T00:00:00Z"),
            ms("2027-02-01T00:00:00Z"),
        );
        assert_eq!(
            b.number,
            BucketNumber::Starts(vec![ms("2026-12-01T00:00:00Z"), ms("2027-01-01T00:00:00Z")]),
            "a month starting exactly at the end is not a bucket"
        );
        assert_eq!(
            bounds(&b, 0),
            ("2026-11-20T00:00:00Z".into(), "2026-12-01T00:00:00Z".into())
        );
        assert_eq!(
            bounds(&b, 2),
            ("2027-01-01T00:00:00Z".into(), "2027-02-01T00:00:00Z".into())
        );
        let b = Buckets::new(
            Interval::Month,
            ms("2027-02-01T00:00:00Z"),
            ms("2027-03-01T00:00:01Z"),
        );
        assert_eq!(
            b.number,
            BucketNumber::Starts(vec![ms("2027-03-01T00:00:00Z")]),
            "a month starting exactly at the start is the first bucket's"
        );
        let year = Buckets::new(
            Interval::Month,
            ms("2026-01-15T00:00:00Z"),
            ms("2027-02-19T00:00:00Z"),
        );
        let BucketNumber::Starts(starts) = &year.number else {
            panic!()
        };
        assert_eq!(starts.len(), 13);
    }

    #[test]
    fn the_total_is_one_bucket_over_the_whole_range() {
        let b = Buckets::new(Interval::Total, 1_000, 9_000);
        assert_eq!(b.number, BucketNumber::Starts(vec![]));
        assert_eq!(b.bounds(0), (1_000, 9_000));
    }
}

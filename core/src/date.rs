//! Calendar dates and the market's clock.
//!
//! Options expire on calendar dates and "day volume" resets on the US options
//! market's trading day, which follows New York time. This module converts
//! between civil dates, days since the Unix epoch and timestamps, and knows the
//! US daylight-saving rule, so nothing here needs a time-zone database.
//! No I/O happens here.

use std::fmt;
use std::str::FromStr;

/// A proleptic Gregorian calendar date.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: i32,
    month: u8,
    day: u8,
}

/// Why a date could not be built or parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("expected a date as YYYY-MM-DD, got {0:?}")]
    Format(String),
    #[error("{year:04}-{month:02}-{day:02} is not a calendar date")]
    Invalid { year: i32, month: u32, day: u32 },
}

impl Date {
    /// Builds a date, checking that it exists on the calendar.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Result<Date, DateError> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err(DateError::Invalid { year, month, day });
        }
        Ok(Date {
            year,
            month: month as u8,
            day: day as u8,
        })
    }

    pub fn year(self) -> i32 {
        self.year
    }
    pub fn month(self) -> u32 {
        u32::from(self.month)
    }
    pub fn day(self) -> u32 {
        u32::from(self.day)
    }

    /// Days since 1970-01-01 (negative before it).
    pub fn days_since_epoch(self) -> i64 {
        // Howard Hinnant's days_from_civil.
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date `days` days after 1970-01-01.
    pub fn from_days_since_epoch(days: i64) -> Date {
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Date { year, month, day }
    }

    /// Monday = 0 … Sunday = 6.
    pub fn weekday(self) -> u32 {
        // 1970-01-01 was a Thursday (3).
        (self.days_since_epoch() + 3).rem_euclid(7) as u32
    }

    /// Signed number of days from `self` to `other`.
    pub fn days_until(self, other: Date) -> i64 {
        other.days_since_epoch() - self.days_since_epoch()
    }

    pub fn add_days(self, days: i64) -> Date {
        Date::from_days_since_epoch(self.days_since_epoch() + days)
    }

    /// The compact `YYYYMMDD` form used in per-day Redis keys.
    pub fn compact(self) -> String {
        format!("{:04}{:02}{:02}", self.year, self.month, self.day)
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl FromStr for Date {
    type Err = DateError;

    /// Parses `YYYY-MM-DD`.
    fn from_str(s: &str) -> Result<Date, DateError> {
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = b.get(r)?;
            if part.iter().all(u8::is_ascii_digit) {
                std::str::from_utf8(part).ok()?.parse().ok()
            } else {
                None
            }
        };
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(DateError::Format(s.to_string()));
        }
        match (digits(0..4), digits(5..7), digits(8..10)) {
            (Some(y), Some(m), Some(d)) => Date::from_ymd(y as i32, m, d),
            _ => Err(DateError::Format(s.to_string())),
        }
    }
}

/// A date travels as `YYYY-MM-DD` (the protocol's `day` frames).
impl serde::Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Date {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

const MS_PER_DAY: i64 = 86_400_000;
const MS_PER_HOUR: i64 = 3_600_000;

/// The New York offset from UTC, in hours, at the instant `ts_ms`:
/// -4 during US daylight time (second Sunday of March 02:00 local to the first
/// Sunday of November 02:00 local), -5 otherwise.
pub fn new_york_offset_hours(ts_ms: i64) -> i64 {
    let utc_date = Date::from_days_since_epoch(ts_ms.div_euclid(MS_PER_DAY));
    let year = utc_date.year();
    // DST starts at 02:00 EST = 07:00 UTC, ends at 02:00 EDT = 06:00 UTC.
    let start = nth_sunday(year, 3, 2).days_since_epoch() * MS_PER_DAY + 7 * MS_PER_HOUR;
    let end = nth_sunday(year, 11, 1).days_since_epoch() * MS_PER_DAY + 6 * MS_PER_HOUR;
    if (start..end).contains(&ts_ms) {
        -4
    } else {
        -5
    }
}

fn nth_sunday(year: i32, month: u32, n: i64) -> Date {
    let first = Date {
        year,
        month: month as u8,
        day: 1,
    };
    let to_sunday = (6 - i64::from(first.weekday())).rem_euclid(7);
    first.add_days(to_sunday + 7 * (n - 1))
}

/// The New York calendar date at `ts_ms` (ms since the epoch): the trading day
/// that day volume, DTE and per-day keys belong to.
pub fn market_date(ts_ms: i64) -> Date {
    let local = ts_ms + new_york_offset_hours(ts_ms) * MS_PER_HOUR;
    Date::from_days_since_epoch(local.div_euclid(MS_PER_DAY))
}

/// Milliseconds since local New York midnight at `ts_ms`.
pub fn market_time_of_day_ms(ts_ms: i64) -> i64 {
    let local = ts_ms + new_york_offset_hours(ts_ms) * MS_PER_HOUR;
    local.rem_euclid(MS_PER_DAY)
}

/// The instant (ms since the epoch) of `hh:mm` New York time on `date`.
pub fn market_instant_ms(date: Date, hh: i64, mm: i64) -> i64 {
    let naive = date.days_since_epoch() * MS_PER_DAY + hh * MS_PER_HOUR + mm * 60_000;
    // The offset at noon UTC of that day is the offset for the trading session.
    let offset = new_york_offset_hours(date.days_since_epoch() * MS_PER_DAY + 12 * MS_PER_HOUR);
    naive - offset * MS_PER_HOUR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_round_trip() {
        for days in [-800_000_i64, -1, 0, 1, 19_000, 20_440, 2_000_000] {
            assert_eq!(Date::from_days_since_epoch(days).days_since_epoch(), days);
        }
        assert_eq!(Date::from_days_since_epoch(0).to_string(), "1970-01-01");
        assert_eq!(
            Date::from_ymd(2024, 12, 20).map(|d| d.weekday()),
            Ok(4) // Friday
        );
    }

    #[test]
    fn parse_and_reject() {
        assert_eq!(
            "2026-12-18".parse::<Date>().map(|d| d.compact()),
            Ok("20261218".into())
        );
        assert!("2026-02-29".parse::<Date>().is_err());
        assert!("2024-02-29".parse::<Date>().is_ok());
        assert!("2026-13-01".parse::<Date>().is_err());
        assert!("2026/12/18".parse::<Date>().is_err());
        assert!("26-12-18".parse::<Date>().is_err());
    }

    #[test]
    fn new_york_dst() {
        // 2026-03-08 is the second Sunday of March; 2026-11-01 the first of November.
        let before = market_instant_ms(
            Date::from_ymd(2026, 3, 6).unwrap_or_else(|e| panic!("{e}")),
            9,
            30,
        );
        let after = market_instant_ms(
            Date::from_ymd(2026, 3, 9).unwrap_or_else(|e| panic!("{e}")),
            9,
            30,
        );
        assert_eq!(new_york_offset_hours(before), -5);
        assert_eq!(new_york_offset_hours(after), -4);
        // 9:30 New York is 14:30 UTC in winter and 13:30 UTC in summer.
        assert_eq!(
            before.rem_euclid(MS_PER_DAY),
            14 * MS_PER_HOUR + 30 * 60_000
        );
        assert_eq!(after.rem_euclid(MS_PER_DAY), 13 * MS_PER_HOUR + 30 * 60_000);
        assert_eq!(market_time_of_day_ms(after), 9 * MS_PER_HOUR + 30 * 60_000);
        // 23:30 New York on Dec 18 is already Dec 19 in UTC, but still Dec 18's session.
        let late = market_instant_ms(
            Date::from_ymd(2026, 12, 18).unwrap_or_else(|e| panic!("{e}")),
            23,
            30,
        );
        assert_eq!(market_date(late).to_string(), "2026-12-18");
    }
}

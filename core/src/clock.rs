//! Times as users type them, and where they fall in the flow stream.
//!
//! [`parse_time`] reads `10:30`, `10:30:15`, `2026-12-04 10:30`,
//! `2026-12-04` (the day's start), each with an optional zone (`ET`/`NY`
//! New York, the default; `EST`/`EDT` fixed; `UTC`/`GMT`/`Z`). A time without
//! a date is today in New York, as of the caller's `now_ms`; a time after
//! `now_ms` is refused. [`Moment`] is what `--since`/`--until` take: a cursor
//! or a time. A time T is the stream position just before the first event
//! at T ([`position_before`]). No I/O, no clock: callers pass "now".

use std::fmt;

use crate::cursor::Cursor;
use crate::date::{market_date, new_york_offset_hours, Date};

const MS_PER_SECOND: i64 = 1_000;
const MS_PER_HOUR: i64 = 3_600_000;
const MS_PER_DAY: i64 = 86_400_000;

/// The forms [`parse_time`] accepts, for error messages and help.
pub const TIME_FORMS: &str = "HH:MM[:SS] or YYYY-MM-DD [HH:MM[:SS]], then ET (default), UTC or Z";

/// Why a typed time was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("{text:?} is not a time: {why}; use {TIME_FORMS}")]
    Unparsed { text: String, why: String },
    #[error("{} is in the future (now is {})", format_ny(*at_ms), format_ny(*now_ms))]
    Future { at_ms: i64, now_ms: i64 },
}

/// A zone a typed time may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Zone {
    NewYork,
    /// A fixed offset from UTC, in hours.
    Fixed(i64),
}

/// The instant (ms since the epoch) `text` names, as of `now_ms`; refused if
/// it does not parse or is after `now_ms`.
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, TimeError> {
    let unparsed = |why: &str| TimeError::Unparsed {
        text: text.to_string(),
        why: why.to_string(),
    };
    let (rest, zone) = split_zone(text.trim());
    let mut words = rest.split_whitespace();
    let (date, clock) = match (words.next(), words.next(), words.next()) {
        (Some(a), None, None) if a.contains(':') => (None, Some(a)),
        (Some(a), None, None) => (Some(a), None),
        (Some(a), Some(b), None) => (Some(a), Some(b)),
        (None, ..) => return Err(unparsed("it is empty")),
        _ => return Err(unparsed("too many words")),
    };
    let date = match date {
        Some(d) => Some(d.parse::<Date>().map_err(|_| unparsed("bad date"))?),
        None => None,
    };
    let ms_of_day = match clock {
        Some(c) => clock_ms(c).ok_or_else(|| unparsed("bad time of day"))?,
        None => 0,
    };
    let date = date.unwrap_or_else(|| match zone {
        Zone::NewYork => market_date(now_ms),
        Zone::Fixed(h) => {
            Date::from_days_since_epoch((now_ms + h * MS_PER_HOUR).div_euclid(MS_PER_DAY))
        }
    });
    let local = date.days_since_epoch() * MS_PER_DAY + ms_of_day;
    let at_ms = match zone {
        Zone::NewYork => new_york_instant(local),
        Zone::Fixed(h) => local - h * MS_PER_HOUR,
    };
    if at_ms > now_ms {
        return Err(TimeError::Future { at_ms, now_ms });
    }
    Ok(at_ms)
}

/// Splits a trailing zone off `text` (`10:30Z`, `10:30 UTC`); New York if none.
fn split_zone(text: &str) -> (&str, Zone) {
    let upper = text.to_ascii_uppercase();
    for (name, zone) in [
        ("UTC", Zone::Fixed(0)),
        ("GMT", Zone::Fixed(0)),
        ("EST", Zone::Fixed(-5)),
        ("EDT", Zone::Fixed(-4)),
        ("ET", Zone::NewYork),
        ("NY", Zone::NewYork),
        ("Z", Zone::Fixed(0)),
    ] {
        if upper.ends_with(name) {
            let rest = &text[..text.len() - name.len()];
            // A zone follows a digit or a space, never part of a word.
            if rest.ends_with(|c: char| c.is_ascii_digit() || c.is_whitespace()) {
                return (rest.trim_end(), zone);
            }
        }
    }
    (text, Zone::NewYork)
}

/// `HH:MM` or `HH:MM:SS` as ms since midnight.
fn clock_ms(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split(':').collect();
    let num = |p: &str, max: i64| -> Option<i64> {
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok().filter(|n| *n <= max)
    };
    let (h, m, s) = match parts.as_slice() {
        [h, m] => (num(h, 23)?, num(m, 59)?, 0),
        [h, m, s] => (num(h, 23)?, num(m, 59)?, num(s, 59)?),
        _ => return None,
    };
    Some(h * MS_PER_HOUR + m * 60_000 + s * MS_PER_SECOND)
}

/// The instant at which New York clocks show `local` (ms since the epoch
/// read as New York wall time). A wall time that happens twice (the hour
/// clocks fall back) is its first, daylight one; one that never happens
/// (the hour clocks spring forward) is read as standard time, an hour later
/// on the clock.
fn new_york_instant(local: i64) -> i64 {
    let daylight = local + 4 * MS_PER_HOUR;
    if new_york_offset_hours(daylight) == -4 {
        daylight
    } else {
        local + 5 * MS_PER_HOUR
    }
}

/// `at_ms` as New York wall time, `YYYY-MM-DD HH:MM:SS ET`.
pub fn format_ny(at_ms: i64) -> String {
    let local = at_ms + new_york_offset_hours(at_ms) * MS_PER_HOUR;
    let date = Date::from_days_since_epoch(local.div_euclid(MS_PER_DAY));
    let s = local.rem_euclid(MS_PER_DAY) / MS_PER_SECOND;
    format!("{date} {:02}:{:02}:{:02} ET", s / 3600, s / 60 % 60, s % 60)
}

/// The stream position just before the first event at or after `at_ms`:
/// resuming after it gives the events from `at_ms` on.
pub fn position_before(at_ms: i64) -> Cursor {
    match u64::try_from(at_ms) {
        Ok(0) | Err(_) => Cursor::ZERO,
        Ok(ms) => Cursor::new(ms - 1, u64::MAX),
    }
}

/// The first stream position at `at_ms`: the events before it are those
/// before `at_ms`.
pub fn position_at(at_ms: i64) -> Cursor {
    Cursor::new(u64::try_from(at_ms).unwrap_or(0), 0)
}

/// A point in the stream as a user names it: a cursor, or a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moment {
    Cursor(Cursor),
    /// ms since the epoch.
    Time(i64),
}

impl Moment {
    /// Reads a cursor (`<ms>-<seq>`, or `<ms>`) or a time ([`parse_time`]), as of `now_ms`. A time or a cursor after
    /// `now_ms` is refused.
    pub fn parse(text: &str, now_ms: i64) -> Result<Moment, TimeError> {
        let t = text.trim();
        // No time form parses as a cursor: times have a `:`, dates two `-`.
        if let Ok(c) = t.parse::<Cursor>() {
            let at_ms = i64::try_from(c.ms).unwrap_or(i64::MAX);
            if at_ms > now_ms {
                return Err(TimeError::Future { at_ms, now_ms });
            }
            return Ok(Moment::Cursor(c));
        }
        parse_time(t, now_ms).map(Moment::Time)
    }

    /// Where a stream read that starts at this moment resumes after: the
    /// cursor itself, or just before the time's first event.
    pub fn after(self) -> Cursor {
        match self {
            Moment::Cursor(c) => c,
            Moment::Time(ms) => position_before(ms),
        }
    }

    /// The first position not before this moment: events before it are
    /// strictly before the moment (a cursor counts as after itself).
    pub fn start(self) -> Cursor {
        match self {
            Moment::Cursor(c) => c.successor(),
            Moment::Time(ms) => position_at(ms),
        }
    }
}

impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Moment::Cursor(c) => write!(f, "cursor {c}"),
            Moment::Time(ms) => f.write_str(&format_ny(*ms)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ms since the epoch of a UTC wall time.
    fn utc(y: i32, mo: u32, d: u32, h: i64, mi: i64, s: i64) -> i64 {
        let date = Date::from_ymd(y, mo, d).unwrap_or_else(|e| panic!("{e}"));
        date.days_since_epoch() * MS_PER_DAY + h * MS_PER_HOUR + mi * 60_000 + s * 1_000
    }

    fn ok(text: &str, now: i64) -> i64 {
        parse_time(text, now).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    // Monday 2026-12-07 18:00 UTC = 13:00 EST.
    const NOW: (i32, u32, u32) = (2026, 12, 7);

    #[test]
    fn clock_times_are_today_in_new_york() {
        let now = utc(NOW.0, NOW.1, NOW.2, 18, 0, 0);
        assert_eq!(ok("10:30", now), utc(2026, 12, 7, 15, 30, 0));
        assert_eq!(ok("10:30:15", now), utc(2026, 12, 7, 15, 30, 15));
        assert_eq!(ok(" 09:30 ET ", now), utc(2026, 12, 7, 14, 30, 0));
        assert_eq!(ok("9:30 ny", now), utc(2026, 12, 7, 14, 30, 0));
        assert_eq!(ok("10:30 UTC", now), utc(2026, 12, 7, 10, 30, 0));
        assert_eq!(ok("10:30Z", now), utc(2026, 12, 7, 10, 30, 0));
        assert_eq!(ok("10:30 EDT", now), utc(2026, 12, 7, 14, 30, 0));
        // 02:00 UTC on the 8th is still the 7th in New York.
        let late = utc(2026, 12, 8, 2, 0, 0);
        assert_eq!(ok("20:00", late), utc(2026, 12, 8, 1, 0, 0));
    }

    #[test]
    fn dates_and_date_times() {
        let now = utc(NOW.0, NOW.1, NOW.2, 18, 0, 0);
        assert_eq!(ok("2026-12-04", now), utc(2026, 12, 4, 5, 0, 0));
        assert_eq!(ok("2026-12-04 10:30", now), utc(2026, 12, 4, 15, 30, 0));
        assert_eq!(ok("2026-07-01 10:30", now), utc(2026, 7, 1, 14, 30, 0));
        assert_eq!(
            ok("2026-12-04 10:30:05 UTC", now),
            utc(2026, 12, 4, 10, 30, 5)
        );
    }

    #[test]
    fn daylight_saving_boundaries() {
        let now = utc(2026, 12, 7, 18, 0, 0);
        // 2026-03-08: clocks go 02:00 EST -> 03:00 EDT (07:00 UTC).
        assert_eq!(ok("2026-03-08 01:59", now), utc(2026, 3, 8, 6, 59, 0));
        assert_eq!(ok("2026-03-08 03:00", now), utc(2026, 3, 8, 7, 0, 0));
        // 02:30 never happens: read as standard time, 03:30 EDT.
        assert_eq!(ok("2026-03-08 02:30", now), utc(2026, 3, 8, 7, 30, 0));
        assert_eq!(ok("2026-03-08", now), utc(2026, 3, 8, 5, 0, 0));
        // 2026-11-01: clocks go 02:00 EDT -> 01:00 EST (06:00 UTC).
        assert_eq!(ok("2026-11-01 00:30", now), utc(2026, 11, 1, 4, 30, 0));
        // 01:30 happens twice: the first, daylight one.
        assert_eq!(ok("2026-11-01 01:30", now), utc(2026, 11, 1, 5, 30, 0));
        assert_eq!(ok("2026-11-01 02:30", now), utc(2026, 11, 1, 7, 30, 0));
        // "Today" on the day clocks change, early and late.
        let morning = utc(2026, 3, 8, 16, 0, 0);
        assert_eq!(ok("09:30", morning), utc(2026, 3, 8, 13, 30, 0));
        assert_eq!(ok("00:30", morning), utc(2026, 3, 8, 5, 30, 0));
    }

    #[test]
    fn bad_input_says_what_is_accepted() {
        let now = utc(NOW.0, NOW.1, NOW.2, 18, 0, 0);
        for bad in [
            "",
            "   ",
            "10",
            "25:00",
            "10:60",
            "10:30:61",
            "10:30 PST",
            "1030",
            "10:3x",
            "2026-13-01",
            "2026-12-04 10:30 extra",
            "yesterday",
            "10:30:15:01",
            "-1:30",
            "1:2:3 Z Z",
        ] {
            match parse_time(bad, now) {
                Err(TimeError::Unparsed { text, why }) => {
                    assert_eq!(text, bad);
                    assert!(!why.is_empty());
                    let msg = parse_time(bad, now).err().map(|e| e.to_string());
                    assert!(msg.is_some_and(|m| m.contains("HH:MM")), "{bad}");
                }
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn the_future_is_refused() {
        let now = utc(NOW.0, NOW.1, NOW.2, 18, 0, 0);
        let e = parse_time("13:00:01", now).err();
        assert!(matches!(e, Some(TimeError::Future { .. })), "{e:?}");
        let msg = e.map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            msg,
            "2026-12-07 13:00:01 ET is in the future (now is 2026-12-07 13:00:00 ET)"
        );
        assert_eq!(ok("13:00", now), now);
        assert!(parse_time("2026-12-08", now).is_err());
    }

    #[test]
    fn moments_are_cursors_or_times() {
        let now = utc(NOW.0, NOW.1, NOW.2, 18, 0, 0);
        let c = Cursor::new(now as u64 - 5, 3);
        assert_eq!(Moment::parse(&c.to_string(), now), Ok(Moment::Cursor(c)));
        // The stream's very start, as scripts write it.
        assert_eq!(Moment::parse("0-0", now), Ok(Moment::Cursor(Cursor::ZERO)));
        assert_eq!(
            Moment::parse(&(now - 5).to_string(), now),
            Ok(Moment::Cursor(Cursor::new(now as u64 - 5, 0)))
        );
        assert!(matches!(
            Moment::parse(&format!("{}-0", now + 1), now),
            Err(TimeError::Future { .. })
        ));
        let t = Moment::parse("10:30", now).unwrap_or(Moment::Time(0));
        assert_eq!(t, Moment::Time(utc(2026, 12, 7, 15, 30, 0)));
        assert!(Moment::parse("2026-12-04", now).is_ok_and(|m| matches!(m, Moment::Time(_))));
        // A time T: resume just before its first event; stop before T.
        let at = utc(2026, 12, 7, 15, 30, 0) as u64;
        assert_eq!(t.after(), Cursor::new(at - 1, u64::MAX));
        assert_eq!(t.after().successor(), Cursor::new(at, 0));
        assert_eq!(t.start(), Cursor::new(at, 0));
        assert_eq!(Moment::Cursor(c).after(), c);
        assert_eq!(Moment::Cursor(c).start(), c.successor());
        assert_eq!(position_before(0), Cursor::ZERO);
    }

    #[test]
    fn new_york_wall_time_is_formatted() {
        assert_eq!(
            format_ny(utc(2026, 12, 7, 15, 30, 5)),
            "2026-12-07 10:30:05 ET"
        );
        assert_eq!(
            format_ny(utc(2026, 7, 1, 4, 0, 0)),
            "2026-07-01 00:00:00 ET"
        );
    }
}

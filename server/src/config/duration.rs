//! Durations as operators write them: `250ms`, `90s`, `15m`, `24h`, `2d`, or a
//! bare number of seconds; the same text on the command line and in the file.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A [`Duration`] read and written in the units above.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

/// The units, largest first, with their length in milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

impl FromStr for HumanDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{s:?} is not a duration like 250ms, 90s, 15m, 24h or 2d"))?;
        let per = match unit {
            "" => 1_000,
            _ => UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .map(|(_, ms)| *ms)
                .ok_or_else(|| {
                    format!("unknown duration unit {unit:?} in {s:?}; use ms, s, m, h or d")
                })?,
        };
        let ms = n
            .checked_mul(per)
            .ok_or_else(|| format!("{s:?} is too long a duration"))?;
        Ok(HumanDuration(Duration::from_millis(ms)))
    }
}

impl fmt::Display for HumanDuration {
    /// The largest unit that states the duration exactly (`0s` for zero).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        let (name, per) = UNITS
            .iter()
            .find(|(_, per)| ms % u128::from(*per) == 0)
            .copied()
            .unwrap_or(("ms", 1));
        write!(f, "{}{name}", ms / u128::from(per))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    /// A string in the units above, or a whole number of seconds.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Seconds(u64),
            Text(String),
        }
        match Written::deserialize(d)? {
            Written::Seconds(s) => Ok(HumanDuration(Duration::from_secs(s))),
            Written::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Duration, String> {
        s.parse::<HumanDuration>().map(|d| d.0)
    }

    #[test]
    fn units_parse_and_print_back() {
        assert_eq!(parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("15"), Ok(Duration::from_secs(15)));
        for text in ["36h", "2d", "90s", "15m", "250ms", "0s", "1500ms"] {
            let d: HumanDuration = text.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(d.to_string(), text);
        }
    }

    #[test]
    fn bad_durations_say_what_is_expected() {
        let error = |s: &str| parse(s).err().unwrap_or_default();
        assert!(error("5x").contains("unknown duration unit"));
        assert!(error("h").contains("not a duration"));
        assert!(parse("-5s").is_err());
        assert!(error("99999999999999999d").contains("too long"));
    }
}

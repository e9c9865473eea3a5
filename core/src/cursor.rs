//! Cursors: positions in the flow stream.
//!
//! A cursor is a Redis stream entry id, `<ms>-<seq>`. Every flow event carries
//! its own cursor as `id`; a client that remembers the last one it saw can ask
//! for everything after it. The memory bus hands out ids of the same form, so a
//! cursor means the same thing on either bus. No I/O happens here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A stream entry id. Ordered as Redis orders them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    pub ms: u64,
    pub seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cursor {0:?} is not a stream id of the form <ms>-<seq>")]
pub struct CursorError(pub String);

impl Cursor {
    pub const ZERO: Cursor = Cursor { ms: 0, seq: 0 };

    pub fn new(ms: u64, seq: u64) -> Cursor {
        Cursor { ms, seq }
    }

    /// The smallest id strictly greater than this one.
    pub fn successor(self) -> Cursor {
        match self.seq.checked_add(1) {
            Some(seq) => Cursor { ms: self.ms, seq },
            None => Cursor {
                ms: self.ms + 1,
                seq: 0,
            },
        }
    }

    /// The greatest id strictly smaller than this one, if any.
    pub fn predecessor(self) -> Option<Cursor> {
        match (self.ms, self.seq) {
            (0, 0) => None,
            (ms, 0) => Some(Cursor::new(ms - 1, u64::MAX)),
            (ms, seq) => Some(Cursor::new(ms, seq - 1)),
        }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl FromStr for Cursor {
    type Err = CursorError;

    /// Accepts `<ms>-<seq>`, or `<ms>` alone (meaning `<ms>-0`).
    fn from_str(s: &str) -> Result<Cursor, CursorError> {
        let err = || CursorError(s.to_string());
        let (ms, seq) = match s.split_once('-') {
            Some((ms, seq)) => (ms, seq),
            None => (s, "0"),
        };
        let num = |p: &str| -> Result<u64, CursorError> {
            if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
                return Err(err());
            }
            p.parse().map_err(|_| err())
        };
        Ok(Cursor {
            ms: num(ms)?,
            seq: num(seq)?,
        })
    }
}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cursor, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predecessors() {
        assert_eq!(Cursor::new(5, 2).predecessor(), Some(Cursor::new(5, 1)));
        assert_eq!(
            Cursor::new(5, 0).predecessor(),
            Some(Cursor::new(4, u64::MAX))
        );
        assert_eq!(Cursor::ZERO.predecessor(), None);
    }

    #[test]
    fn parse_format_order() {
        let a: Cursor = "1732812345678-3".parse().unwrap_or_default();
        assert_eq!(a, Cursor::new(1_732_812_345_678, 3));
        assert_eq!(a.to_string(), "1732812345678-3");
        assert_eq!("5".parse::<Cursor>(), Ok(Cursor::new(5, 0)));
        assert!(Cursor::new(5, 9) < Cursor::new(6, 0));
        assert_eq!(Cursor::new(5, u64::MAX).successor(), Cursor::new(6, 0));
        for bad in ["", "-", "1-", "-1", "a-1", "1-2-3", "1 -2", "+1-2"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad}");
        }
    }
}

//! Sizes in bytes as operators write them: `4194304`, `4MiB`, `512M`, `1GiB`
//! (powers of 1024, any case); the same text on the command line and in the file.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::gateway::parse_byte_size;

/// A byte count read and written in the units above.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub usize);

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        parse_byte_size(s).map(ByteSize).map_err(|e| e.to_string())
    }
}

impl fmt::Display for ByteSize {
    /// The largest unit that states the size exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        let unit = [("GiB", 30), ("MiB", 20), ("KiB", 10)]
            .into_iter()
            .find(|(_, shift)| n != 0 && n % (1usize << shift) == 0);
        match unit {
            Some((name, shift)) => write!(f, "{}{name}", n >> shift),
            None => write!(f, "{n}"),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    /// A whole number of bytes, or a string with a unit.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Bytes(usize),
            Text(String),
        }
        match Written::deserialize(d)? {
            Written::Bytes(n) => Ok(ByteSize(n)),
            Written::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_back_in_the_largest_exact_unit() {
        for (text, bytes) in [
            ("512MiB", 512 << 20),
            ("4MiB", 4 << 20),
            ("1GiB", 1 << 30),
            ("1000", 1000),
            ("64KiB", 65536),
        ] {
            let size: ByteSize = text.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(size.0, bytes);
            assert_eq!(size.to_string(), text);
        }
        assert!("12 parsecs".parse::<ByteSize>().is_err());
    }
}

//! The event model: raw prints in, flow events out.
//!
//! A [`Print`] is one option trade as a feed reports it, with the quote and
//! context the feed knew at that moment. A [`FlowEvent`] is what traders see:
//! one order, possibly assembled from many prints (a sweep), classified and
//! scored. Its JSON form is the product's public schema (`docs/schema.md`,
//! version [`SCHEMA_VERSION`]); field names here are that schema.
//! No I/O happens here.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::occ::{Contract, Right};

/// Version of the flow event JSON schema documented in `docs/schema.md`.
pub const SCHEMA_VERSION: u32 = 1;

/// One raw option trade. Its JSON form is the replay file format
/// (`docs/replay.md`) and the payload of raw stream entries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Print {
    /// The contract, as an OSI symbol in any accepted form.
    #[serde(rename = "occ")]
    pub contract: Contract,
    /// Price per share in USD.
    pub price: f64,
    /// Contracts traded.
    pub size: u32,
    /// Venue id, as the feed numbers exchanges (Massive/OPRA participant ids).
    pub exchange: u16,
    /// Trade condition codes, as the feed reports them.
    #[serde(default)]
    pub conditions: Vec<u16>,
    /// Trade time, nanoseconds since the epoch.
    pub ts_ns: i64,
    /// The feed's sequence number.
    pub seq: u64,
    /// National best bid at the time of the trade, where known.
    #[serde(default)]
    pub bid: Option<f64>,
    /// National best offer at the time of the trade, where known.
    #[serde(default)]
    pub ask: Option<f64>,
    /// Underlying spot price, where known.
    #[serde(default)]
    pub spot: Option<f64>,
    /// The contract's open interest (start of day), where known.
    #[serde(default)]
    pub oi: Option<u64>,
}

impl Print {
    pub fn ts_ms(&self) -> i64 {
        self.ts_ns.div_euclid(1_000_000)
    }

    /// Dollar premium of this print: price × size × 100.
    pub fn premium(&self) -> f64 {
        self.price * f64::from(self.size) * 100.0
    }
}

/// Where a fill happened relative to the NBBO.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Side {
    /// Above the ask.
    #[serde(rename = "AA")]
    AboveAsk,
    /// At (or near) the ask.
    #[serde(rename = "A")]
    Ask,
    /// Between bid and ask.
    #[serde(rename = "M")]
    Mid,
    /// At (or near) the bid.
    #[serde(rename = "B")]
    Bid,
    /// Below the bid.
    #[serde(rename = "BB")]
    BelowBid,
    /// No quote to judge against.
    #[serde(rename = "?")]
    Unknown,
}

impl Side {
    pub fn code(self) -> &'static str {
        match self {
            Side::AboveAsk => "AA",
            Side::Ask => "A",
            Side::Mid => "M",
            Side::Bid => "B",
            Side::BelowBid => "BB",
            Side::Unknown => "?",
        }
    }

    /// Bought by an aggressive buyer: at or above the ask.
    pub fn is_ask(self) -> bool {
        matches!(self, Side::Ask | Side::AboveAsk)
    }

    /// Sold by an aggressive seller: at or below the bid.
    pub fn is_bid(self) -> bool {
        matches!(self, Side::Bid | Side::BelowBid)
    }
}

/// The shape of the order behind an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// ISO prints on one contract across two or more exchanges within the window.
    Sweep,
    /// One large print over the block thresholds.
    Block,
    /// ISO prints on one contract on a single exchange within the window.
    Split,
    /// Anything else.
    Single,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Sweep, Kind::Block, Kind::Split, Kind::Single];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Sweep => "sweep",
            Kind::Block => "block",
            Kind::Split => "split",
            Kind::Single => "single",
        }
    }
}

/// Directional read of an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sentiment {
    Bull,
    Bear,
    Neutral,
}

/// One judgement tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tag {
    Unusual,
    Golden,
    Opening,
    Repeat,
}

impl Tag {
    pub const ALL: [Tag; 4] = [Tag::Unusual, Tag::Golden, Tag::Opening, Tag::Repeat];

    pub fn name(self) -> &'static str {
        match self {
            Tag::Unusual => "unusual",
            Tag::Golden => "golden",
            Tag::Opening => "opening",
            Tag::Repeat => "repeat",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Tag::Unusual => 1,
            Tag::Golden => 2,
            Tag::Opening => 4,
            Tag::Repeat => 8,
        }
    }
}

/// A set of [`Tag`]s, as bits so that a filter tests one with a mask.
/// Serialized as a JSON array of tag names in a fixed order.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Tags(u8);

impl Tags {
    pub const EMPTY: Tags = Tags(0);

    pub fn contains(self, tag: Tag) -> bool {
        self.0 & tag.bit() != 0
    }

    pub fn insert(&mut self, tag: Tag) {
        self.0 |= tag.bit();
    }

    pub fn with(mut self, tag: Tag) -> Tags {
        self.insert(tag);
        self
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Tag> {
        Tag::ALL.into_iter().filter(move |t| self.contains(*t))
    }
}

impl fmt::Debug for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromIterator<Tag> for Tags {
    fn from_iter<I: IntoIterator<Item = Tag>>(iter: I) -> Tags {
        let mut t = Tags::EMPTY;
        for tag in iter {
            t.insert(tag);
        }
        t
    }
}

impl Serialize for Tags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Tags, D::Error> {
        Ok(Vec::<Tag>::deserialize(d)?.into_iter().collect())
    }
}

/// The product's central record: one order on the tape, classified and scored.
///
/// The keys of an event as stored in the flow stream, in the order it is
/// written: every field of [`FlowEvent`] but `id` (`docs/schema.md`).
pub const STORED_FIELDS: [&str; 24] = [
    "ts",
    "sym",
    "occ",
    "expiry",
    "strike",
    "right",
    "side",
    "size",
    "price",
    "premium",
    "kind",
    "legs",
    "exchanges",
    "spot",
    "otm",
    "dte",
    "oi",
    "vol",
    "iv",
    "bid",
    "ask",
    "tags",
    "sentiment",
    "score",
];

/// Field names and JSON types are the public schema (`docs/schema.md`). `id` is
/// the event's cursor in the flow stream; it is absent from the JSON stored in
/// the stream entry itself (the entry id is the cursor) and spliced in when the
/// event is delivered, see [`splice_id`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlowEvent {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Time of the first print, ms since the epoch.
    pub ts: i64,
    /// Underlying ticker.
    pub sym: String,
    /// Unpadded OSI symbol.
    pub occ: String,
    /// `YYYY-MM-DD`.
    pub expiry: String,
    pub strike: f64,
    pub right: Right,
    pub side: Side,
    /// Contracts.
    pub size: u64,
    /// Volume-weighted price per share.
    pub price: f64,
    /// USD: price × size × 100.
    pub premium: f64,
    pub kind: Kind,
    /// Number of prints.
    pub legs: u32,
    /// Distinct venue ids, ascending.
    pub exchanges: Vec<u16>,
    pub spot: Option<f64>,
    /// Percent out of the money, signed: positive is OTM, negative ITM.
    pub otm: Option<f64>,
    /// Calendar days to expiry, from the trade's New York date.
    pub dte: i32,
    pub oi: Option<u64>,
    /// The contract's day volume, including this event.
    pub vol: u64,
    /// Implied volatility (annualised, 0.35 = 35%), where it can be computed.
    pub iv: Option<f64>,
    pub bid: Option<f64>,
    pub ask: Option<f64>,
    pub tags: Tags,
    pub sentiment: Sentiment,
    /// 0–100, see `docs/scoring.md`.
    pub score: u8,
}

impl FlowEvent {
    /// Day volume over open interest, where OI is known and non-zero.
    pub fn vol_oi(&self) -> Option<f64> {
        match self.oi {
            Some(oi) if oi > 0 => Some(self.vol as f64 / oi as f64),
            _ => None,
        }
    }

    /// Serializes the event without its `id`: the form stored in the flow stream.
    pub fn to_stored_json(&self) -> String {
        if self.id.is_empty() {
            // `id` is skipped when empty: serialize as is, without a copy,
            // into a buffer big enough for a typical event (about 450 bytes).
            let mut out = Vec::with_capacity(512);
            if serde_json::to_writer(&mut out, self).is_err() {
                return String::new();
            }
            return String::from_utf8(out).unwrap_or_default();
        }
        let mut e = self.clone();
        e.id.clear();
        serde_json::to_string(&e).unwrap_or_default()
    }
}

/// Splices a cursor into stored event JSON (`{"ts":…}` → `{"id":"…","ts":…}`),
/// without parsing it. Stored JSON always starts with `{` and is never empty.
pub fn splice_id(stored_json: &str, id: &str) -> String {
    let rest = stored_json.strip_prefix('{').unwrap_or(stored_json);
    let mut out = String::with_capacity(stored_json.len() + id.len() + 8);
    out.push_str("{\"id\":\"");
    out.push_str(id);
    out.push_str("\",");
    out.push_str(rest);
    out
}

/// An AAPL call sweep bought at the ask, unusual and opening: the fixture
/// the workspace's tests share (the `fixtures` feature).
#[cfg(any(test, feature = "fixtures"))]
pub fn sample_event() -> FlowEvent {
    FlowEvent {
        id: String::new(),
        ts: 1_734_700_000_123,
        sym: "AAPL".into(),
        occ: "AAPL241220C00190000".into(),
        expiry: "2024-12-20".into(),
        strike: 190.0,
        right: Right::Call,
        side: Side::Ask,
        size: 1200,
        price: 2.15,
        premium: 258_000.0,
        kind: Kind::Sweep,
        legs: 4,
        exchanges: vec![1, 5, 9],
        spot: Some(185.2),
        otm: Some(2.59),
        dte: 3,
        oi: Some(800),
        vol: 2400,
        iv: Some(0.31),
        bid: Some(2.1),
        ask: Some(2.15),
        tags: Tags::EMPTY.with(Tag::Unusual).with(Tag::Opening),
        sentiment: Sentiment::Bull,
        score: 72,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_schema_names() {
        let json = splice_id(&sample_event().to_stored_json(), "1734700000200-0");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
        let keys: Vec<&str> = v
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut want = vec!["id"];
        want.extend(STORED_FIELDS);
        let mut got = keys.clone();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(v["right"], "C");
        assert_eq!(v["side"], "A");
        assert_eq!(v["kind"], "sweep");
        assert_eq!(v["tags"], serde_json::json!(["unusual", "opening"]));
        assert_eq!(v["sentiment"], "bull");
        let back: FlowEvent = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back.id, "1734700000200-0");
        assert_eq!(
            FlowEvent {
                id: String::new(),
                ..back
            },
            sample_event()
        );
    }

    #[test]
    fn print_json_accepts_any_symbol_form() {
        let line = r#"{"occ":"O:SPY261218P00500000","price":1.5,"size":10,"exchange":4,"conditions":[219],"ts_ns":1,"seq":7,"bid":1.45,"ask":1.5}"#;
        let p: Print = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.contract.underlying(), "SPY");
        assert_eq!(p.spot, None);
        assert!((p.premium() - 1500.0).abs() < 1e-9);
    }
}

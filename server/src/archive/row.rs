//! One flow event as a row of `flow_events`: [`ArchiveRow::from_entry`] turns
//! a flow stream entry into the values of every column (in table order, for
//! binary COPY), and [`event_from_row`] reads a row back into the event.

use std::error::Error as StdError;

use bytes::BytesMut;
use flowtape_core::cursor::Cursor;
use flowtape_core::date::{market_date, Date};
use flowtape_core::event::{FlowEvent, Sentiment, STORED_FIELDS};
use flowtape_core::occ::Right;
use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

use crate::bus::FlowEntry;

/// The columns of `flow_events`, in table order.
pub const COLUMNS: &str = "day, cursor_ms, cursor_seq, ts, sym, occ, expiry, strike, \"right\", \
     side, size, price, premium, kind, legs, exchanges, spot, otm, dte, oi, vol, iv, bid, ask, \
     tags, sentiment, score, extra";

/// The column types, in table order.
pub const TYPES: [Type; 28] = [
    Type::DATE,
    Type::INT8,
    Type::INT8,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::DATE,
    Type::FLOAT8,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::TEXT,
    Type::INT4,
    Type::INT2_ARRAY,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::INT4,
    Type::INT8,
    Type::INT8,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::TEXT_ARRAY,
    Type::TEXT,
    Type::INT2,
    Type::JSONB,
];

/// Why a flow stream entry cannot be archived (it is counted and skipped).
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error("entry {id}: not a flow event: {reason}")]
    NotAnEvent { id: Cursor, reason: String },
    #[error("entry {id}: {field} {value} does not fit its column")]
    OutOfRange {
        id: Cursor,
        field: &'static str,
        value: String,
    },
}

/// The values of one `flow_events` row.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchiveRow {
    pub day: Date,
    pub cursor: Cursor,
    day_sql: SqlDate,
    cursor_ms: i64,
    cursor_seq: i64,
    ts: SqlTimestamp,
    event: FlowEvent,
    expiry: SqlDate,
    right: &'static str,
    side: &'static str,
    kind: &'static str,
    sentiment: &'static str,
    size: i64,
    oi: Option<i64>,
    vol: i64,
    legs: i32,
    exchanges: Vec<i16>,
    tags: Vec<&'static str>,
    score: i16,
    extra: Option<Jsonb>,
}

impl ArchiveRow {
    pub fn from_entry(entry: &FlowEntry) -> Result<ArchiveRow, RowError> {
        let id = entry.id;
        let not_event = |reason: String| RowError::NotAnEvent { id, reason };
        let out_of_range =
            |field: &'static str, value: &dyn std::fmt::Display| RowError::OutOfRange {
                id,
                field,
                value: value.to_string(),
            };
        let event: FlowEvent =
            serde_json::from_str(&entry.json).map_err(|e| not_event(e.to_string()))?;
        let expiry: Date = event
            .expiry
            .parse()
            .map_err(|e| not_event(format!("expiry: {e}")))?;
        let fit = |field: &'static str, value: u64| {
            i64::try_from(value).map_err(|_| out_of_range(field, &value))
        };
        let exchanges = event
            .exchanges
            .iter()
            .map(|&x| i16::try_from(x).map_err(|_| out_of_range("exchange", &x)))
            .collect::<Result<_, _>>()?;
        let day = market_date(event.ts);
        Ok(ArchiveRow {
            day,
            cursor: id,
            day_sql: SqlDate(day),
            cursor_ms: fit("cursor", id.ms)?,
            cursor_seq: fit("cursor", id.seq)?,
            ts: SqlTimestamp(event.ts),
            expiry: SqlDate(expiry),
            right: if event.right == Right::Put { "P" } else { "C" },
            side: event.side.code(),
            kind: event.kind.name(),
            sentiment: match event.sentiment {
                Sentiment::Bull => "bull",
                Sentiment::Bear => "bear",
                Sentiment::Neutral => "neutral",
            },
            size: fit("size", event.size)?,
            oi: event.oi.map(|oi| fit("oi", oi)).transpose()?,
            vol: fit("vol", event.vol)?,
            legs: i32::try_from(event.legs).map_err(|_| out_of_range("legs", &event.legs))?,
            exchanges,
            tags: event.tags.iter().map(|t| t.name()).collect(),
            score: i16::from(event.score),
            extra: extra_fields(&entry.json, &event),
            event,
        })
    }

    /// Every column's value, in table order ([`COLUMNS`], [`TYPES`]).
    pub fn values(&self) -> [&(dyn ToSql + Sync); 28] {
        let e = &self.event;
        [
            &self.day_sql,
            &self.cursor_ms,
            &self.cursor_seq,
            &self.ts,
            &e.sym,
            &e.occ,
            &self.expiry,
            &e.strike,
            &self.right,
            &self.side,
            &self.size,
            &e.price,
            &e.premium,
            &self.kind,
            &self.legs,
            &self.exchanges,
            &e.spot,
            &e.otm,
            &e.dte,
            &self.oi,
            &self.vol,
            &e.iv,
            &e.bid,
            &e.ask,
            &self.tags,
            &self.sentiment,
            &self.score,
            &self.extra,
        ]
    }
}

/// Whether the stored JSON object may have a key this version has no field
/// for: a scan of its keys that allocates nothing (a key with escapes, which
/// no field name has, counts as unknown).
fn may_have_unknown_keys(stored: &str) -> bool {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = bool;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            while let Some(key) = map.next_key::<&'de str>()? {
                if key != "id" && !STORED_FIELDS.contains(&key) {
                    return Ok(true);
                }
                map.next_value::<IgnoredAny>()?;
            }
            Ok(false)
        }
    }
    serde_json::Deserializer::from_str(stored)
        .deserialize_map(Keys)
        .unwrap_or(true)
}

/// The fields of the stored JSON that [`FlowEvent`] has no field for (a
/// newer event schema), as a JSON object; `None` when there are none.
fn extra_fields(stored: &str, event: &FlowEvent) -> Option<Jsonb> {
    if !may_have_unknown_keys(stored) {
        return None; // The common case: every key is a field of this version.
    }
    let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(stored) else {
        return None;
    };
    if let Ok(Value::Object(known)) = serde_json::to_value(event) {
        fields.retain(|k, _| !known.contains_key(k) && k != "id");
    }
    (!fields.is_empty()).then(|| Jsonb(Value::Object(fields).to_string()))
}

/// A `SELECT` list that [`event_from_row`] reads: every column, dates and
/// times as text and milliseconds.
pub const SELECT_EVENT: &str = "cursor_ms, cursor_seq, (extract(epoch from ts) * 1000)::bigint, \
     sym, occ, expiry::text, strike, \"right\", side, size, price, premium, kind, legs, exchanges, \
     spot, otm, dte, oi, vol, iv, bid, ask, tags, sentiment, score";

/// A row selected with [`SELECT_EVENT`], as the event it archived (its `id`
/// set to its cursor). The `extra` column is not read.
pub fn event_from_row(row: &tokio_postgres::Row) -> Result<FlowEvent, ArchiveReadError> {
    let ms: i64 = row.try_get(0)?;
    let seq: i64 = row.try_get(1)?;
    let text = |i: usize| -> Result<Value, ArchiveReadError> { Ok(Value::String(row.try_get(i)?)) };
    let exchanges: Vec<i16> = row.try_get(14)?;
    let json = serde_json::json!({
        "id": format!("{ms}-{seq}"),
        "ts": row.try_get::<_, i64>(2)?,
        "sym": text(3)?,
        "occ": text(4)?,
        "expiry": text(5)?,
        "strike": row.try_get::<_, f64>(6)?,
        "right": text(7)?,
        "side": text(8)?,
        "size": row.try_get::<_, i64>(9)?,
        "price": row.try_get::<_, f64>(10)?,
        "premium": row.try_get::<_, f64>(11)?,
        "kind": text(12)?,
        "legs": row.try_get::<_, i32>(13)?,
        "exchanges": exchanges,
        "spot": row.try_get::<_, Option<f64>>(15)?,
        "otm": row.try_get::<_, Option<f64>>(16)?,
        "dte": row.try_get::<_, i32>(17)?,
        "oi": row.try_get::<_, Option<i64>>(18)?,
        "vol": row.try_get::<_, i64>(19)?,
        "iv": row.try_get::<_, Option<f64>>(20)?,
        "bid": row.try_get::<_, Option<f64>>(21)?,
        "ask": row.try_get::<_, Option<f64>>(22)?,
        "tags": row.try_get::<_, Vec<String>>(23)?,
        "sentiment": text(24)?,
        "score": row.try_get::<_, i16>(25)?,
    });
    Ok(serde_json::from_value(json)?)
}

/// Why an archived row could not be read back as an event.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveReadError {
    #[error("archived row: {0}")]
    Column(#[from] tokio_postgres::Error),
    #[error("archived row is not a valid event: {0}")]
    Event(#[from] serde_json::Error),
}

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;

/// A [`Date`] as a PostgreSQL `date` (binary: days since 2000-01-01).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SqlDate(pub Date);

impl ToSql for SqlDate {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        let days = i32::try_from(self.0.days_since_epoch() - PG_EPOCH_DAYS)?;
        out.extend_from_slice(&days.to_be_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::DATE
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for SqlDate {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<SqlDate, Box<dyn StdError + Sync + Send>> {
        let bytes: [u8; 4] = raw.try_into()?;
        let days = i64::from(i32::from_be_bytes(bytes)) + PG_EPOCH_DAYS;
        Ok(SqlDate(Date::from_days_since_epoch(days)))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::DATE
    }
}

/// Milliseconds since the Unix epoch as a PostgreSQL `timestamptz`
/// (binary: microseconds since 2000-01-01 UTC).
#[derive(Clone, Copy, Debug, PartialEq)]
struct SqlTimestamp(i64);

impl ToSql for SqlTimestamp {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        let micros = (self.0 - PG_EPOCH_DAYS * 86_400_000)
            .checked_mul(1000)
            .ok_or("timestamp out of range")?;
        out.extend_from_slice(&micros.to_be_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }

    to_sql_checked!();
}

/// JSON text as a PostgreSQL `jsonb` (binary: version 1, then the text).
#[derive(Clone, Debug, PartialEq)]
struct Jsonb(String);

impl ToSql for Jsonb {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        out.extend_from_slice(&[1]);
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use flowtape_core::event::sample_event;

    use super::*;

    fn entry(json: &str) -> FlowEntry {
        FlowEntry {
            id: Cursor::new(1_734_700_000_200, 3),
            json: Arc::from(json),
        }
    }

    #[test]
    fn a_stored_event_becomes_a_row_of_its_trading_day() {
        let row = ArchiveRow::from_entry(&entry(&sample_event().to_stored_json()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(row.day.to_string(), "2024-12-20");
        assert_eq!((row.cursor_ms, row.cursor_seq), (1_734_700_000_200, 3));
        assert_eq!(row.tags, ["unusual", "opening"]);
        assert_eq!(
            (row.right, row.side, row.kind, row.sentiment),
            ("C", "A", "sweep", "bull")
        );
        assert_eq!(row.extra, None);
        assert_eq!(row.values().len(), TYPES.len());
        assert_eq!(COLUMNS.split(',').count(), TYPES.len());
    }

    #[test]
    fn only_keys_this_version_has_no_field_for_are_unknown() {
        assert!(!may_have_unknown_keys(&sample_event().to_stored_json()));
        assert!(may_have_unknown_keys(r#"{"ts":1,"venue_mix":2}"#));
        assert!(
            may_have_unknown_keys(r#"{"t\u0073":1}"#),
            "escaped: looked at closely"
        );
        assert!(may_have_unknown_keys("not json"));
    }

    #[test]
    fn unknown_fields_are_kept_as_extra() {
        let stored = sample_event().to_stored_json();
        let newer = stored.replacen('{', r#"{"venue_mix":{"a":1},"#, 1);
        let row = ArchiveRow::from_entry(&entry(&newer)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(row.extra, Some(Jsonb(r#"{"venue_mix":{"a":1}}"#.into())));
    }

    #[test]
    fn bad_entries_are_named() {
        let err = ArchiveRow::from_entry(&entry("{\"ts\":1}")).err();
        assert!(matches!(err, Some(RowError::NotAnEvent { .. })), "{err:?}");
        let mut big = sample_event();
        big.size = u64::MAX;
        let err = ArchiveRow::from_entry(&entry(&big.to_stored_json())).err();
        assert!(
            matches!(err, Some(RowError::OutOfRange { field: "size", .. })),
            "{err:?}"
        );
    }
}

//! Decoding Redis replies into the bus's entries: stream entries (`XRANGE`,
//! `XREVRANGE`, `XREADGROUP`, `XAUTOCLAIM`), raw prints straight from the
//! reply's bytes, the live messages `COMMIT_FLOW` publishes, and a consumer
//! group's backlog (`XINFO GROUPS`). Anything that is not the shape Redis
//! documents is a [`BusError::Protocol`].

use redis::Value;

use crate::bus::{BusError, FlowEntry, RawEntry};
use flowtape_core::cursor::Cursor;
use flowtape_core::day::DayTotals;
use flowtape_core::event::Print;

/// The error code Redis answered with (`LEASE_LOST`, `NOSCRIPT`, …), also
/// for a command inside a pipeline, where the client library wraps it.
pub(super) fn server_code(e: &redis::RedisError) -> Option<String> {
    if let Some(code) = e.code() {
        return Some(code.to_string());
    }
    let errors = e.clone().into_server_errors()?;
    errors.first().map(|(_, err)| err.code().to_string())
}

/// One line of a live message, `<id> <json>`, as published by `COMMIT_FLOW`
/// (a message holds one line per event; JSON never contains a raw newline).
pub(super) fn parse_live(payload: &str) -> Option<FlowEntry> {
    let (id, json) = payload.split_once(' ')?;
    Some(FlowEntry {
        id: id.parse().ok()?,
        json: json.into(),
    })
}

pub(super) fn string_of(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

/// A stream entry's fields, or `None` for an entry deleted since it was delivered.
type Fields = Option<Vec<(String, String)>>;

/// Parses `[[id, [field, value, …] | nil], …]`.
fn stream_entries(v: Value) -> Result<Vec<(Cursor, Fields)>, BusError> {
    let items = match v {
        Value::Array(items) => items,
        Value::Nil => return Ok(Vec::new()),
        other => return Err(BusError::Protocol(format!("stream entries: {other:?}"))),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(pair) = item else {
            return Err(BusError::Protocol("stream entry is not an array".into()));
        };
        let mut pair = pair.into_iter();
        let id = pair
            .next()
            .and_then(|v| string_of(&v))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| BusError::Protocol("stream entry without an id".into()))?;
        let fields = match pair.next() {
            Some(Value::Array(kv)) => {
                let flat: Vec<String> = kv.iter().filter_map(string_of).collect();
                Some(
                    flat.chunks(2)
                        .filter(|c| c.len() == 2)
                        .map(|c| (c[0].clone(), c[1].clone()))
                        .collect(),
                )
            }
            Some(Value::Map(kv)) => Some(
                kv.iter()
                    .filter_map(|(k, v)| Some((string_of(k)?, string_of(v)?)))
                    .collect(),
            ),
            _ => None,
        };
        out.push((id, fields));
    }
    Ok(out)
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The `p` field of each entry of a raw stream reply, as stored (to compare
/// with what an append would write).
pub(super) fn raw_stream_payloads(v: Value) -> Result<Vec<Vec<u8>>, BusError> {
    Ok(stream_entries(v)?
        .into_iter()
        .filter_map(|(_, fields)| Some(field(fields.as_deref()?, "p")?.as_bytes().to_vec()))
        .collect())
}

/// A day premium hash (`HGETALL`: a flat array field, amount, … on RESP2,
/// a map on RESP3) summed into [`DayTotals`]; a field or amount that is not
/// a string is counted as skipped, like any other unreadable field.
pub(super) fn day_hash(v: Value) -> Result<DayTotals, BusError> {
    fn add(totals: &mut DayTotals, field: &Value, amount: &Value) {
        match (bytes_of(field), bytes_of(amount)) {
            (Some(f), Some(a)) => {
                totals.add_stored(f, a);
            }
            _ => totals.skipped += 1,
        }
    }
    let mut totals = DayTotals::default();
    match v {
        Value::Nil => {}
        Value::Array(items) => {
            for pair in items.chunks(2) {
                match pair {
                    [field, amount] => add(&mut totals, field, amount),
                    _ => totals.skipped += 1,
                }
            }
        }
        Value::Map(pairs) => {
            for (field, amount) in &pairs {
                add(&mut totals, field, amount);
            }
        }
        other => {
            return Err(BusError::Protocol(format!(
                "a day premium hash read as {other:?}"
            )))
        }
    }
    Ok(totals)
}

/// A raw entry's content: `None` if deleted since delivered, `Some(None)` if undecodable.
type RawFields = Option<Option<Print>>;

/// The bytes of a string reply, borrowed.
fn bytes_of(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

/// Decodes a raw entry's print from its `p` field, straight from the reply's
/// bytes; `None` if it has none or it is malformed (logged).
fn print_of(id: Cursor, fields: &[Value]) -> Option<Print> {
    let json = fields
        .chunks(2)
        .find(|kv| kv.len() == 2 && bytes_of(&kv[0]) == Some(b"p"))
        .and_then(|kv| bytes_of(&kv[1]))?;
    decode_print(id, json)
}

/// Decodes a print's JSON; `None` if it is malformed (logged).
fn decode_print(id: Cursor, json: &[u8]) -> Option<Print> {
    match serde_json::from_slice::<Print>(json) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(%id, "malformed raw entry: {e}");
            None
        }
    }
}

/// Parses raw stream entries `[[id, [field, value, …] | nil], …]` without
/// copying their fields. The outer `Option` is `None` for an entry deleted
/// since it was delivered; the inner one for an undecodable print.
pub(super) fn raw_stream_entries(v: Value) -> Result<Vec<(Cursor, RawFields)>, BusError> {
    let items = match v {
        Value::Array(items) => items,
        Value::Nil => return Ok(Vec::new()),
        other => return Err(BusError::Protocol(format!("stream entries: {other:?}"))),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in &items {
        let Value::Array(pair) = item else {
            return Err(BusError::Protocol("stream entry is not an array".into()));
        };
        let id: Cursor = pair
            .first()
            .and_then(bytes_of)
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| BusError::Protocol("stream entry without an id".into()))?;
        let print = match pair.get(1) {
            Some(Value::Array(kv)) => Some(print_of(id, kv)),
            Some(Value::Map(kv)) => Some(
                kv.iter()
                    .find(|(k, _)| bytes_of(k) == Some(b"p"))
                    .and_then(|(_, v)| bytes_of(v))
                    .and_then(|json| decode_print(id, json)),
            ),
            _ => None,
        };
        out.push((id, print));
    }
    Ok(out)
}

/// Parses an XREADGROUP reply for one stream.
pub(super) fn raw_entries_of_read(v: Value) -> Result<Vec<RawEntry>, BusError> {
    let streams = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams
            .into_iter()
            .map(|s| match s {
                Value::Array(kv) => Ok(kv.into_iter().nth(1).unwrap_or(Value::Nil)),
                other => Err(BusError::Protocol(format!("XREADGROUP stream: {other:?}"))),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Value::Map(kv) => kv.into_iter().map(|(_, v)| v).collect(),
        other => return Err(BusError::Protocol(format!("XREADGROUP reply: {other:?}"))),
    };
    let mut out = Vec::new();
    for entries in streams {
        for (id, print) in raw_stream_entries(entries)? {
            out.push(RawEntry {
                id,
                print: print.flatten(),
            });
        }
    }
    Ok(out)
}

pub(super) fn flow_entries(v: Value) -> Result<Vec<FlowEntry>, BusError> {
    Ok(stream_entries(v)?
        .into_iter()
        .filter_map(|(id, fields)| {
            let json = field(fields.as_deref()?, "e")?;
            Some(FlowEntry {
                id,
                json: json.into(),
            })
        })
        .collect())
}

/// The `lag` (`None` when Redis cannot tell) and `pending` of `group` in an
/// `XINFO GROUPS` reply: one map per group, a flat array of field and value
/// in RESP2. A stream without the group has no backlog of it.
pub(super) fn group_backlog(v: Value, group: &str) -> Result<(Option<u64>, u64), BusError> {
    let Value::Array(groups) = v else {
        return Err(BusError::Protocol(format!("XINFO GROUPS: {v:?}")));
    };
    for info in groups {
        let pairs: Vec<(Value, Value)> = match info {
            Value::Map(pairs) => pairs,
            Value::Array(flat) => {
                let mut flat = flat.into_iter();
                std::iter::from_fn(|| Some((flat.next()?, flat.next()?))).collect()
            }
            other => return Err(BusError::Protocol(format!("XINFO GROUPS entry: {other:?}"))),
        };
        let find = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| string_of(k).as_deref() == Some(name))
                .map(|(_, v)| v)
        };
        if find("name").and_then(string_of).as_deref() != Some(group) {
            continue;
        }
        let count = |v: Option<&Value>| match v {
            Some(Value::Int(n)) => u64::try_from(*n).ok(),
            _ => None,
        };
        return Ok((count(find("lag")), count(find("pending")).unwrap_or(0)));
    }
    Ok((Some(0), 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_hashes_sum_and_skip_junk() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let flat = Value::Array(vec![
            bulk("SPY:call"),
            bulk("1500"),
            bulk("SPY261218C00500000"),
            bulk("1500"),
            bulk("SPY:weird"),
            bulk("3"),
            bulk("SPY:put"),
            bulk("lots"),
            Value::Int(4),
            bulk("5"),
            bulk("dangling"),
        ]);
        let t = day_hash(flat).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.skipped, 4);
        assert_eq!(t.sum().call, 1500);
        assert_eq!(t.contracts.get("SPY261218C00500000"), Some(&1500));
        let map = Value::Map(vec![(bulk("QQQ:bear"), bulk("-7"))]);
        let t = day_hash(map).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.sum().bear, t.skipped), (-7, 0));
        assert!(day_hash(Value::Okay).is_err());
        assert_eq!(day_hash(Value::Nil).ok(), Some(DayTotals::default()));
    }

    #[test]
    fn live_messages_parse() {
        let e = parse_live(r#"17-3 {"ts":1}"#);
        assert_eq!(
            e.map(|e| (e.id, e.json.to_string())),
            Some((Cursor::new(17, 3), r#"{"ts":1}"#.to_string()))
        );
        assert_eq!(parse_live("garbage"), None);
    }

    #[test]
    fn group_backlog_reads_resp2_and_resp3() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let other = Value::Array(vec![
            bulk("name"),
            bulk("other"),
            bulk("lag"),
            Value::Int(9),
        ]);
        let ours = Value::Array(vec![
            bulk("name"),
            bulk("process"),
            bulk("pending"),
            Value::Int(3),
            bulk("lag"),
            Value::Int(12),
        ]);
        let reply = Value::Array(vec![other, ours]);
        assert_eq!(group_backlog(reply, "process").ok(), Some((Some(12), 3)));
        let resp3 = Value::Array(vec![Value::Map(vec![
            (bulk("name"), bulk("process")),
            (bulk("pending"), Value::Int(0)),
            (bulk("lag"), Value::Nil),
        ])]);
        assert_eq!(group_backlog(resp3, "process").ok(), Some((None, 0)));
        assert_eq!(
            group_backlog(Value::Array(vec![]), "process").ok(),
            Some((Some(0), 0))
        );
        assert!(group_backlog(Value::Int(1), "process").is_err());
    }
}

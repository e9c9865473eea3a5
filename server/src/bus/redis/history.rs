//! What the flow stream holds around a cursor, read for telling lost
//! history from trimmed ([`crate::bus::history`]).
//!
//! One read-only script, `flow_history.lua`, reads the stream's origin key,
//! `XINFO STREAM` (the last generated id and the first entry) and the
//! entries on either side of the cursor in one atomic step, so the facts
//! agree with each other.

use std::sync::LazyLock;

use redis::Script;

use super::RedisBus;
use crate::bus::history::StreamFacts;
use crate::bus::BusError;
use flowtape_core::cursor::Cursor;

static FLOW_HISTORY: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("flow_history.lua")));

impl RedisBus {
    /// The facts of the flow stream around `cursor`; `None` when the stream
    /// does not exist.
    pub(in crate::bus) async fn flow_facts(
        &self,
        cursor: Cursor,
    ) -> Result<Option<StreamFacts>, BusError> {
        let mut c = self.conn.clone();
        let reply: Vec<String> = FLOW_HISTORY
            .key(self.keys.flow_stream())
            .key(self.keys.flow_origin())
            .arg(cursor.to_string())
            .invoke_async(&mut c)
            .await?;
        facts_of(&reply)
    }
}

/// Reads the script's reply.
fn facts_of(reply: &[String]) -> Result<Option<StreamFacts>, BusError> {
    let id = |k: usize| -> Result<Option<Cursor>, BusError> {
        match reply.get(k).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|e| BusError::Protocol(format!("flow history: {e}"))),
        }
    };
    if reply.is_empty() {
        return Ok(None);
    }
    Ok(Some(StreamFacts {
        origin: id(0)?,
        last_generated: id(1)?.unwrap_or(Cursor::ZERO),
        first: id(2)?,
        at_or_before: id(3)?,
        next: id(4)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read() {
        let reply: Vec<String> = ["5-1", "9-0", "6-0", "7-2", ""]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            facts_of(&reply).ok().flatten(),
            Some(StreamFacts {
                origin: Some(Cursor::new(5, 1)),
                last_generated: Cursor::new(9, 0),
                first: Some(Cursor::new(6, 0)),
                at_or_before: Some(Cursor::new(7, 2)),
                next: None,
            })
        );
        assert_eq!(facts_of(&[]).ok(), Some(None));
        assert!(facts_of(&["nope".to_string()]).is_err());
    }
}

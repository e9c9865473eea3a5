//! One event ready to send ([`Delivery`]), and the deadline every bus call
//! of the gateway runs under ([`bus_call`]): what the hub, the send queues
//! and the replays share.

use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::bus::{BusError, FlowEntry};
use flowtape_core::cursor::Cursor;
use flowtape_core::event::FlowEvent;
use flowtape_core::protocol::event_frame;

/// A bus call that takes longer than this counts as failed.
pub(crate) const BUS_TIMEOUT: Duration = Duration::from_secs(5);

/// One event ready to send: parsed for filters, framed once.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub cursor: Cursor,
    pub event: FlowEvent,
    /// The `event` frame text.
    pub frame: Utf8Bytes,
    /// When the gateway had it ready.
    pub at: Instant,
}

impl Delivery {
    pub(crate) fn from_entry(entry: &FlowEntry) -> Result<Delivery, serde_json::Error> {
        let cursor = entry.id.to_string();
        let frame = event_frame(&cursor, &entry.json);
        let mut event: FlowEvent = serde_json::from_str(&entry.json)?;
        event.id = cursor;
        Ok(Delivery {
            cursor: entry.id,
            event,
            frame: frame.into(),
            at: Instant::now(),
        })
    }
}

/// Runs a bus call with [`BUS_TIMEOUT`].
pub(crate) async fn bus_call<T>(
    fut: impl std::future::Future<Output = Result<T, BusError>>,
) -> Result<T, BusError> {
    tokio::time::timeout(BUS_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| {
            Err(BusError::Protocol(format!(
                "no answer within {}s",
                BUS_TIMEOUT.as_secs()
            )))
        })
}

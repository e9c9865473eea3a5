//! The exact loss check: what each client should have received.
//!
//! After a window, the harness reads the flow stream over exactly the
//! window's range of cursors, evaluates every client's filter on every event
//! with the gateway's own [`Filter::parse`] and [`Filter::matches`], and
//! builds each client's [`Expected`] count and digest, to compare with the
//! client's [`Tally`](super::tally::Tally). Clients with the same filter are
//! evaluated once, and filters that name tickers are only tried on events of
//! those tickers (which is all they can match).
//!
//! A client whose filter changes over the range (the soak's clients) is
//! described by [`Piece`]s: stretches of cursors, each under one filter.

use std::collections::HashMap;

use super::tally::Expected;
use super::BenchError;
use flowtape_core::cursor::Cursor;
use flowtape_core::event::FlowEvent;
use flowtape_core::filter::Filter;
use flowtape_server::bus::Bus;

/// Stream entries read per round trip.
const PAGE: usize = 5_000;

/// What the window's range of the stream holds.
#[derive(Clone, Debug, Default)]
pub struct Window {
    /// Per client, in client order.
    pub expected: Vec<Expected>,
    /// Events in the range.
    pub events: u64,
    /// Entries that are not flow events.
    pub malformed: u64,
    /// The last entry read in the range.
    pub last: Option<Cursor>,
}

/// A stretch of one client's subscription: the events with
/// `from <= cursor < to` that `filter` selects are the client's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    pub client: usize,
    pub filter: String,
    pub from: Cursor,
    pub to: Cursor,
}

/// Distinct filters, the pieces holding each, and an index by ticker.
struct Groups {
    filters: Vec<Filter>,
    members: Vec<Vec<usize>>,
    by_ticker: HashMap<String, Vec<usize>>,
    any_ticker: Vec<usize>,
}

impl Groups {
    fn new<'a>(filters: impl IntoIterator<Item = &'a str>) -> Result<Groups, BenchError> {
        let mut g = Groups {
            filters: Vec::new(),
            members: Vec::new(),
            by_ticker: HashMap::new(),
            any_ticker: Vec::new(),
        };
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (member, text) in filters.into_iter().enumerate() {
            let f = Filter::parse(text)
                .map_err(|e| BenchError::Config(format!("client filter {text:?}: {e}")))?;
            let id = *seen.entry(f.canonical()).or_insert_with(|| {
                let id = g.filters.len();
                if f.tickers().is_empty() {
                    g.any_ticker.push(id);
                }
                for t in f.tickers() {
                    g.by_ticker
                        .entry(t.as_str().to_string())
                        .or_default()
                        .push(id);
                }
                g.filters.push(f);
                g.members.push(Vec::new());
                id
            });
            g.members[id].push(member);
        }
        Ok(g)
    }

    /// The groups whose filter may match an event of `sym`.
    fn candidates<'a>(&'a self, sym: &str) -> impl Iterator<Item = usize> + 'a {
        let named = match self.by_ticker.get(sym) {
            Some(ids) => ids.as_slice(),
            None if sym.bytes().any(|b| b.is_ascii_lowercase()) => self
                .by_ticker
                .get(&sym.to_ascii_uppercase())
                .map_or(&[][..], Vec::as_slice),
            None => &[],
        };
        named.iter().chain(&self.any_ticker).copied()
    }
}

/// Reads the stream after `after` up to and including `through` and works
/// out what each client (by its filter text) should have received.
pub async fn expected(
    bus: &Bus,
    after: Cursor,
    through: Cursor,
    filters: &[String],
) -> Result<Window, BenchError> {
    let pieces: Vec<Piece> = filters
        .iter()
        .enumerate()
        .map(|(client, filter)| Piece {
            client,
            filter: filter.clone(),
            from: after.successor(),
            to: through.successor(),
        })
        .collect();
    expected_pieces(bus, after, through.successor(), filters.len(), &pieces).await
}

/// Reads the stream after `after` and before `to` and works out what each of
/// `clients` clients should have received over its `pieces`.
pub async fn expected_pieces(
    bus: &Bus,
    after: Cursor,
    to: Cursor,
    clients: usize,
    pieces: &[Piece],
) -> Result<Window, BenchError> {
    let groups = Groups::new(pieces.iter().map(|p| p.filter.as_str()))?;
    let mut window = Window {
        expected: vec![Expected::default(); clients],
        ..Window::default()
    };
    read(bus, after, to, |cursor, event| {
        window.last = Some(cursor);
        let Some(event) = event else {
            window.malformed += 1;
            return;
        };
        window.events += 1;
        for g in groups.candidates(&event.sym) {
            if !groups.filters[g].matches(&event) {
                continue;
            }
            for &p in &groups.members[g] {
                let piece = &pieces[p];
                if piece.from <= cursor && cursor < piece.to {
                    if let Some(e) = window.expected.get_mut(piece.client) {
                        e.add(cursor);
                    }
                }
            }
        }
    })
    .await?;
    Ok(window)
}

/// The events after `after` and before `to` that either of two filters
/// selects, in stream order, with whether each one does.
pub async fn selected_by_either(
    bus: &Bus,
    after: Cursor,
    to: Cursor,
    filters: [&Filter; 2],
) -> Result<Vec<(Cursor, [bool; 2])>, BenchError> {
    let mut out = Vec::new();
    read(bus, after, to, |cursor, event| {
        if let Some(e) = event {
            let m = filters.map(|f| f.matches(&e));
            if m[0] || m[1] {
                out.push((cursor, m));
            }
        }
    })
    .await?;
    Ok(out)
}

/// Calls `each` with every entry after `after` and before `to`, decoded
/// (`None`: not a flow event).
async fn read(
    bus: &Bus,
    after: Cursor,
    to: Cursor,
    mut each: impl FnMut(Cursor, Option<FlowEvent>),
) -> Result<(), BenchError> {
    let mut cursor = after;
    loop {
        let page = bus.flow_after(cursor, PAGE).await?;
        let Some(last) = page.last() else { break };
        cursor = last.id;
        for entry in &page {
            if entry.id >= to {
                return Ok(());
            }
            each(entry.id, serde_json::from_str(&entry.json).ok());
        }
        if page.len() < PAGE {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtape_server::bus::{BusConfig, NewEvent};

    fn stored(sym: &str, premium: f64) -> String {
        format!(
            r#"{{"ts":1,"sym":"{sym}","occ":"{sym}261218P00500000","expiry":"2026-12-18","strike":500.0,"right":"P","side":"B","size":10,"price":1.5,"premium":{premium},"kind":"single","legs":1,"exchanges":[4],"spot":null,"otm":null,"dte":20,"oi":null,"vol":10,"iv":null,"bid":1.5,"ask":1.6,"tags":[],"sentiment":"bull","score":3}}"#
        )
    }

    #[tokio::test]
    async fn each_client_expects_what_its_filter_selects_in_the_range() {
        let bus = Bus::memory(BusConfig::default());
        assert!(bus
            .acquire_lease(0, "t", std::time::Duration::from_secs(5))
            .await
            .unwrap_or(false));
        let events = [
            ("SPY", 100.0),
            ("AAPL", 90_000.0),
            ("SPY", 60_000.0),
            ("TSLA", 10.0),
        ];
        let mut cursors = Vec::new();
        for (i, (sym, premium)) in events.iter().enumerate() {
            let json = stored(sym, *premium);
            let legs = [Cursor::new(1, i as u64)];
            let c = bus
                .commit_flow(
                    0,
                    "t",
                    &[NewEvent {
                        legs: &legs,
                        json: &json,
                        deltas: &[],
                    }],
                    &[],
                )
                .await
                .unwrap_or_default();
            cursors.push(c.first().copied().flatten().unwrap_or_default());
        }
        let filters: Vec<String> = ["premium>=50k", "SPY TSLA", "spy", "premium>=50k"]
            .map(String::from)
            .to_vec();
        // The range excludes the first event.
        let w = expected(&bus, cursors[0], cursors[3], &filters)
            .await
            .unwrap_or_default();
        let count: Vec<u64> = w.expected.iter().map(|e| e.count).collect();
        assert_eq!((w.events, count), (3, vec![2, 2, 1, 2]));
        let mut want = Expected::default();
        want.add(cursors[1]);
        want.add(cursors[2]);
        assert_eq!(w.expected[0], want);
        assert_eq!(w.expected[3], want);
    }
}

//! The exact loss check: what each client should have received.
//!
//! After a window, the harness reads the flow stream over exactly the
//! window's range of cursors, evaluates every client's filter on every event
//! with the gateway's own [`Filter::parse`] and [`Filter::matches`], and
//! builds each client's [`Expected`] count and digest, to compare with the
//! client's [`Tally`](super::tally::Tally). Clients with the same filter are
//! evaluated once, and filters that name tickers are only tried on events of
//! those tickers (which is all they can match).

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
}

/// Distinct filters, the clients holding each, and an index by ticker.
struct Groups {
    filters: Vec<Filter>,
    members: Vec<Vec<usize>>,
    by_ticker: HashMap<String, Vec<usize>>,
    any_ticker: Vec<usize>,
}

impl Groups {
    fn new(filters: &[String]) -> Result<Groups, BenchError> {
        let mut g = Groups {
            filters: Vec::new(),
            members: Vec::new(),
            by_ticker: HashMap::new(),
            any_ticker: Vec::new(),
        };
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (client, text) in filters.iter().enumerate() {
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
            g.members[id].push(client);
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
    let groups = Groups::new(filters)?;
    let mut per_group = vec![Expected::default(); groups.filters.len()];
    let mut window = Window::default();
    let mut cursor = after;
    'pages: loop {
        let page = bus.flow_after(cursor, PAGE).await?;
        let Some(last) = page.last() else { break };
        cursor = last.id;
        for entry in &page {
            if entry.id > through {
                break 'pages;
            }
            let event: FlowEvent = match serde_json::from_str(&entry.json) {
                Ok(e) => e,
                Err(_) => {
                    window.malformed += 1;
                    continue;
                }
            };
            window.events += 1;
            for g in groups.candidates(&event.sym) {
                if groups.filters[g].matches(&event) {
                    per_group[g].add(entry.id);
                }
            }
        }
        if page.len() < PAGE {
            break;
        }
    }
    window.expected = vec![Expected::default(); filters.len()];
    for (g, members) in groups.members.iter().enumerate() {
        for &client in members {
            window.expected[client] = per_group[g];
        }
    }
    Ok(window)
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

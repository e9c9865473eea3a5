//! Whether the flow stream still holds the history after a cursor: kept,
//! trimmed by retention, or lost.
//!
//! The bus reads what the stream holds ([`StreamFacts`], atomically) and
//! [`judge`] applies the rule of `docs/redis.md` ("History loss") to a
//! cursor. Retention removes the oldest entries of one stream on purpose;
//! loss is a stream created after the cursor (its origin is newer: Redis
//! restarted without persistence) or one that never reached it (the cursor
//! is newer than the last id it generated: a failover or a stale snapshot
//! lost the tail). No I/O happens here.

use flowtape_core::cursor::Cursor;
use flowtape_core::protocol::LostRange;

/// What the flow stream holds around one cursor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamFacts {
    /// The first id written to the stream since it was created (the
    /// origin key); `None` when unknown (a stream older than the key).
    pub origin: Option<Cursor>,
    /// The newest id the stream has generated (`XINFO STREAM`
    /// `last-generated-id`; trimming leaves it).
    pub last_generated: Cursor,
    /// The oldest entry kept.
    pub first: Option<Cursor>,
    /// The newest entry at or before the cursor.
    pub at_or_before: Option<Cursor>,
    /// The oldest entry after the cursor.
    pub next: Option<Cursor>,
}

/// What became of the history after a cursor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Continuity {
    /// History after the cursor that the stream lost.
    pub lost: Option<LostRange>,
    /// Events after the cursor were trimmed by retention: the stream now
    /// starts later ("cursor too old").
    pub trimmed: bool,
}

/// Judges the history after `cursor` from the facts of the stream (`None`:
/// the stream does not exist). `delivered` says the cursor is the id of an
/// entry read from this stream (a hub's own cursor), so that an entry
/// missing between the oldest and newest kept was lost; a client's cursor
/// need not name an entry (it may be made from a time), so for it that
/// case reads as kept.
pub fn judge(facts: Option<&StreamFacts>, cursor: Cursor, delivered: bool) -> Continuity {
    let lost = |after, before| Continuity {
        lost: Some(LostRange { after, before }),
        trimmed: false,
    };
    if cursor == Cursor::ZERO {
        // From the beginning: no history was seen, none can have been lost.
        return Continuity {
            lost: None,
            trimmed: facts.is_some_and(|f| f.first.is_some()),
        };
    }
    let Some(f) = facts else {
        return lost(cursor, None);
    };
    if let Some(origin) = f.origin.filter(|origin| cursor < *origin) {
        return Continuity {
            trimmed: f.first.is_some_and(|first| first > origin),
            ..lost(cursor, Some(origin))
        };
    }
    if cursor > f.last_generated {
        return lost(f.last_generated, None);
    }
    if delivered && f.first.is_some_and(|first| first <= cursor) {
        if let Some(prev) = f.at_or_before.filter(|prev| *prev != cursor) {
            return lost(prev, f.next);
        }
    }
    Continuity {
        lost: None,
        trimmed: match f.first {
            Some(first) => cursor < first,
            None => cursor < f.last_generated,
        },
    }
}

/// The ranges joined where they overlap, oldest first.
pub fn merge(ranges: impl IntoIterator<Item = LostRange>) -> Vec<LostRange> {
    let mut ranges: Vec<LostRange> = ranges.into_iter().collect();
    ranges.sort_by_key(|r| r.after);
    let mut out: Vec<LostRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if last.reaches_past(r.after) => {
                // An open end means none kept after it was known: a kept
                // entry named by the other bounds the loss.
                last.before = match (last.before, r.before) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(ms: u64) -> Cursor {
        Cursor::new(ms, 0)
    }

    fn r(after: u64, before: Option<u64>) -> LostRange {
        LostRange {
            after: c(after),
            before: before.map(c),
        }
    }

    fn range(after: u64, before: Option<u64>) -> Option<LostRange> {
        Some(r(after, before))
    }

    /// A stream created at 100, kept from 200, that generated up to 500 and
    /// holds 300 and 400 around 350.
    fn facts() -> StreamFacts {
        StreamFacts {
            origin: Some(c(100)),
            last_generated: c(500),
            first: Some(c(200)),
            at_or_before: Some(c(300)),
            next: Some(c(400)),
        }
    }

    #[test]
    fn a_stream_restarted_after_the_cursor_lost_the_history_up_to_its_origin() {
        // Recreated at 100; the cursor is from the stream before it.
        let recreated = StreamFacts {
            first: Some(c(100)),
            ..facts()
        };
        assert_eq!(
            judge(Some(&recreated), c(50), false).lost,
            range(50, Some(100))
        );
        assert!(!judge(Some(&recreated), c(50), false).trimmed);
        // ... and has trimmed some of its own history since: both.
        let both = judge(Some(&facts()), c(50), false);
        assert_eq!((both.lost, both.trimmed), (range(50, Some(100)), true));
        // Gone altogether (restarted, nothing written yet).
        assert_eq!(judge(None, c(50), false).lost, range(50, None));
    }

    #[test]
    fn a_cursor_past_the_last_generated_id_lost_the_tail() {
        assert_eq!(judge(Some(&facts()), c(600), false).lost, range(500, None));
        assert_eq!(judge(Some(&facts()), c(600), true).lost, range(500, None));
    }

    #[test]
    fn trimming_is_not_loss() {
        // Older than the oldest kept but from this stream: trimmed.
        let old = judge(Some(&facts()), c(150), false);
        assert_eq!((old.lost, old.trimmed), (None, true));
        // A stream without an origin (older than the key) is never judged lost for it.
        let legacy = StreamFacts {
            origin: None,
            ..facts()
        };
        assert_eq!(
            judge(Some(&legacy), c(50), false),
            judge(Some(&legacy), c(150), false)
        );
        assert!(judge(Some(&legacy), c(50), false).trimmed);
        // Trimmed to empty by age: what followed the cursor was trimmed.
        let emptied = StreamFacts {
            first: None,
            at_or_before: None,
            next: None,
            ..facts()
        };
        assert_eq!(
            judge(Some(&emptied), c(450), true),
            Continuity {
                lost: None,
                trimmed: true
            }
        );
        assert_eq!(judge(Some(&emptied), c(500), true), Continuity::default());
    }

    #[test]
    fn a_delivered_cursor_missing_from_the_stream_was_lost_but_a_client_cursor_may_be_made_up() {
        // 350 is no entry: kept for a client (its cursor may come from a time) ...
        assert_eq!(judge(Some(&facts()), c(350), false), Continuity::default());
        // ... lost for a hub, which read 350 from the stream: a failover lost
        // the tail after 300 and has written from 400 on since.
        assert_eq!(
            judge(Some(&facts()), c(350), true).lost,
            range(300, Some(400))
        );
        // Kept when it is there.
        let at = StreamFacts {
            at_or_before: Some(c(350)),
            ..facts()
        };
        assert_eq!(judge(Some(&at), c(350), true), Continuity::default());
    }

    #[test]
    fn the_start_is_never_lost() {
        assert_eq!(judge(None, Cursor::ZERO, true), Continuity::default());
        assert_eq!(
            judge(Some(&facts()), Cursor::ZERO, false),
            Continuity {
                lost: None,
                trimmed: true
            }
        );
    }

    #[test]
    fn overlapping_ranges_merge() {
        assert_eq!(
            merge([
                r(50, Some(100)),
                r(70, Some(100)),
                r(200, Some(300)),
                r(300, None)
            ]),
            vec![r(50, Some(100)), r(200, Some(300)), r(300, None)]
        );
        assert_eq!(
            merge([r(300, None), r(350, Some(400))]),
            vec![r(300, Some(400))]
        );
        assert_eq!(
            merge([r(300, Some(400)), r(300, None)]),
            vec![r(300, Some(400))]
        );
        assert_eq!(
            merge([r(300, Some(320)), r(310, Some(400))]),
            vec![r(300, Some(400))]
        );
        assert!(merge([]).is_empty());
    }
}

//! Asking the gateway for the day's totals (`day` op) every so often.
//!
//! On each connection, [`DayAsker`] is due at once (on connect), then every
//! [`ClientOptions::day_every`](super::ClientOptions::day_every), and at
//! once again after a re-subscribe. A gateway that answers `unknown_op` (an
//! older server) or `unauthorized` (a delayed entitlement) is not asked
//! again on that connection (only a `day` request draws either once the
//! connection is up); errors about `day`, and these refusals, are not
//! handed to the owner.

use std::time::Duration;

use flowtape_core::date::Date;
use flowtape_core::protocol::{ClientMessage, ErrorCode, ServerMessage};
use tokio::time::{Interval, MissedTickBehavior};

/// Tickers and contracts asked for: the most the flow panel shows.
pub const DAY_TOP: u32 = 20;
/// How often the TUI asks (`docs/protocol.md`, `docs/tui.md`).
pub const DAY_EVERY: Duration = Duration::from_secs(5);

/// The `day` requests of one connection.
pub(super) struct DayAsker {
    /// `None`: not asking (not wanted, or refused on this connection).
    interval: Option<Interval>,
    /// Requests were sent on this connection: refusals may come back.
    asked: bool,
    /// The past day asked for (`None`: today).
    date: Option<Date>,
}

impl DayAsker {
    pub(super) fn new(every: Option<Duration>, date: Option<Date>) -> DayAsker {
        DayAsker {
            interval: every.filter(|e| !e.is_zero()).map(|every| {
                let mut i = tokio::time::interval(every);
                i.set_missed_tick_behavior(MissedTickBehavior::Delay);
                i
            }),
            asked: false,
            date,
        }
    }

    /// Asks for `date` (`None`: today) from now on, at once.
    pub(super) fn ask_for(&mut self, date: Option<Date>) {
        self.date = date;
        self.now();
    }

    /// Resolves when a request is due; never while not asking.
    pub(super) async fn due(&mut self) -> ClientMessage {
        match &mut self.interval {
            Some(i) => {
                i.tick().await;
                self.asked = true;
                ClientMessage::Day {
                    date: self.date,
                    top: Some(DAY_TOP),
                }
            }
            None => std::future::pending().await,
        }
    }

    /// A request is due now (after a re-subscribe).
    pub(super) fn now(&mut self) {
        if let Some(i) = &mut self.interval {
            i.reset_immediately();
        }
    }

    /// Whether `m` is the gateway's error answer to a `day` request, which
    /// is not handed to the owner (the last totals stay, their "as of"
    /// ageing): an error whose message starts `day:`, or a refusal for good
    /// (`unknown_op`, `unauthorized`), after which it is not asked again.
    pub(super) fn swallow(&mut self, m: &ServerMessage) -> bool {
        let ServerMessage::Error { code, message, .. } = m else {
            return false;
        };
        // Every request sent before the first refusal arrived is refused too.
        let refused = self.asked && matches!(code, ErrorCode::UnknownOp | ErrorCode::Unauthorized);
        if refused {
            if self.interval.take().is_some() {
                tracing::info!(%message, "the gateway does not serve the day's totals");
            }
            return true;
        }
        let ours = message.starts_with(DAY_ERROR_PREFIX);
        if ours {
            tracing::debug!(?code, %message, "day totals not read");
        }
        // A past day's refusal (not archived, no archive) is the owner's to show.
        ours && self.date.is_none()
    }
}

/// How the gateway's errors about a `day` request begin (`docs/protocol.md`).
pub const DAY_ERROR_PREFIX: &str = "day:";

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a request comes due within a moment.
    async fn soon(asker: &mut DayAsker) -> bool {
        tokio::time::timeout(Duration::from_millis(100), asker.due())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn due_at_once_then_after_the_interval_or_now_until_refused() {
        let mut asker = DayAsker::new(Some(Duration::from_secs(3600)), None);
        assert!(soon(&mut asker).await, "due at once on connect");
        assert!(!soon(&mut asker).await, "not again within the interval");
        asker.now();
        assert!(soon(&mut asker).await, "due at once after a re-subscribe");
        let other = ServerMessage::Error {
            code: ErrorCode::BadFilter,
            message: "x".into(),
            id: None,
        };
        assert!(!asker.swallow(&other), "not about day: the owner sees it");
        let unread = ServerMessage::Error {
            code: ErrorCode::Unavailable,
            message: "day: the day's totals cannot be read right now".into(),
            id: None,
        };
        assert!(asker.swallow(&unread));
        asker.now();
        assert!(soon(&mut asker).await, "still asking");
        let old_server = ServerMessage::Error {
            code: ErrorCode::UnknownOp,
            message: "unknown op \"day\"".into(),
            id: None,
        };
        assert!(asker.swallow(&old_server));
        assert!(
            asker.swallow(&old_server),
            "a request sent before is refused too"
        );
        asker.now();
        assert!(!soon(&mut asker).await, "not asked again");
        let mut off = DayAsker::new(None, None);
        assert!(!soon(&mut off).await);
        assert!(!off.swallow(&old_server), "never asked: not about day");
    }

    #[tokio::test]
    async fn a_past_day_is_asked_for_at_once_and_its_refusal_handed_over() {
        let mut asker = DayAsker::new(Some(Duration::from_secs(3600)), None);
        assert!(soon(&mut asker).await);
        let past = Date::from_ymd(2026, 11, 20).unwrap_or_else(|e| panic!("{e}"));
        asker.ask_for(Some(past));
        let asked = tokio::time::timeout(Duration::from_millis(100), asker.due()).await;
        assert!(
            matches!(asked, Ok(ClientMessage::Day { date: Some(d), .. }) if d == past),
            "{asked:?}"
        );
        let not_archived = ServerMessage::Error {
            code: ErrorCode::BadField,
            message: "day: 2026-11-20 is not in the archive".into(),
            id: None,
        };
        assert!(!asker.swallow(&not_archived), "the owner shows it");
        asker.ask_for(None);
        assert!(asker.swallow(&not_archived), "today's: kept back");
    }
}

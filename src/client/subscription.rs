//! Which `subscribe` the frames on one connection answer.
//!
//! The gateway handles a connection's subscribes one at a time, in order,
//! and answers each with a `status` carrying `retention` (then the replay,
//! `live: true` and live events), or with an error (`bad_filter`,
//! `bad_field`, `unavailable`) and nothing else; once the `retention` status
//! came, an `unavailable` error ends that subscription's replay. Frames of an
//! earlier subscription may still arrive after a later `subscribe` is sent.
//! [`Answers`] follows this, so the client knows when the stream of its
//! newest subscribe begins, and when the gateway could not serve it (the
//! event store was unavailable) so that it must be sent again
//! (`docs/protocol.md`).

use flowtape_core::protocol::{ErrorCode, ServerMessage};

/// The subscribes sent on one connection and how far the gateway has
/// answered them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Answers {
    /// Subscribes sent and not yet answered.
    unanswered: u32,
    /// The newest subscribe starts afresh (a backfill or live only), rather
    /// than resuming after a cursor.
    newest_fresh: bool,
    /// Between a `retention` status and the end of that replay.
    replaying: bool,
}

/// What a server message means for the newest subscribe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Nothing new.
    None,
    /// The gateway began answering the newest subscribe: what follows is its
    /// stream. `fresh`: it is a backfill or live only, not a resume.
    Began { fresh: bool },
    /// The event store was unavailable: the newest subscribe was refused
    /// (`began: false`), or its replay broke off after it began (`began:
    /// true`, and the events delivered so far stand). Either way the
    /// connection delivers nothing more until a `subscribe` is sent again.
    Unavailable { began: bool },
}

impl Answers {
    /// A subscribe was sent: `fresh` unless it resumes after a cursor.
    pub fn sent(&mut self, fresh: bool) {
        self.unanswered += 1;
        self.newest_fresh = fresh;
    }

    /// Whether a fresh subscribe is still unanswered: the stream on the
    /// connection is not yet the one it asked for.
    pub fn awaiting_fresh(&self) -> bool {
        self.unanswered > 0 && self.newest_fresh
    }

    /// Follows one server message.
    pub fn on_message(&mut self, m: &ServerMessage) -> Answer {
        match m {
            ServerMessage::Status {
                retention: Some(_), ..
            } => {
                self.replaying = true;
                self.unanswered = self.unanswered.saturating_sub(1);
                if self.unanswered == 0 {
                    return Answer::Began {
                        fresh: self.newest_fresh,
                    };
                }
            }
            ServerMessage::Status { live: true, .. } => self.replaying = false,
            ServerMessage::Error {
                code: ErrorCode::Unavailable,
                ..
            } if self.replaying => {
                self.replaying = false;
                if self.unanswered == 0 {
                    return Answer::Unavailable { began: true };
                }
            }
            ServerMessage::Error {
                code: ErrorCode::Unavailable,
                ..
            } if self.unanswered > 0 => {
                self.unanswered -= 1;
                if self.unanswered == 0 {
                    return Answer::Unavailable { began: false };
                }
            }
            ServerMessage::Error {
                code: ErrorCode::BadFilter | ErrorCode::BadField,
                ..
            } => self.unanswered = self.unanswered.saturating_sub(1),
            _ => {}
        }
        Answer::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtape_core::protocol::Retention;

    fn status(retention: bool, live: bool) -> ServerMessage {
        ServerMessage::Status {
            feed: None,
            retention: retention.then_some(Retention {
                max_events: 1,
                max_age_s: 0,
                oldest: None,
                max_backfill: 5000,
            }),
            notice: None,
            lost: None,
            live,
        }
    }

    fn error(code: ErrorCode) -> ServerMessage {
        ServerMessage::Error {
            code,
            message: String::new(),
            id: None,
        }
    }

    #[test]
    fn only_the_answer_to_the_newest_subscribe_begins_its_stream() {
        let mut a = Answers::default();
        a.sent(false);
        a.sent(true);
        a.sent(true);
        assert!(a.awaiting_fresh());
        assert_eq!(a.on_message(&status(true, false)), Answer::None);
        assert_eq!(a.on_message(&status(false, true)), Answer::None);
        // The second one failed to start; the third is answered.
        assert_eq!(a.on_message(&error(ErrorCode::Unavailable)), Answer::None);
        assert_eq!(
            a.on_message(&status(true, false)),
            Answer::Began { fresh: true }
        );
        assert!(!a.awaiting_fresh());
    }

    #[test]
    fn a_failed_replay_is_not_taken_for_an_answer() {
        let mut a = Answers::default();
        a.sent(true);
        a.on_message(&status(true, false));
        a.sent(true);
        // The first subscription's replay fails after its retention status;
        // the second supersedes it, so nothing needs sending again.
        assert_eq!(a.on_message(&error(ErrorCode::Unavailable)), Answer::None);
        assert!(a.awaiting_fresh(), "the second is still unanswered");
        assert_eq!(
            a.on_message(&status(true, false)),
            Answer::Began { fresh: true }
        );
        a.sent(false);
        assert!(!a.awaiting_fresh(), "a resume is not fresh");
        assert_eq!(
            a.on_message(&status(true, false)),
            Answer::Began { fresh: false }
        );
    }

    #[test]
    fn an_unavailable_store_asks_for_the_newest_subscribe_again() {
        let mut a = Answers::default();
        a.sent(true);
        assert_eq!(
            a.on_message(&error(ErrorCode::Unavailable)),
            Answer::Unavailable { began: false },
            "refused before it began"
        );
        a.sent(true);
        assert_eq!(
            a.on_message(&status(true, false)),
            Answer::Began { fresh: true }
        );
        assert_eq!(
            a.on_message(&error(ErrorCode::Unavailable)),
            Answer::Unavailable { began: true },
            "its replay broke off"
        );
        // A stray error (nothing unanswered, no replay) asks for nothing.
        assert_eq!(a.on_message(&error(ErrorCode::Unavailable)), Answer::None);
        assert_eq!(a.on_message(&error(ErrorCode::BadFilter)), Answer::None);
    }
}

//! The gateway's counters and latency histograms, rendered as Prometheus text
//! on `GET /metrics`.
//!
//! Everything is a relaxed atomic: the hot paths (the hub, each client's
//! writer) only add, and a scrape reads a consistent-enough snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::Arc;

use crate::archive::ArchiveReadMetrics;
use crate::metrics::{Exposition, Histogram, Kind};
use flowtape_core::protocol::{ErrorCode, FeedHealth, FeedStatus};

/// Why a handshake was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// HTTP 401: a missing or unknown token.
    Unauthorized,
    /// HTTP 429: the token's connection cap is reached.
    TokenCap,
    /// HTTP 400/404/405/426, a handshake timeout or an unreadable request.
    BadRequest,
    /// The TLS handshake failed.
    Tls,
}

/// Counters and histograms of one gateway. Names in Prometheus carry the
/// `flowtape_gateway_` prefix (see `docs/protocol.md`).
#[derive(Debug, Default)]
pub struct GatewayMetrics {
    /// Open WebSocket connections (gauge).
    pub connections: AtomicU64,
    /// Clients catching up after lagging, not yet live again (gauge).
    pub catching_up: AtomicU64,
    /// WebSocket connections accepted since start.
    pub connections_total: AtomicU64,
    /// Plain HTTP requests served (`/healthz`, `/metrics`, 404s).
    pub http_requests: AtomicU64,
    pub rejected_unauthorized: AtomicU64,
    pub rejected_token_cap: AtomicU64,
    pub rejected_bad_request: AtomicU64,
    pub rejected_tls: AtomicU64,
    /// Events the hub took from the bus (live or repaired), each once.
    pub events_in: AtomicU64,
    /// Of those, events delivered by repairing from the stream after a gap.
    pub events_repaired: AtomicU64,
    /// Gap repairs started (a lost subscription, a silent loss, a restart).
    pub gap_repairs: AtomicU64,
    /// Stream entries that are not valid flow events (skipped, logged).
    pub events_malformed: AtomicU64,
    /// Events written to client sockets (live and replayed), per client.
    pub events_out: AtomicU64,
    /// Events a client's filter left out.
    pub events_filtered: AtomicU64,
    /// Frames of the `events` batch form written.
    pub batches_out: AtomicU64,
    /// Clients closed with 4008 because their send queue overflowed, or
    /// dropped because their socket stopped taking data.
    pub slow_consumer_disconnects: AtomicU64,
    /// Bytes queued for all clients together (gauge; the count the memory
    /// budget keeps).
    pub queued_bytes: AtomicU64,
    /// The memory budget: the most bytes queued for all clients (gauge).
    pub max_queued_bytes: AtomicU64,
    /// Clients closed with 4008 to bring the bytes queued back under the
    /// memory budget (not counted in `slow_consumer_disconnects`).
    pub budget_disconnects: AtomicU64,
    /// Clients closed because they did not answer pings.
    pub heartbeat_timeouts: AtomicU64,
    /// Clients that lagged behind the live channel and resumed from the stream.
    pub lag_resumes: AtomicU64,
    /// Failed Redis (bus) operations.
    pub redis_errors: AtomicU64,
    /// Losses of history the live hub found in the stream it tails (each once).
    pub history_lost_live: AtomicU64,
    /// Loss notices sent to clients resuming from a cursor (`since`, or
    /// catching up after lagging), one per lost range.
    pub history_lost_resume: AtomicU64,
    /// Stream time the live hub's losses span, in milliseconds (once known).
    pub history_lost_ms: AtomicU64,
    /// Error frames sent, per code (see [`ErrorCode`]).
    client_errors: [AtomicU64; ERROR_CODES.len()],
    /// The feed's state as last read: 0 unknown, 1 ok, 2 degraded, 3 down.
    feed_state: AtomicU64,
    /// Since when (ms since the epoch) the feed has been in that state.
    feed_since_ms: AtomicU64,
    /// Trade time (`ts`) → flow stream commit (stream id time).
    pub feed_to_stream: Histogram,
    /// Flow stream commit (stream id time) → the hub has the event.
    pub stream_to_gateway: Histogram,
    /// The hub has the event → its frame is written to a client socket.
    pub gateway_to_socket: Histogram,
    /// History pages and past days' totals read from the archive.
    pub archive: Arc<ArchiveReadMetrics>,
}

const ERROR_CODES: [ErrorCode; 13] = [
    ErrorCode::InvalidJson,
    ErrorCode::NotUtf8,
    ErrorCode::UnknownOp,
    ErrorCode::BadField,
    ErrorCode::BadFilter,
    ErrorCode::BadCursor,
    ErrorCode::RateLimited,
    ErrorCode::Unauthorized,
    ErrorCode::NotSubscribed,
    ErrorCode::Unavailable,
    ErrorCode::Internal,
    ErrorCode::BadHistory,
    ErrorCode::HistoryUnavailable,
];

fn code_name(code: ErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl GatewayMetrics {
    pub(crate) fn count_error(&self, code: ErrorCode) {
        if let Some(i) = ERROR_CODES.iter().position(|c| *c == code) {
            self.client_errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Error frames sent with this code so far.
    pub fn errors_sent(&self, code: ErrorCode) -> u64 {
        ERROR_CODES
            .iter()
            .position(|c| *c == code)
            .map_or(0, |i| self.client_errors[i].load(Ordering::Relaxed))
    }

    pub(crate) fn count_rejection(&self, why: Rejection) {
        let counter = match why {
            Rejection::Unauthorized => &self.rejected_unauthorized,
            Rejection::TokenCap => &self.rejected_token_cap,
            Rejection::BadRequest => &self.rejected_bad_request,
            Rejection::Tls => &self.rejected_tls,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the feed status for the `flowtape_feed_state` gauge.
    pub fn set_feed(&self, feed: Option<&FeedStatus>) {
        let code = match feed.map(|f| f.state) {
            None => 0,
            Some(FeedHealth::Ok) => 1,
            Some(FeedHealth::Degraded) => 2,
            Some(FeedHealth::Down) => 3,
        };
        self.feed_state.store(code, Ordering::Relaxed);
        let since = feed.map_or(0, |f| f.since.max(0) as u64);
        self.feed_since_ms.store(since, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Exposition::default();
        self.render_into(&mut out);
        out.into_text()
    }

    /// Every family, into `out`.
    pub fn render_into(&self, out: &mut Exposition) {
        let get = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let state = get(&self.feed_state);
        out.labelled(
            "flowtape_feed_state",
            Kind::Gauge,
            "The market feed's state as this gateway last read it (1 = current).",
            "state",
            [(0, "unknown"), (1, "ok"), (2, "degraded"), (3, "down")]
                .map(|(code, name)| (name, u64::from(state == code))),
        );
        out.gauge(
            "flowtape_feed_state_since_seconds",
            "When the feed entered its current state (Unix time).",
            get(&self.feed_since_ms) as f64 / 1000.0,
        );
        out.gauge(
            "flowtape_gateway_connections",
            "Open WebSocket connections.",
            get(&self.connections),
        );
        out.gauge(
            "flowtape_gateway_clients_catching_up",
            "Clients catching up after lagging, not yet live again.",
            get(&self.catching_up),
        );
        for (name, help, v) in [
            (
                "flowtape_gateway_connections_total",
                "WebSocket connections accepted.",
                &self.connections_total,
            ),
            (
                "flowtape_gateway_http_requests_total",
                "Plain HTTP requests served.",
                &self.http_requests,
            ),
        ] {
            out.counter(name, help, get(v));
        }
        out.labelled(
            "flowtape_gateway_rejected_total",
            Kind::Counter,
            "Handshakes refused, by reason.",
            "reason",
            [
                ("unauthorized", &self.rejected_unauthorized),
                ("token_cap", &self.rejected_token_cap),
                ("bad_request", &self.rejected_bad_request),
                ("tls", &self.rejected_tls),
            ]
            .map(|(reason, v)| (reason, get(v))),
        );
        for (name, help, v) in [
            (
                "flowtape_gateway_events_in_total",
                "Events taken from the bus.",
                &self.events_in,
            ),
            (
                "flowtape_gateway_events_repaired_total",
                "Events delivered by gap repair from the stream.",
                &self.events_repaired,
            ),
            (
                "flowtape_gateway_gap_repairs_total",
                "Gap repairs started.",
                &self.gap_repairs,
            ),
            (
                "flowtape_gateway_events_malformed_total",
                "Stream entries that are not flow events.",
                &self.events_malformed,
            ),
            (
                "flowtape_gateway_events_out_total",
                "Events written to client sockets.",
                &self.events_out,
            ),
            (
                "flowtape_gateway_events_filtered_total",
                "Events left out by client filters.",
                &self.events_filtered,
            ),
            (
                "flowtape_gateway_batches_out_total",
                "Batched `events` frames written.",
                &self.batches_out,
            ),
            (
                "flowtape_gateway_slow_consumer_disconnects_total",
                "Clients closed with 4008, or dropped, for falling behind their own send queue.",
                &self.slow_consumer_disconnects,
            ),
            (
                "flowtape_gateway_budget_disconnects_total",
                "Clients closed with 4008 to bring the bytes queued back under the memory budget.",
                &self.budget_disconnects,
            ),
            (
                "flowtape_gateway_heartbeat_timeouts_total",
                "Clients closed for not answering pings.",
                &self.heartbeat_timeouts,
            ),
            (
                "flowtape_gateway_lag_resumes_total",
                "Clients resumed from the stream after lagging.",
                &self.lag_resumes,
            ),
            (
                "flowtape_gateway_redis_errors_total",
                "Failed Redis operations.",
                &self.redis_errors,
            ),
        ] {
            out.counter(name, help, get(v));
        }
        out.gauge(
            "flowtape_gateway_queued_bytes",
            "Bytes queued for all clients, not yet written.",
            get(&self.queued_bytes),
        );
        out.gauge(
            "flowtape_gateway_max_queued_bytes",
            "The memory budget: the most bytes queued for all clients.",
            get(&self.max_queued_bytes),
        );
        out.labelled(
            "flowtape_gateway_history_lost_total",
            Kind::Counter,
            "Losses of history (not retention), found by the live hub or told to a resuming client.",
            "at",
            [
                ("live", &self.history_lost_live),
                ("resume", &self.history_lost_resume),
            ]
            .map(|(at, v)| (at, get(v))),
        );
        out.counter(
            "flowtape_gateway_history_lost_seconds_total",
            "Stream time spanned by the losses the live hub found.",
            get(&self.history_lost_ms) as f64 / 1000.0,
        );
        out.labelled(
            "flowtape_gateway_client_errors_total",
            Kind::Counter,
            "Error frames sent, by code.",
            "code",
            ERROR_CODES
                .iter()
                .zip(&self.client_errors)
                .map(|(code, v)| (code_name(*code), get(v))),
        );
        out.histogram(
            "flowtape_gateway_feed_to_stream_seconds",
            "Trade time to flow stream commit (includes sweep windows).",
            &self.feed_to_stream,
        );
        out.histogram(
            "flowtape_gateway_stream_to_gateway_seconds",
            "Flow stream commit to the gateway hub.",
            &self.stream_to_gateway,
        );
        out.histogram(
            "flowtape_gateway_gateway_to_socket_seconds",
            "Gateway hub to the client socket write.",
            &self.gateway_to_socket,
        );
        self.archive.render_into(out, "flowtape_gateway");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_names_every_family() {
        let m = GatewayMetrics::default();
        m.count_error(ErrorCode::BadFilter);
        let text = m.render();
        for family in [
            "flowtape_gateway_connections ",
            "flowtape_gateway_clients_catching_up ",
            "flowtape_gateway_events_in_total ",
            "flowtape_gateway_events_out_total ",
            "flowtape_gateway_events_filtered_total ",
            "flowtape_gateway_slow_consumer_disconnects_total ",
            "flowtape_gateway_queued_bytes 0",
            "flowtape_gateway_max_queued_bytes 0",
            "flowtape_gateway_budget_disconnects_total 0",
            "flowtape_gateway_redis_errors_total ",
            "flowtape_gateway_history_lost_total{at=\"live\"} 0",
            "flowtape_gateway_history_lost_total{at=\"resume\"} 0",
            "flowtape_gateway_history_lost_seconds_total 0",
            "flowtape_gateway_client_errors_total{code=\"bad_filter\"} 1",
            "flowtape_gateway_stream_to_gateway_seconds_bucket",
            "flowtape_gateway_gateway_to_socket_seconds_count",
            "flowtape_gateway_archive_query_seconds_count 0",
            "flowtape_gateway_archive_errors_total 0",
            "flowtape_gateway_archive_undecodable_rows_total 0",
        ] {
            assert!(text.contains(family), "missing {family}");
        }
    }
}

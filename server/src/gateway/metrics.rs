//! The gateway's counters and latency histograms, rendered as Prometheus text
//! on `GET /metrics`.
//!
//! Everything is a relaxed atomic: the hot paths (the hub, each client's
//! writer) only add, and a scrape reads a consistent-enough snapshot.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use flowtape_core::protocol::{ErrorCode, FeedHealth, FeedStatus};

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// [`LATENCY_BUCKETS`] in whole microseconds, for finding an observation's
/// bucket without floating point.
const LATENCY_BUCKETS_US: [u64; 14] = {
    let mut us = [0u64; 14];
    let mut i = 0;
    while i < us.len() {
        us[i] = (LATENCY_BUCKETS[i] * 1e6 + 0.5) as u64;
        i += 1;
    }
    us
};

/// A fixed-bucket latency histogram.
#[derive(Debug)]
pub struct Histogram {
    /// Cumulative counts are computed at render time; these are per bucket,
    /// the last one being `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        self.observe_all(std::iter::once(d));
    }

    /// Observes several durations with one atomic add per bucket they fall
    /// in, not three per duration: the hub and the writers observe every
    /// event of a batch from several threads at once.
    pub fn observe_all(&self, ds: impl IntoIterator<Item = Duration>) {
        let mut counts = [0u64; LATENCY_BUCKETS.len() + 1];
        let (mut sum_us, mut count) = (0u64, 0u64);
        for d in ds {
            let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            // The first bucket whose bound is at least `us`, or `+Inf`.
            counts[LATENCY_BUCKETS_US.partition_point(|&b| b < us)] += 1;
            sum_us = sum_us.saturating_add(us);
            count += 1;
        }
        for (bucket, n) in self.buckets.iter().zip(counts) {
            if n > 0 {
                bucket.fetch_add(n, Ordering::Relaxed);
            }
        }
        if count > 0 {
            self.sum_us.fetch_add(sum_us, Ordering::Relaxed);
            self.count.fetch_add(count, Ordering::Relaxed);
        }
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            match LATENCY_BUCKETS.get(i) {
                Some(le) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {}", self.count());
    }
}

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
}

const ERROR_CODES: [ErrorCode; 11] = [
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

    /// The Prometheus text exposition of every metric.
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

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        let state = self.feed_state.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP flowtape_feed_state The market feed's state as this gateway last read it (1 = current).\n\
             # TYPE flowtape_feed_state gauge"
        );
        for (code, name) in [(0, "unknown"), (1, "ok"), (2, "degraded"), (3, "down")] {
            let _ = writeln!(
                out,
                "flowtape_feed_state{{state=\"{name}\"}} {}",
                u64::from(state == code)
            );
        }
        let _ = writeln!(
            out,
            "# HELP flowtape_feed_state_since_seconds When the feed entered its current state (Unix time).\n\
             # TYPE flowtape_feed_state_since_seconds gauge\nflowtape_feed_state_since_seconds {}",
            self.feed_since_ms.load(Ordering::Relaxed) as f64 / 1000.0
        );
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP flowtape_gateway_{name} {help}\n# TYPE flowtape_gateway_{name} counter\n\
                 flowtape_gateway_{name} {}",
                v.load(Ordering::Relaxed)
            );
        };
        let _ = writeln!(
            out,
            "# HELP flowtape_gateway_connections Open WebSocket connections.\n\
             # TYPE flowtape_gateway_connections gauge\nflowtape_gateway_connections {}",
            self.connections.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP flowtape_gateway_clients_catching_up Clients catching up after lagging, not yet live again.\n\
             # TYPE flowtape_gateway_clients_catching_up gauge\nflowtape_gateway_clients_catching_up {}",
            self.catching_up.load(Ordering::Relaxed)
        );
        counter(
            &mut out,
            "connections_total",
            "WebSocket connections accepted.",
            &self.connections_total,
        );
        counter(
            &mut out,
            "http_requests_total",
            "Plain HTTP requests served.",
            &self.http_requests,
        );
        let _ = writeln!(
            out,
            "# HELP flowtape_gateway_rejected_total Handshakes refused, by reason.\n\
             # TYPE flowtape_gateway_rejected_total counter"
        );
        for (reason, v) in [
            ("unauthorized", &self.rejected_unauthorized),
            ("token_cap", &self.rejected_token_cap),
            ("bad_request", &self.rejected_bad_request),
            ("tls", &self.rejected_tls),
        ] {
            let _ = writeln!(
                out,
                "flowtape_gateway_rejected_total{{reason=\"{reason}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
        counter(
            &mut out,
            "events_in_total",
            "Events taken from the bus.",
            &self.events_in,
        );
        counter(
            &mut out,
            "events_repaired_total",
            "Events delivered by gap repair from the stream.",
            &self.events_repaired,
        );
        counter(
            &mut out,
            "gap_repairs_total",
            "Gap repairs started.",
            &self.gap_repairs,
        );
        counter(
            &mut out,
            "events_malformed_total",
            "Stream entries that are not flow events.",
            &self.events_malformed,
        );
        counter(
            &mut out,
            "events_out_total",
            "Events written to client sockets.",
            &self.events_out,
        );
        counter(
            &mut out,
            "events_filtered_total",
            "Events left out by client filters.",
            &self.events_filtered,
        );
        counter(
            &mut out,
            "batches_out_total",
            "Batched `events` frames written.",
            &self.batches_out,
        );
        counter(
            &mut out,
            "slow_consumer_disconnects_total",
            "Clients closed with 4008, or dropped, for falling behind their own send queue.",
            &self.slow_consumer_disconnects,
        );
        let _ = writeln!(
            out,
            "# HELP flowtape_gateway_queued_bytes Bytes queued for all clients, not yet written.\n\
             # TYPE flowtape_gateway_queued_bytes gauge\nflowtape_gateway_queued_bytes {}\n\
             # HELP flowtape_gateway_max_queued_bytes The memory budget: the most bytes queued for all clients.\n\
             # TYPE flowtape_gateway_max_queued_bytes gauge\nflowtape_gateway_max_queued_bytes {}",
            self.queued_bytes.load(Ordering::Relaxed),
            self.max_queued_bytes.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "budget_disconnects_total",
            "Clients closed with 4008 to bring the bytes queued back under the memory budget.",
            &self.budget_disconnects,
        );
        counter(
            &mut out,
            "heartbeat_timeouts_total",
            "Clients closed for not answering pings.",
            &self.heartbeat_timeouts,
        );
        counter(
            &mut out,
            "lag_resumes_total",
            "Clients resumed from the stream after lagging.",
            &self.lag_resumes,
        );
        counter(
            &mut out,
            "redis_errors_total",
            "Failed Redis operations.",
            &self.redis_errors,
        );
        let _ = writeln!(
            out,
            "# HELP flowtape_gateway_history_lost_total Losses of history (not retention), \
             found by the live hub or told to a resuming client.\n\
             # TYPE flowtape_gateway_history_lost_total counter"
        );
        for (at, v) in [
            ("live", &self.history_lost_live),
            ("resume", &self.history_lost_resume),
        ] {
            let _ = writeln!(
                out,
                "flowtape_gateway_history_lost_total{{at=\"{at}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP flowtape_gateway_history_lost_seconds_total Stream time spanned by the losses the live hub found.\n\
             # TYPE flowtape_gateway_history_lost_seconds_total counter\n\
             flowtape_gateway_history_lost_seconds_total {}",
            self.history_lost_ms.load(Ordering::Relaxed) as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "# HELP flowtape_gateway_client_errors_total Error frames sent, by code.\n\
             # TYPE flowtape_gateway_client_errors_total counter"
        );
        for (code, v) in ERROR_CODES.iter().zip(&self.client_errors) {
            let _ = writeln!(
                out,
                "flowtape_gateway_client_errors_total{{code=\"{}\"}} {}",
                code_name(*code),
                v.load(Ordering::Relaxed)
            );
        }
        self.feed_to_stream.render(
            &mut out,
            "flowtape_gateway_feed_to_stream_seconds",
            "Trade time to flow stream commit (includes sweep windows).",
        );
        self.stream_to_gateway.render(
            &mut out,
            "flowtape_gateway_stream_to_gateway_seconds",
            "Flow stream commit to the gateway hub.",
        );
        self.gateway_to_socket.render(
            &mut out,
            "flowtape_gateway_gateway_to_socket_seconds",
            "Gateway hub to the client socket write.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"0.0005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count 3\n"), "{out}");
        // A bound is inclusive.
        let edge = Histogram::default();
        edge.observe(Duration::from_micros(2_500));
        let mut at_edge = String::new();
        edge.render(&mut at_edge, "x", "help");
        assert!(at_edge.contains("x_bucket{le=\"0.0025\"} 1\n"), "{at_edge}");
        // A batch counts as the same observations one by one.
        let batch = Histogram::default();
        batch.observe_all([300, 3_000, 60_000_000].map(Duration::from_micros));
        let mut batched = String::new();
        batch.render(&mut batched, "x", "help");
        assert_eq!(batched, out);
    }

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
        ] {
            assert!(text.contains(family), "missing {family}");
        }
    }
}

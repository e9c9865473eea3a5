//! What the archive role shows operators: its counters ([`ArchiveStats`],
//! updated by [`run`](super::run)) as `flowtape_archive_*` metrics, and its
//! health: unhealthy while PostgreSQL is unreachable or the archive lags the
//! stream by more than [`MAX_LAG`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flowtape_core::cursor::Cursor;
use serde_json::json;

use crate::bus::FlowBounds;
use crate::metrics::{Exposition, Health, Histogram, Role};

/// How far behind the stream's newest event the archive may be and count as healthy.
pub const MAX_LAG: Duration = Duration::from_secs(300);

/// The archive role's counters.
#[derive(Debug, Default)]
pub struct ArchiveStats {
    /// Events inserted into `flow_events`.
    pub archived: AtomicU64,
    /// Events written again after a crash and skipped (already archived).
    pub duplicates: AtomicU64,
    /// Stream entries that are not valid events (logged and skipped).
    pub skipped: AtomicU64,
    /// Events of days past the retention (not written).
    pub expired: AtomicU64,
    /// Failed PostgreSQL or bus operations (each retried).
    pub errors: AtomicU64,
    /// Partitions removed by retention.
    pub partitions_removed: AtomicU64,
    /// Finished days whose partitions were given their indexes.
    pub days_indexed: AtomicU64,
    pub postgres_up: AtomicBool,
    pub commit_latency: Histogram,
    /// Milliseconds between the newest archived event and the stream's newest.
    lag_ms: AtomicU64,
    /// Times the stream was found trimmed past the archived cursor.
    lost_gaps: AtomicU64,
    /// Stream time (ms) trimmed before it was archived, summed over the gaps.
    lost_ms: AtomicU64,
    /// The cursor a gap was last reported after (reported once).
    gap_reported_after: Mutex<Option<Cursor>>,
}

impl ArchiveStats {
    /// Notes where the stream stands against the archived `cursor`: the lag,
    /// and a loss when the stream's oldest entry is newer than the cursor
    /// (entries after it were trimmed before they were archived; with an
    /// archive that had caught up to the very entry trimmed last this reads
    /// as a loss of nothing, reported as a gap of 0–few ms).
    pub fn observe_stream(&self, cursor: Cursor, bounds: &FlowBounds) {
        // Before its first event, the archive is as far behind as the stream is long.
        let archived_ms = match bounds.first {
            Some(first) if cursor == Cursor::ZERO => first.ms,
            _ => cursor.ms,
        };
        let last_ms = bounds.last.map_or(archived_ms, |l| l.ms);
        self.lag_ms
            .store(last_ms.saturating_sub(archived_ms), Ordering::Relaxed);
        let Some(first) = bounds
            .first
            .filter(|f| cursor != Cursor::ZERO && *f > cursor)
        else {
            return;
        };
        let Ok(mut reported) = self.gap_reported_after.lock() else {
            return;
        };
        if *reported == Some(cursor) {
            return;
        }
        *reported = Some(cursor);
        let lost = first.ms.saturating_sub(cursor.ms);
        self.lost_gaps.fetch_add(1, Ordering::Relaxed);
        self.lost_ms.fetch_add(lost, Ordering::Relaxed);
        tracing::error!(
            archived = %cursor,
            stream_starts = %first,
            "archive: the flow stream was trimmed past the archived cursor: \
             events of up to {:.1}s were lost to the archive",
            lost as f64 / 1000.0
        );
    }

    pub fn lag(&self) -> Duration {
        Duration::from_millis(self.lag_ms.load(Ordering::Relaxed))
    }

    /// Gaps found, and the stream time they cover.
    pub fn lost(&self) -> (u64, Duration) {
        (
            self.lost_gaps.load(Ordering::Relaxed),
            Duration::from_millis(self.lost_ms.load(Ordering::Relaxed)),
        )
    }
}

/// The archive role as operators see it.
pub struct ArchiveRole {
    pub stats: Arc<ArchiveStats>,
}

impl Role for ArchiveRole {
    fn name(&self) -> &'static str {
        "archive"
    }

    fn render(&self, out: &mut Exposition) {
        let s = &self.stats;
        let get = |v: &AtomicU64| v.load(Ordering::Relaxed);
        for (name, help, v) in [
            (
                "flowtape_archive_events_total",
                "Flow events written to PostgreSQL.",
                &s.archived,
            ),
            (
                "flowtape_archive_duplicates_skipped_total",
                "Events written again after a crash and skipped (already archived).",
                &s.duplicates,
            ),
            (
                "flowtape_archive_malformed_total",
                "Flow stream entries that are not valid events (skipped).",
                &s.skipped,
            ),
            (
                "flowtape_archive_expired_total",
                "Events of days past the archive's retention (not written).",
                &s.expired,
            ),
            (
                "flowtape_archive_errors_total",
                "Failed PostgreSQL or bus operations (each retried).",
                &s.errors,
            ),
            (
                "flowtape_archive_partitions_removed_total",
                "Day partitions dropped or detached by retention.",
                &s.partitions_removed,
            ),
            (
                "flowtape_archive_partitions_indexed_total",
                "Finished days whose partitions were given their secondary indexes.",
                &s.days_indexed,
            ),
        ] {
            out.counter(name, help, get(v));
        }
        let (gaps, lost) = s.lost();
        out.counter(
            "flowtape_archive_trim_gaps_total",
            "Times the flow stream was found trimmed past the archived cursor (events lost to the archive).",
            gaps,
        );
        out.counter(
            "flowtape_archive_lost_seconds_total",
            "Stream time trimmed before it was archived, summed over the gaps.",
            lost.as_secs_f64(),
        );
        out.histogram(
            "flowtape_archive_commit_seconds",
            "How long a batch took to write and commit.",
            &s.commit_latency,
        );
        out.gauge(
            "flowtape_archive_lag_seconds",
            "Stream time between the newest archived event and the stream's newest.",
            s.lag().as_secs_f64(),
        );
        out.gauge(
            "flowtape_archive_postgres_up",
            "1 while the archive's PostgreSQL connection works.",
            u8::from(s.postgres_up.load(Ordering::Relaxed)),
        );
    }

    fn health(&self) -> Health {
        let s = &self.stats;
        let mut health = Health::default();
        let up = s.postgres_up.load(Ordering::Relaxed);
        if !up {
            health.problems.push("postgres unreachable".into());
        }
        let lag = s.lag();
        if lag > MAX_LAG {
            health
                .problems
                .push(format!("archive {}s behind the flow stream", lag.as_secs()));
        }
        health.facts.insert("postgres_up".into(), up.into());
        health
            .facts
            .insert("lag_s".into(), json!(lag.as_secs_f64()));
        health
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trimmed_gap_is_counted_once() {
        let stats = ArchiveStats::default();
        let bounds = FlowBounds {
            len: 10,
            first: Some(Cursor::new(5000, 0)),
            last: Some(Cursor::new(9000, 0)),
        };
        stats.observe_stream(Cursor::ZERO, &bounds);
        assert_eq!(
            stats.lost().0,
            0,
            "starting from the beginning loses nothing"
        );
        stats.observe_stream(Cursor::new(6000, 0), &bounds);
        assert_eq!(stats.lost().0, 0);
        assert_eq!(stats.lag(), Duration::from_secs(3));
        stats.observe_stream(Cursor::new(2000, 0), &bounds);
        stats.observe_stream(Cursor::new(2000, 0), &bounds);
        assert_eq!(stats.lost(), (1, Duration::from_secs(3)));
    }
}

//! How a gateway runs: addresses, limits, timings, and the check that refuses
//! an unsafe setup (an open port without auth).

use std::net::SocketAddr;
use std::time::Duration;

use super::auth::AuthConfig;
use super::tls::TlsConfig;
use crate::archive::ArchiveUrl;
use flowtape_core::protocol::MAX_BACKFILL;

/// A per-connection token bucket on client messages.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimit {
    /// Messages per second allowed on average.
    pub per_second: f64,
    /// Messages allowed in a burst.
    pub burst: u32,
    /// Messages refused in a row (each answered with `rate_limited`) before
    /// the connection is closed with 1008.
    pub abuse_after: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 20.0,
            burst: 40,
            abuse_after: 100,
        }
    }
}

/// Everything a [`Gateway`](super::Gateway) needs besides the bus. Defaults
/// are the documented ones (`docs/protocol.md`, "Limits").
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Where to listen (`--listen`, default `127.0.0.1:8765`).
    pub listen: SocketAddr,
    /// Token auth (`--auth-file`); `None` admits anonymous clients.
    pub auth: Option<AuthConfig>,
    /// Admit anonymous clients on a non-loopback address (`--allow-anonymous`).
    pub allow_anonymous: bool,
    /// Serve `wss://` (`--tls-cert`, `--tls-key`).
    pub tls: Option<TlsConfig>,
    /// Open connections at most (WebSocket and plain HTTP together); the
    /// accept loop waits for a free slot before accepting.
    pub max_connections: usize,
    /// Largest client message and frame, in bytes; larger closes with 1009.
    pub max_message_size: usize,
    /// Bytes queued for one client's socket before it is closed as a slow consumer.
    pub send_queue_bytes: usize,
    /// Bytes queued for all clients together (`--max-queued-bytes`, the
    /// gateway's memory budget for send queues; at least
    /// `send_queue_bytes`). A queue that would take the total over it first
    /// closes the clients with the most bytes queued (4008), until the
    /// total is an eighth below it. The default, 512 MiB, is 128 full queues
    /// at once: a client that keeps up has next to nothing queued, and one
    /// whose queue stays full is closed after `catch_up_patience` anyway.
    pub max_queued_bytes: usize,
    /// Largest `events` batch frame the writer coalesces queued events into.
    pub max_batch_bytes: usize,
    /// The most bytes a client socket holds that it has not yet sent
    /// (`TCP_NOTSENT_LOWAT`). The socket takes more, and turns writable,
    /// only while less than this is unsent (half of it to wake a waiting
    /// writer). So a lagging client's backlog stays in the send queue, where
    /// it is counted, and a client that keeps reading frees room in steps
    /// of this size rather than in steps of a third of the whole kernel
    /// buffer (several seconds for a slow reader, which then looked
    /// stalled). The kernel buffer itself keeps autotuning, for clients far
    /// away.
    pub socket_unsent_limit: usize,
    /// At peaks, a client is written to at most once per this interval, and
    /// the events due meanwhile go out as one frame; zero writes each event
    /// as soon as the writer gets to it.
    pub coalesce: Duration,
    /// The server pings every client this often.
    pub ping_interval: Duration,
    /// A client that has sent nothing (no pong, no message) for
    /// `ping_interval + pong_timeout` is closed with 4009.
    pub pong_timeout: Duration,
    /// TLS handshake plus the HTTP request head must arrive within this.
    pub handshake_timeout: Duration,
    /// A socket that takes nothing for this long closes the connection as a
    /// slow consumer (a client that keeps reading is never cut off).
    pub write_timeout: Duration,
    pub rate_limit: RateLimit,
    /// The most a `backfill` may ask for.
    pub max_backfill: u32,
    /// A backfill reads at most this many stream entries backwards looking
    /// for matching events; a narrow filter may return fewer than asked.
    pub backfill_scan_cap: usize,
    /// Stream entries read per round trip when replaying or repairing.
    pub page_size: usize,
    /// A `history` page reads at most this many stream entries (checked per
    /// round trip); a sparse filter's page then says `more` and where to go on.
    pub history_scan_cap: usize,
    /// Each connection's `history` requests: 10 a second, bursts of 20.
    /// Refusals are `rate_limited` errors; they never close the connection.
    pub history_rate: RateLimit,
    /// How long the `delayed` entitlement holds events after their trade time.
    pub delay: Duration,
    /// How often the hub checks the stream for events the live channel did
    /// not bring (a silently lost subscription).
    pub repair_check: Duration,
    /// `/healthz` answers 503 when the gateway is further behind the stream.
    pub max_healthy_lag: Duration,
    /// Recent events each tier keeps in memory, so that a client whose send
    /// queue filled (or one resuming from a recent cursor) catches up without
    /// reading the flow stream.
    pub recent_events: usize,
    /// How long a replay, or a client catching up after its send queue
    /// filled, waits for room in the queue before the client is closed as a
    /// slow consumer (4008).
    pub catch_up_patience: Duration,
    /// On shutdown, how long to wait for connections to close.
    pub drain_timeout: Duration,
    /// How often the feed status is read from the bus; a change reaches
    /// every subscribed client within this.
    pub feed_poll: Duration,
    /// The day's totals (`day` op) are read from the bus at most once per
    /// this, whatever the number of clients asking; they are as old as this at most.
    pub day_cache: Duration,
    /// The archive's PostgreSQL (`[archive] postgres`): history pages past
    /// the flow stream and past days' totals are read from it. `None`: no
    /// archive, and such requests say so.
    pub archive: Option<ArchiveUrl>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8765)),
            auth: None,
            allow_anonymous: false,
            tls: None,
            max_connections: 10_000,
            max_message_size: 64 * 1024,
            send_queue_bytes: 4 * 1024 * 1024,
            max_queued_bytes: 512 * 1024 * 1024,
            max_batch_bytes: 64 * 1024,
            socket_unsent_limit: 128 * 1024,
            coalesce: Duration::from_millis(2),
            ping_interval: Duration::from_secs(15),
            pong_timeout: Duration::from_secs(15),
            handshake_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            rate_limit: RateLimit::default(),
            max_backfill: MAX_BACKFILL,
            backfill_scan_cap: 200_000,
            page_size: 1000,
            history_scan_cap: 20_000,
            history_rate: RateLimit {
                per_second: 10.0,
                burst: 20,
                abuse_after: u32::MAX,
            },
            delay: Duration::from_secs(15 * 60),
            repair_check: Duration::from_millis(500),
            max_healthy_lag: Duration::from_secs(10),
            recent_events: 32_768,
            catch_up_patience: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(5),
            feed_poll: Duration::from_secs(1),
            day_cache: Duration::from_secs(1),
            archive: None,
        }
    }
}

/// A configuration the gateway refuses to run with.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error(
        "refusing to listen on {0} without auth: anonymous clients are allowed only on loopback; \
         give --auth-file, or --allow-anonymous to serve everyone"
    )]
    AnonymousOnPublicAddress(SocketAddr),
    #[error("{name} must be at least {min}, got {got}")]
    TooSmall {
        name: &'static str,
        min: u64,
        got: u64,
    },
    #[error("max_backfill must be 0 to {MAX_BACKFILL}, got {0}")]
    Backfill(u32),
    #[error("rate limit must allow a positive rate and a burst of at least 1")]
    RateLimit,
}

impl ConfigError {
    /// The setting at fault, as the server's config file names it.
    pub fn key(&self) -> &'static str {
        match self {
            ConfigError::AnonymousOnPublicAddress(_) => "listen",
            ConfigError::TooSmall { name, .. } => name.split(' ').next().unwrap_or(name),
            ConfigError::Backfill(_) => "max_backfill",
            ConfigError::RateLimit => "rate_per_second",
        }
    }
}

impl GatewayConfig {
    /// Checks the configuration is safe and workable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.auth.is_none() && !self.allow_anonymous && !self.listen.ip().is_loopback() {
            return Err(ConfigError::AnonymousOnPublicAddress(self.listen));
        }
        let at_least = |name: &'static str, got: u64, min: u64| {
            if got < min {
                Err(ConfigError::TooSmall { name, min, got })
            } else {
                Ok(())
            }
        };
        let ms = |d: Duration| d.as_millis().min(u128::from(u64::MAX)) as u64;
        at_least("max_connections", self.max_connections as u64, 1)?;
        at_least("max_message_size", self.max_message_size as u64, 1024)?;
        at_least("max_batch_bytes", self.max_batch_bytes as u64, 1024)?;
        at_least("socket_unsent_limit", self.socket_unsent_limit as u64, 4096)?;
        // A queue must hold at least one full batch, or no batch could ever be sent.
        at_least(
            "send_queue_bytes",
            self.send_queue_bytes as u64,
            self.max_batch_bytes as u64,
        )?;
        // One client must be able to fill its own queue.
        at_least(
            "max_queued_bytes",
            self.max_queued_bytes as u64,
            self.send_queue_bytes as u64,
        )?;
        at_least("page_size", self.page_size as u64, 1)?;
        at_least("ping_interval (ms)", ms(self.ping_interval), 10)?;
        at_least("pong_timeout (ms)", ms(self.pong_timeout), 10)?;
        at_least("handshake_timeout (ms)", ms(self.handshake_timeout), 10)?;
        at_least("write_timeout (ms)", ms(self.write_timeout), 10)?;
        at_least("repair_check (ms)", ms(self.repair_check), 10)?;
        if self.max_backfill > MAX_BACKFILL {
            return Err(ConfigError::Backfill(self.max_backfill));
        }
        let r = &self.rate_limit;
        if !(r.per_second > 0.0 && r.per_second.is_finite()) || r.burst == 0 {
            return Err(ConfigError::RateLimit);
        }
        Ok(())
    }
}

/// A byte count that [`parse_byte_size`] could not read.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "invalid size {0:?}: give a whole number of bytes, optionally with a unit \
     (K/KiB, M/MiB, G/GiB: powers of 1024), e.g. 536870912 or 512MiB"
)]
pub struct ByteSizeError(String);

/// Reads a size in bytes for a flag such as `--max-queued-bytes`: a whole
/// number, optionally followed by a unit, `B`, `K`/`KiB`, `M`/`MiB` or
/// `G`/`GiB` (any case; all powers of 1024), with or without a space.
pub fn parse_byte_size(text: &str) -> Result<usize, ByteSizeError> {
    let invalid = || ByteSizeError(text.to_string());
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => return Err(invalid()),
    };
    let n: usize = digits.parse().map_err(|_| invalid())?;
    n.checked_mul(1 << shift).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_on_loopback() {
        assert_eq!(GatewayConfig::default().validate(), Ok(()));
        let v6 = GatewayConfig {
            listen: "[::1]:0".parse().unwrap_or_else(|e| panic!("{e}")),
            ..GatewayConfig::default()
        };
        assert_eq!(v6.validate(), Ok(()));
    }

    #[test]
    fn public_address_needs_auth_or_explicit_anonymous() {
        let open = GatewayConfig {
            listen: "0.0.0.0:8765".parse().unwrap_or_else(|e| panic!("{e}")),
            ..GatewayConfig::default()
        };
        assert!(matches!(
            open.validate(),
            Err(ConfigError::AnonymousOnPublicAddress(_))
        ));
        let anonymous = GatewayConfig {
            allow_anonymous: true,
            ..open.clone()
        };
        assert_eq!(anonymous.validate(), Ok(()));
        let auth = AuthConfig::parse("").unwrap_or_else(|e| panic!("{e}"));
        let authed = GatewayConfig {
            auth: Some(auth),
            ..open
        };
        assert_eq!(authed.validate(), Ok(()));
    }

    #[test]
    fn unworkable_limits_are_refused() {
        let tiny_queue = GatewayConfig {
            send_queue_bytes: 100,
            ..GatewayConfig::default()
        };
        assert!(matches!(
            tiny_queue.validate(),
            Err(ConfigError::TooSmall {
                name: "send_queue_bytes",
                ..
            })
        ));
        let small_budget = GatewayConfig {
            max_queued_bytes: GatewayConfig::default().send_queue_bytes - 1,
            ..GatewayConfig::default()
        };
        assert!(matches!(
            small_budget.validate(),
            Err(ConfigError::TooSmall {
                name: "max_queued_bytes",
                ..
            })
        ));
        let big_backfill = GatewayConfig {
            max_backfill: MAX_BACKFILL + 1,
            ..GatewayConfig::default()
        };
        assert!(matches!(
            big_backfill.validate(),
            Err(ConfigError::Backfill(_))
        ));
    }

    #[test]
    fn sizes_read_as_bytes_with_binary_units() {
        assert_eq!(parse_byte_size("536870912"), Ok(512 << 20));
        assert_eq!(parse_byte_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_byte_size("512 mib"), Ok(512 << 20));
        assert_eq!(parse_byte_size("64K"), Ok(64 << 10));
        assert_eq!(parse_byte_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_byte_size("100B"), Ok(100));
        assert_eq!(parse_byte_size(" 1g "), Ok(1 << 30));
        for bad in [
            "",
            "MiB",
            "1.5GiB",
            "-1",
            "12 TB",
            "5MB",
            "1e6",
            "99999999999999999999",
        ] {
            assert_eq!(
                parse_byte_size(bad),
                Err(ByteSizeError(bad.to_string())),
                "{bad:?}"
            );
        }
        assert!(parse_byte_size(&format!("{}G", usize::MAX)).is_err());
        let message = parse_byte_size("lots").map_err(|e| e.to_string());
        assert!(message.is_err_and(|m| m.contains("512MiB")));
    }
}

//! The Massive (formerly Polygon.io) options WebSocket feed.
//!
//! [`MassiveFeed`] connects to the options socket, authenticates, subscribes
//! (`T.*,Q.*` by default) and turns trades into [`Print`]s, sent to the sink
//! one batch per frame like every other feed (see [`crate::feed`]). Around it:
//!
//! - [`wire`]: the JSON frames and actions of the vendor protocol.
//! - [`session`]: one connection at a time: handshake, stall detection by
//!   silence, pings, reconnects through the [`Breaker`], close on shutdown.
//! - [`handlers`]: quotes into a bounded quote book joined onto trades
//!   (`bid`/`ask`), spot from the optional stocks socket, open interest from an
//!   optional snapshot file ([`oi`]). Unknown context stays `None`.
//! - [`book`]: the bounded per-symbol memory and the sequence check.
//! - [`stats`]: counters readable while the feed runs.
//!
//! The feed status (`ok` / `degraded` / `down`, with reason and since) is the
//! options socket's breaker state; the stocks socket only adds context, so its
//! troubles are logged and counted but never make the feed `down`.
//! Operator documentation: `docs/massive.md`.

mod book;
mod conn;
mod handlers;
mod oi;
mod session;
mod stats;
mod wire;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

pub use oi::{OiError, OpenInterest};
pub use stats::{MassiveStats, SocketCounters, SocketStats};

use self::book::Latest;
use self::conn::Upstream;
use self::handlers::{OptionsHandler, SpotBoard, SpotHandler};
use self::session::{supervise, Setup};
use super::breaker::{Breaker, BreakerConfig};
use super::FeedStats;
use crate::wsclient::{TlsClient, TrustRoots};
use flowtape_core::event::Print;
use flowtape_core::protocol::{FeedHealth, FeedStatus};

/// The options socket.
pub const DEFAULT_URL: &str = "wss://socket.massive.com/options";
/// Every option trade and quote.
pub const DEFAULT_SUBSCRIBE: &str = "T.*,Q.*";
/// Every stock trade, for spot.
pub const DEFAULT_STOCKS_SUBSCRIBE: &str = "T.*";

/// Stock tickers whose last price is kept: every listed US stock and ETF fits.
const SPOT_CAPACITY: usize = 32_768;

/// How long the stocks socket gets to send its close frame once the feed stops.
const STOCKS_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// How the Massive feed connects and what it keeps. `Debug` never shows the key.
#[derive(Clone)]
pub struct MassiveConfig {
    /// The options socket (`--massive-url`).
    pub url: String,
    /// The API key (`--massive-key`, env `MASSIVE_API_KEY`). Never logged.
    pub api_key: String,
    /// Subscription params for the options socket (`--massive-subscribe`).
    pub subscribe: String,
    /// The stocks socket for underlying spot (`--massive-stocks-url`); no spot without it.
    pub stocks_url: Option<String>,
    /// Subscription params for the stocks socket.
    pub stocks_subscribe: String,
    /// Open interest snapshot, CSV `occ,oi` (`--oi-file`); no OI without it.
    pub oi_file: Option<PathBuf>,
    /// Reconnects, stall detection and backoff; shared by both sockets.
    pub breaker: BreakerConfig,
    /// Contracts whose latest quote (and sequence number) is kept.
    pub quote_book_capacity: usize,
    /// A quote or spot more than this older than a trade (feed time) is not joined.
    pub context_max_age: Duration,
    /// TCP + TLS + WebSocket handshake must finish within this.
    pub connect_timeout: Duration,
    /// After `auth_failed`, the breaker stays open at least this long.
    pub auth_retry: Duration,
}

impl MassiveConfig {
    /// The documented defaults, with `api_key`.
    pub fn new(api_key: String) -> MassiveConfig {
        MassiveConfig {
            url: DEFAULT_URL.to_string(),
            api_key,
            subscribe: DEFAULT_SUBSCRIBE.to_string(),
            stocks_url: None,
            stocks_subscribe: DEFAULT_STOCKS_SUBSCRIBE.to_string(),
            oi_file: None,
            breaker: BreakerConfig::default(),
            quote_book_capacity: 500_000,
            context_max_age: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
            auth_retry: Duration::from_secs(300),
        }
    }
}

impl fmt::Debug for MassiveConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MassiveConfig")
            .field("url", &self.url)
            .field("api_key", &"<redacted>")
            .field("subscribe", &self.subscribe)
            .field("stocks_url", &self.stocks_url)
            .field("stocks_subscribe", &self.stocks_subscribe)
            .field("oi_file", &self.oi_file)
            .field("breaker", &self.breaker)
            .field("quote_book_capacity", &self.quote_book_capacity)
            .field("context_max_age", &self.context_max_age)
            .field("connect_timeout", &self.connect_timeout)
            .field("auth_retry", &self.auth_retry)
            .finish()
    }
}

/// Why the feed cannot start.
#[derive(Debug, thiserror::Error)]
pub enum MassiveError {
    #[error("the Massive feed needs an API key: --massive-key or MASSIVE_API_KEY")]
    MissingKey,
    #[error("upstream: {0}")]
    Upstream(#[from] crate::wsclient::SetupError),
    #[error("the quote book capacity must be at least 2")]
    Capacity,
    #[error(transparent)]
    OpenInterest(#[from] OiError),
}

/// The Massive feed, checked and ready to run. See the module docs.
#[derive(Debug)]
pub struct MassiveFeed {
    config: MassiveConfig,
    options: Upstream,
    stocks: Option<Upstream>,
    oi: OpenInterest,
    stats: Arc<MassiveStats>,
}

impl MassiveFeed {
    /// Checks the configuration, builds the TLS client if a URL is `wss://`,
    /// and loads the open interest file: everything that can fail before the
    /// first connection fails here.
    pub fn new(config: MassiveConfig) -> Result<MassiveFeed, MassiveError> {
        if config.api_key.trim().is_empty() {
            return Err(MassiveError::MissingKey);
        }
        if config.quote_book_capacity < 2 {
            return Err(MassiveError::Capacity);
        }
        let mut tls = TlsClient::new(TrustRoots::System);
        let options = Upstream::parse(&config.url, &mut tls)?;
        let stocks = config
            .stocks_url
            .as_deref()
            .map(|url| Upstream::parse(url, &mut tls))
            .transpose()?;
        let oi = match &config.oi_file {
            Some(path) => OpenInterest::load(path)?,
            None => OpenInterest::default(),
        };
        Ok(MassiveFeed {
            config,
            options,
            stocks,
            oi,
            stats: Arc::new(MassiveStats::default()),
        })
    }

    /// The live counters, to read while the feed runs.
    pub fn stats(&self) -> Arc<MassiveStats> {
        self.stats.clone()
    }

    /// Runs the feed until `shutdown` completes or the sink is closed, and
    /// returns what it did. Publishes the feed status on `status` (on change
    /// only). Never returns on upstream trouble: it reconnects through the
    /// breaker. [`FeedStats::malformed`] counts the options socket's skipped
    /// frames and messages.
    pub async fn run(
        self,
        sink: mpsc::Sender<Vec<Print>>,
        status: watch::Sender<FeedStatus>,
        shutdown: impl Future<Output = ()>,
    ) -> FeedStats {
        tokio::pin!(shutdown);
        let MassiveFeed {
            config,
            options,
            stocks,
            oi,
            stats,
        } = self;
        let seed = jitter_seed();
        let spot: Option<SpotBoard> = stocks.as_ref().map(|_| {
            Arc::new(Mutex::new(Latest::new(
                SPOT_CAPACITY,
                max_age_ms(config.context_max_age),
            )))
        });
        let (stop_stocks, stocks_task) = match (stocks, &spot) {
            (Some(upstream), Some(board)) => {
                let (stop, stopped) = watch::channel(false);
                let task = tokio::spawn(run_stocks(
                    config.clone(),
                    upstream,
                    board.clone(),
                    stats.clone(),
                    seed ^ 0x5EED_5EED,
                    stopped,
                ));
                (Some(stop), Some(task))
            }
            _ => (None, None),
        };

        let mut handler = OptionsHandler::new(
            config.quote_book_capacity,
            max_age_ms(config.context_max_age),
            spot,
            oi,
        );
        let mut breaker = Breaker::new(
            "massive",
            config.breaker.clone(),
            status,
            stats.options.breaker.clone(),
            seed,
            Instant::now(),
        );
        let setup = Setup {
            name: "massive",
            upstream: &options,
            api_key: &config.api_key,
            subscribe: &config.subscribe,
            connect_timeout: config.connect_timeout,
            auth_retry: config.auth_retry,
        };
        let mut feed = FeedStats::default();
        let end = supervise(
            &setup,
            &mut handler,
            &mut breaker,
            Some(&sink),
            &stats.options,
            &mut feed,
            &mut shutdown,
        )
        .await;

        if let (Some(stop), Some(task)) = (stop_stocks, stocks_task) {
            stop.send_replace(true);
            if tokio::time::timeout(STOCKS_STOP_TIMEOUT, task)
                .await
                .is_err()
            {
                tracing::warn!(
                    feed = "massive-stocks",
                    "the stocks socket did not stop in time"
                );
            }
        }
        feed.malformed = stats.options.snapshot().malformed;
        feed.end = end;
        feed
    }
}

/// The stocks socket: spot for the options feed, until `stopped` turns true.
async fn run_stocks(
    config: MassiveConfig,
    upstream: Upstream,
    board: SpotBoard,
    stats: Arc<MassiveStats>,
    seed: u64,
    mut stopped: watch::Receiver<bool>,
) {
    // Its status is not the feed's: it is logged by the breaker, never published.
    let (status, _) = watch::channel(FeedStatus {
        state: FeedHealth::Degraded,
        reason: String::new(),
        since: 0,
    });
    let mut breaker = Breaker::new(
        "massive-stocks",
        config.breaker.clone(),
        status,
        stats.stocks.breaker.clone(),
        seed,
        Instant::now(),
    );
    let setup = Setup {
        name: "massive-stocks",
        upstream: &upstream,
        api_key: &config.api_key,
        subscribe: &config.stocks_subscribe,
        connect_timeout: config.connect_timeout,
        auth_retry: config.auth_retry,
    };
    let mut handler = SpotHandler::new(board);
    let mut unused = FeedStats::default();
    let stop = async move {
        // An error means the feed is gone, which also means stop.
        let _ = stopped.wait_for(|s| *s).await;
    };
    tokio::pin!(stop);
    supervise(
        &setup,
        &mut handler,
        &mut breaker,
        None,
        &stats.stocks,
        &mut unused,
        &mut stop,
    )
    .await;
}

fn max_age_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A seed for backoff jitter that differs between processes started together.
fn jitter_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ u64::from(std::process::id()).rotate_left(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let config = MassiveConfig::new("sekrit-key-123".into());
        let shown = format!("{config:?}");
        assert!(!shown.contains("sekrit"), "{shown}");
        assert!(shown.contains("<redacted>"));
        let feed = MassiveFeed::new(MassiveConfig {
            url: "ws://127.0.0.1:1/options".into(),
            ..config
        });
        assert!(!format!("{feed:?}").contains("sekrit"));
    }

    #[test]
    fn refuses_a_missing_key_and_bad_urls_up_front() {
        let mk = |key: &str, url: &str| {
            MassiveFeed::new(MassiveConfig {
                url: url.into(),
                ..MassiveConfig::new(key.into())
            })
        };
        assert!(matches!(
            mk(" ", "ws://127.0.0.1:1/"),
            Err(MassiveError::MissingKey)
        ));
        assert!(matches!(
            mk("k", "https://x/"),
            Err(MassiveError::Upstream(crate::wsclient::SetupError::Url(_)))
        ));
        assert!(mk("k", "ws://127.0.0.1:1/").is_ok());
    }
}

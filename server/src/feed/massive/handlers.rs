//! What each socket does with its messages.
//!
//! - [`OptionsHandler`]: quotes go into the quote book; each trade becomes a
//!   [`Print`] with the latest fresh quote for its contract (`bid`/`ask`), the
//!   latest fresh spot of its underlying (`spot`) and its open interest (`oi`)
//!   joined on. Whatever is unknown or stale stays `None`.
//! - [`SpotHandler`]: the stocks socket's trades set the last price per ticker.

use std::sync::{Arc, Mutex};

use super::book::{Latest, SequenceCheck, Stream};
use super::oi::OpenInterest;
use super::session::Handler;
use super::stats::{worth_logging, SocketStats};
use super::wire::{Quote, Trade};
use flowtape_core::event::Print;
use flowtape_core::occ::Contract;

/// Last trade price per stock ticker, shared by the stocks socket (writer) and
/// the options socket (reader).
pub type SpotBoard = Arc<Mutex<Latest<String, f64>>>;

/// Turns option trades into prints, joining quote, spot and open interest.
#[derive(Debug)]
pub struct OptionsHandler {
    quotes: Latest<Contract, (f64, f64)>,
    sequence: SequenceCheck,
    spot: Option<SpotBoard>,
    oi: OpenInterest,
}

impl OptionsHandler {
    pub fn new(
        capacity: usize,
        max_age_ms: i64,
        spot: Option<SpotBoard>,
        oi: OpenInterest,
    ) -> OptionsHandler {
        OptionsHandler {
            quotes: Latest::new(capacity, max_age_ms),
            sequence: SequenceCheck::new(capacity),
            spot,
            oi,
        }
    }

    fn check_sequence(
        &mut self,
        contract: Contract,
        stream: Stream,
        seq: u64,
        t_ms: i64,
        stats: &SocketStats,
    ) {
        if let Some(prev) = self.sequence.note(contract, stream, seq, t_ms) {
            let n = SocketStats::bump(&stats.out_of_sequence);
            if worth_logging(n) {
                tracing::warn!(
                    feed = "massive",
                    contract = %contract,
                    ?stream,
                    seq,
                    previous = prev,
                    out_of_sequence_so_far = n,
                    "sequence number did not increase"
                );
            }
        }
    }

    fn spot_at(&self, contract: &Contract, t_ms: i64) -> Option<f64> {
        let board = self.spot.as_ref()?;
        let mut board = board.lock().ok()?;
        board.fresh_at(contract.underlying(), t_ms)
    }
}

impl Handler for OptionsHandler {
    fn on_connect(&mut self) {
        // Sequence numbers are compared within a connection; the quote book is kept.
        self.sequence.reset();
    }

    fn on_trade(
        &mut self,
        trade: Trade<'_>,
        out: &mut Vec<Print>,
        stats: &SocketStats,
    ) -> Result<(), String> {
        let contract = Contract::parse(&trade.sym).map_err(|e| e.to_string())?;
        let ts_ns = trade
            .t_ms
            .checked_mul(1_000_000)
            .ok_or_else(|| format!("trade time {} is out of range", trade.t_ms))?;
        self.check_sequence(contract, Stream::Trade, trade.seq, trade.t_ms, stats);
        let quote = self.quotes.fresh_at(&contract, trade.t_ms);
        out.push(Print {
            contract,
            price: trade.price,
            size: trade.size,
            exchange: trade.exchange,
            conditions: trade.conditions,
            ts_ns,
            seq: trade.seq,
            bid: quote.map(|q| q.0),
            ask: quote.map(|q| q.1),
            spot: self.spot_at(&contract, trade.t_ms),
            oi: self.oi.get(&contract),
        });
        Ok(())
    }

    fn on_quote(&mut self, quote: Quote<'_>, stats: &SocketStats) -> Result<(), String> {
        let contract = Contract::parse(&quote.sym).map_err(|e| e.to_string())?;
        self.check_sequence(contract, Stream::Quote, quote.seq, quote.t_ms, stats);
        self.quotes
            .update(contract, (quote.bid, quote.ask), quote.t_ms);
        Ok(())
    }
}

/// Keeps the last trade price per stock ticker.
#[derive(Debug)]
pub struct SpotHandler {
    board: SpotBoard,
}

impl SpotHandler {
    pub fn new(board: SpotBoard) -> SpotHandler {
        SpotHandler { board }
    }
}

impl Handler for SpotHandler {
    fn on_connect(&mut self) {}

    fn on_trade(
        &mut self,
        trade: Trade<'_>,
        _out: &mut Vec<Print>,
        _stats: &SocketStats,
    ) -> Result<(), String> {
        if trade.sym.is_empty() {
            return Err("stock trade without a ticker".to_string());
        }
        if trade.price > 0.0 {
            if let Ok(mut board) = self.board.lock() {
                board.update(trade.sym.into_owned(), trade.price, trade.t_ms);
            }
        }
        Ok(())
    }

    /// Stock quotes are not used (the stocks socket subscribes to trades).
    fn on_quote(&mut self, _quote: Quote<'_>, _stats: &SocketStats) -> Result<(), String> {
        Ok(())
    }
}

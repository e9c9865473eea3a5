//! The detector: prints in, flow events out, with exact bookkeeping of which
//! stream entries each result covers.
//!
//! [`Detector`] composes the pieces of this module: the condition table says
//! what each print is, the [`SweepDetector`] groups ISO legs into orders,
//! [`describe`] turns an order into an event, [`DayVolume`] and
//! [`RepeatTracker`] supply the day's memory, [`tags_for`] and [`score`] judge
//! it. It does no I/O and never reads a clock: the caller supplies feed time
//! to [`Detector::flush_due`].

use crate::conditions::ConditionTable;
use crate::cursor::Cursor;
use crate::date::{market_date, Date};
use crate::event::{FlowEvent, Print};
use crate::occ::Contract;

use super::config::DetectionConfig;
use super::enrich::describe;
use super::repeat::RepeatTracker;
use super::score::score;
use super::sweep::{Order, SweepDetector};
use super::tags::tags_for;
use super::volume::DayVolume;

/// One result of detection: an event, or a print dropped without one, with
/// the stream entries it accounts for. Once a `Detected` is handled, all of
/// its `entries` may be acknowledged.
#[derive(Clone, Debug, PartialEq)]
pub struct Detected {
    /// The event, with an empty `id` for the stream to assign; `None` when the
    /// print was dropped (canceled, or not a trade: zero size or no valid price).
    pub event: Option<FlowEvent>,
    /// Entry ids of every print this result covers, in the order they were pushed.
    pub entries: Vec<Cursor>,
}

/// Turns prints into [`FlowEvent`]s. See the module docs and `docs/detection.md`.
#[derive(Debug)]
pub struct Detector {
    config: DetectionConfig,
    conditions: ConditionTable,
    sweeps: SweepDetector,
    volume: DayVolume,
    repeats: RepeatTracker,
    /// Orders closed by the current call, reused between calls.
    closed: Vec<Order>,
}

impl Detector {
    /// A detector with empty memory. `config` is used as given; a loader
    /// should check it with [`DetectionConfig::validate`] first.
    pub fn new(config: DetectionConfig, conditions: ConditionTable) -> Detector {
        Detector {
            sweeps: SweepDetector::new(config.sweep_window_ns()),
            repeats: RepeatTracker::new(config.repeat_window()),
            volume: DayVolume::new(),
            closed: Vec::new(),
            config,
            conditions,
        }
    }

    pub fn config(&self) -> &DetectionConfig {
        &self.config
    }

    /// Takes one print, stored under stream entry `id`, and appends whatever
    /// it completes to `out`: nothing while it is held in an open sweep group;
    /// the group it could not join; its own event; or a dropped result.
    pub fn push(&mut self, id: Cursor, print: Print, out: &mut Vec<Detected>) {
        let flags = self.conditions.flags(&print.conditions);
        if flags.canceled || !is_trade(&print) {
            out.push(Detected {
                event: None,
                entries: vec![id],
            });
            return;
        }
        self.sweeps.push(id, print, flags, &mut self.closed);
        self.emit(out);
    }

    /// Closes every sweep group whose window has passed at feed time `now_ns`
    /// (nanoseconds since the epoch, on the prints' clock: for example the
    /// newest print time seen plus the real time elapsed since it arrived).
    pub fn flush_due(&mut self, now_ns: i64, out: &mut Vec<Detected>) {
        self.sweeps.flush_due(now_ns, &mut self.closed);
        self.emit(out);
    }

    /// Closes every open group, whatever the time: at the end of a replay or on shutdown.
    pub fn flush_all(&mut self, out: &mut Vec<Detected>) {
        self.sweeps.flush_all(&mut self.closed);
        self.emit(out);
    }

    /// The smallest entry id held in an open group: it and anything after it
    /// may not be acknowledged yet.
    pub fn oldest_open(&self) -> Option<Cursor> {
        self.sweeps.oldest_open()
    }

    /// Every entry id held in an open group, in no particular order.
    pub fn pending_ids(&self) -> impl Iterator<Item = Cursor> + '_ {
        self.sweeps.pending_ids()
    }

    /// Sets the day volume of `contract` on market date `date`, for instance
    /// from what was published before a restart.
    pub fn set_day_volume(&mut self, contract: Contract, date: Date, vol: u64) {
        self.volume.set(contract, date, vol);
    }

    /// The day volume counted so far for `contract` on market date `date`.
    pub fn day_volume(&self, contract: Contract, date: Date) -> u64 {
        self.volume.get(contract, date)
    }

    fn emit(&mut self, out: &mut Vec<Detected>) {
        let mut closed = std::mem::take(&mut self.closed);
        for order in closed.drain(..) {
            let event = self.judge(&order);
            out.push(Detected {
                event: Some(event),
                entries: order.entries().to_vec(),
            });
        }
        self.closed = closed;
    }

    /// The complete event for an order, counting it in day volume and repeats.
    fn judge(&mut self, order: &Order) -> FlowEvent {
        let mut event = describe(order, &self.config);
        let contract = order.first().contract;
        event.vol = self.volume.add(contract, market_date(event.ts), event.size);
        let hits = self.repeats.record(contract, event.sentiment, event.ts);
        event.tags = tags_for(&event, &self.config, hits);
        event.score = score(&event, &self.config.score);
        event
    }
}

/// A print that can be a trade: some contracts at a positive price.
fn is_trade(print: &Print) -> bool {
    print.size > 0 && print.price.is_finite() && print.price > 0.0
}

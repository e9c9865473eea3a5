//! The day's premium totals: what the processors sum for one New York
//! trading day, read back, summed and ranked.
//!
//! [`DayTotals`] is built from the day-aggregate hash fields
//! (`SYM:call|put|bull|bear` per ticker, the unpadded OSI symbol per
//! contract, each → cents; `docs/redis.md`); a field or amount it cannot
//! read is counted in [`DayTotals::skipped`] and left out, never a panic.
//! [`DayTotals::report`] makes a [`DayReport`], the body of the protocol's
//! `day` frame. Amounts are integer cents throughout. No I/O happens here.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::date::Date;
use crate::occ::Contract;

/// The most tickers (and contracts) a `day` request may ask for.
pub const MAX_DAY_TOP: u32 = 100;
/// Tickers (and contracts) in a `day` answer when the request names no `top`.
pub const DEFAULT_DAY_TOP: u32 = 10;

/// Premium in cents: calls and puts (every print counts in one), bullish and
/// bearish (neutral prints count in neither).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Premium {
    pub call: i64,
    pub put: i64,
    pub bull: i64,
    pub bear: i64,
}

impl Premium {
    /// Call plus put premium: all the premium.
    pub fn total(&self) -> i64 {
        self.call.saturating_add(self.put)
    }

    /// Bullish minus bearish premium.
    pub fn net(&self) -> i64 {
        self.bull.saturating_sub(self.bear)
    }

    /// Call premium over put premium, if there is put premium.
    pub fn call_put_ratio(&self) -> Option<f64> {
        (self.put > 0).then(|| self.call.max(0) as f64 / self.put as f64)
    }

    /// Bullish share of directional premium, 0–1, if there is any.
    pub fn bull_share(&self) -> Option<f64> {
        let (bull, bear) = (self.bull.max(0), self.bear.max(0));
        let total = bull.saturating_add(bear);
        (total > 0).then(|| bull as f64 / total as f64)
    }

    fn add(&mut self, other: &Premium) {
        self.call = self.call.saturating_add(other.call);
        self.put = self.put.saturating_add(other.put);
        self.bull = self.bull.saturating_add(other.bull);
        self.bear = self.bear.saturating_add(other.bear);
    }
}

/// What one day-aggregate hash field counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field<'a> {
    /// `SYM:call`, `SYM:put`, `SYM:bull`, `SYM:bear`.
    Ticker(&'a str, Bucket),
    /// An unpadded OSI symbol: that contract's premium.
    Contract(&'a str),
}

/// The four per-ticker premium buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    Call,
    Put,
    Bull,
    Bear,
}

impl Field<'_> {
    /// Reads a hash field name; `None` for a name that is neither form.
    pub fn parse(field: &str) -> Option<Field<'_>> {
        match field.split_once(':') {
            Some((sym, bucket)) => {
                let bucket = match bucket {
                    "call" => Bucket::Call,
                    "put" => Bucket::Put,
                    "bull" => Bucket::Bull,
                    "bear" => Bucket::Bear,
                    _ => return None,
                };
                is_ticker(sym).then_some(Field::Ticker(sym, bucket))
            }
            None => Contract::parse(field).ok().map(|_| Field::Contract(field)),
        }
    }
}

/// 1–10 upper-case letters, digits or dots: what a premium field's ticker looks like.
fn is_ticker(s: &str) -> bool {
    (1..=10).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'.')
}

/// The day's premium per ticker and per contract, in cents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DayTotals {
    pub tickers: HashMap<String, Premium>,
    /// Unpadded OSI symbol → premium.
    pub contracts: HashMap<String, i64>,
    /// Fields left out: an unknown name, or an amount that is not an integer.
    pub skipped: u64,
}

impl DayTotals {
    /// Adds one hash field's amount; a field that is neither form is
    /// counted as skipped. Returns whether it was counted.
    pub fn add(&mut self, field: &str, cents: i64) -> bool {
        match Field::parse(field) {
            Some(Field::Ticker(sym, bucket)) => {
                let p = self.tickers.entry(sym.to_string()).or_default();
                let slot = match bucket {
                    Bucket::Call => &mut p.call,
                    Bucket::Put => &mut p.put,
                    Bucket::Bull => &mut p.bull,
                    Bucket::Bear => &mut p.bear,
                };
                *slot = slot.saturating_add(cents);
                true
            }
            Some(Field::Contract(occ)) => {
                let c = self.contracts.entry(occ.to_string()).or_default();
                *c = c.saturating_add(cents);
                true
            }
            None => {
                self.skipped += 1;
                false
            }
        }
    }

    /// [`DayTotals::add`] for a field and amount as stored (bytes): one that
    /// is not UTF-8, or an amount that is not an integer, is skipped.
    pub fn add_stored(&mut self, field: &[u8], amount: &[u8]) -> bool {
        let parsed = std::str::from_utf8(field).ok().zip(
            std::str::from_utf8(amount)
                .ok()
                .and_then(|a| a.parse::<i64>().ok()),
        );
        match parsed {
            Some((field, cents)) => self.add(field, cents),
            None => {
                self.skipped += 1;
                false
            }
        }
    }

    /// Adds another part of the day (another shard's) to this one.
    pub fn merge(&mut self, other: DayTotals) {
        for (sym, p) in other.tickers {
            self.tickers.entry(sym).or_default().add(&p);
        }
        for (occ, cents) in other.contracts {
            let c = self.contracts.entry(occ).or_default();
            *c = c.saturating_add(cents);
        }
        self.skipped += other.skipped;
    }

    /// Every ticker's premium together.
    pub fn sum(&self) -> Premium {
        let mut total = Premium::default();
        for p in self.tickers.values() {
            total.add(p);
        }
        total
    }

    /// The `n` tickers with the most premium (calls and puts), most first;
    /// ties by name, so the order is stable.
    pub fn top_tickers(&self, n: usize) -> Vec<TickerPremium> {
        let mut v: Vec<TickerPremium> = self
            .tickers
            .iter()
            .map(|(sym, premium)| TickerPremium {
                sym: sym.clone(),
                premium: *premium,
            })
            .collect();
        v.sort_by(|a, b| {
            b.premium
                .total()
                .cmp(&a.premium.total())
                .then_with(|| a.sym.cmp(&b.sym))
        });
        v.truncate(n);
        v
    }

    /// The `n` contracts with the most premium, most first; ties by symbol.
    pub fn top_contracts(&self, n: usize) -> Vec<ContractPremium> {
        let mut v: Vec<ContractPremium> = self
            .contracts
            .iter()
            .map(|(occ, premium)| ContractPremium {
                occ: occ.clone(),
                premium: *premium,
            })
            .collect();
        v.sort_by(|a, b| b.premium.cmp(&a.premium).then_with(|| a.occ.cmp(&b.occ)));
        v.truncate(n);
        v
    }

    /// The `day` frame's body: the totals and the top `top` tickers and contracts.
    pub fn report(&self, date: Date, as_of: i64, top: usize) -> DayReport {
        let sum = self.sum();
        DayReport {
            date,
            as_of,
            totals: DaySummary {
                call: sum.call,
                put: sum.put,
                bull: sum.bull,
                bear: sum.bear,
                tickers: self.tickers.len() as u64,
                contracts: self.contracts.len() as u64,
            },
            tickers: self.top_tickers(top),
            contracts: self.top_contracts(top),
        }
    }
}

/// One ticker's premium for the day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickerPremium {
    pub sym: String,
    #[serde(flatten)]
    pub premium: Premium,
}

/// One contract's premium for the day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractPremium {
    /// Unpadded OSI symbol.
    pub occ: String,
    /// Cents.
    pub premium: i64,
}

/// The whole day's premium, and how many tickers and contracts traded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaySummary {
    pub call: i64,
    pub put: i64,
    pub bull: i64,
    pub bear: i64,
    pub tickers: u64,
    pub contracts: u64,
}

impl DaySummary {
    pub fn premium(&self) -> Premium {
        Premium {
            call: self.call,
            put: self.put,
            bull: self.bull,
            bear: self.bear,
        }
    }
}

/// The day's totals as the gateway answers a `day` request (`docs/protocol.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayReport {
    /// The New York trading day.
    pub date: Date,
    /// When the totals were read, ms since the epoch.
    pub as_of: i64,
    pub totals: DaySummary,
    /// The top tickers by premium, most first.
    pub tickers: Vec<TickerPremium>,
    /// The top contracts by premium, most first.
    pub contracts: Vec<ContractPremium>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(fields: &[(&str, i64)]) -> DayTotals {
        let mut t = DayTotals::default();
        for (f, c) in fields {
            t.add(f, *c);
        }
        t
    }

    #[test]
    fn fields_are_read_by_their_form() {
        assert_eq!(
            Field::parse("SPY:call"),
            Some(Field::Ticker("SPY", Bucket::Call))
        );
        assert_eq!(
            Field::parse("BRK.B:bear"),
            Some(Field::Ticker("BRK.B", Bucket::Bear))
        );
        assert_eq!(
            Field::parse("SPY261218P00500000"),
            Some(Field::Contract("SPY261218P00500000"))
        );
        for junk in [
            "",
            ":call",
            "SPY:",
            "SPY:neutral",
            "spy:call",
            "SPY:call:x",
            "SPY",
            "SPY261218X00500000",
            "SPY  261218P00500000",
        ] {
            assert_eq!(Field::parse(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn junk_is_counted_and_skipped() {
        let mut t = totals(&[("SPY:call", 100), ("SPY:dance", 5), ("???", 1)]);
        assert!(!t.add_stored(b"SPY:put", b"12.5"));
        assert!(!t.add_stored(b"SPY:put", b""));
        assert!(!t.add_stored(&[0xff, 0xfe], b"1"));
        assert!(t.add_stored(b"SPY:put", b"-40"));
        assert_eq!(t.skipped, 5);
        assert_eq!(
            t.tickers.get("SPY"),
            Some(&Premium {
                call: 100,
                put: -40,
                bull: 0,
                bear: 0
            })
        );
        // Overflow saturates instead of panicking.
        t.add("SPY:call", i64::MAX);
        assert_eq!(t.sum().call, i64::MAX);
    }

    #[test]
    fn shards_merge_and_rank() {
        let mut a = totals(&[
            ("SPY:call", 500),
            ("SPY:bull", 500),
            ("SPY261218C00500000", 300),
            ("SPY261218C00510000", 200),
        ]);
        let b = totals(&[
            ("AAPL:put", 900),
            ("AAPL:bear", 600),
            ("SPY:put", 100),
            ("AAPL261218P00150000", 900),
            ("BAD:field", 1),
        ]);
        a.merge(b);
        assert_eq!(a.skipped, 1);
        assert_eq!(
            a.sum(),
            Premium {
                call: 500,
                put: 1000,
                bull: 500,
                bear: 600
            }
        );
        let top = a.top_tickers(5);
        let syms: Vec<&str> = top.iter().map(|t| t.sym.as_str()).collect();
        assert_eq!(syms, ["AAPL", "SPY"]);
        assert_eq!(top[1].premium.total(), 600);
        assert_eq!(top[0].premium.net(), -600);
        let contracts = a.top_contracts(2);
        assert_eq!(
            contracts,
            [
                ContractPremium {
                    occ: "AAPL261218P00150000".into(),
                    premium: 900
                },
                ContractPremium {
                    occ: "SPY261218C00500000".into(),
                    premium: 300
                }
            ]
        );
        // Ties go by name.
        let tied = totals(&[("ZZ:call", 5), ("AA:put", 5)]);
        assert_eq!(tied.top_tickers(2)[0].sym, "AA");
    }

    #[test]
    fn ratios_need_a_denominator() {
        let p = Premium {
            call: 300,
            put: 100,
            bull: 3,
            bear: 1,
        };
        assert_eq!(p.call_put_ratio(), Some(3.0));
        assert_eq!(p.bull_share(), Some(0.75));
        assert_eq!(Premium::default().call_put_ratio(), None);
        assert_eq!(Premium::default().bull_share(), None);
    }

    #[test]
    fn a_report_round_trips_as_json() {
        let t = totals(&[
            ("SPY:call", 150_000),
            ("SPY:bull", 150_000),
            ("SPY261218C00500000", 150_000),
        ]);
        let date = Date::from_ymd(2026, 12, 7).unwrap_or_else(|e| panic!("{e}"));
        let report = t.report(date, 1_796_000_000_000, 10);
        let text = serde_json::to_string(&report).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"date":"2026-12-07","as_of":1796000000000,"totals":{"call":150000,"put":0,"bull":150000,"bear":0,"tickers":1,"contracts":1},"tickers":[{"sym":"SPY","call":150000,"put":0,"bull":150000,"bear":0}],"contracts":[{"occ":"SPY261218C00500000","premium":150000}]}"#
        );
        let back: DayReport = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, report);
    }
}

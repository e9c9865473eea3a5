//! The day's totals as the gateway last reported them (`day` frames), and
//! which of them the flow panel shows.
//!
//! Until a report comes (or when the gateway does not serve them), the side
//! panel falls back to the buffer's figures, labelled as the events in view.
//! The report is kept as it came; its `as_of` tells how old it is.

use flowtape_core::date::Date;
use flowtape_core::day::DayReport;

/// What the flow panel ranks: tickers or contracts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DayView {
    /// Tickers, by net premium (the day's, or the buffer's).
    #[default]
    Tickers,
    /// The day's top contracts by premium.
    Contracts,
}

/// The day's totals and the panel's view of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DayState {
    report: Option<DayReport>,
    /// The gateway's refusal for a past day, and for which day.
    error: Option<(Date, String)>,
    pub view: DayView,
}

impl DayState {
    /// The latest report, if the gateway sent one.
    pub fn report(&self) -> Option<&DayReport> {
        self.report.as_ref()
    }

    /// The latest report if it is for `date`.
    pub fn report_for(&self, date: Date) -> Option<&DayReport> {
        self.report.as_ref().filter(|r| r.date == date)
    }

    /// Why the gateway sent no totals for `date`, if it said.
    pub fn error_for(&self, date: Date) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|(d, _)| *d == date)
            .map(|(_, e)| e.as_str())
    }

    /// Takes a new report; an older one (by `as_of`, for the same or an
    /// earlier day) arriving late does not replace a newer one. A report
    /// for another day than `wanted` (one asked before the day shown
    /// changed) is dropped.
    pub fn receive(&mut self, report: DayReport, wanted: Date) {
        if report.date != wanted {
            return;
        }
        let newer = self
            .report
            .as_ref()
            .is_none_or(|r| r.date != wanted || report.as_of >= r.as_of);
        if newer {
            self.error = None;
            self.report = Some(report);
        }
    }

    /// The gateway refused the totals of `date` (`message`).
    pub fn refused(&mut self, date: Date, message: String) {
        self.error = Some((date, message));
    }

    /// Tickers → contracts → tickers.
    pub fn cycle(&mut self) {
        self.view = match self.view {
            DayView::Tickers => DayView::Contracts,
            DayView::Contracts => DayView::Tickers,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtape_core::day::DayTotals;

    fn report(day: u32, as_of: i64) -> DayReport {
        let date = Date::from_ymd(2026, 12, day).unwrap_or_else(|e| panic!("{e}"));
        DayTotals::default().report(date, as_of, 10)
    }

    fn date(day: u32) -> Date {
        Date::from_ymd(2026, 12, day).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_newest_report_wins_and_the_view_cycles() {
        let mut d = DayState::default();
        assert!(d.report().is_none());
        d.receive(report(7, 2_000), date(7));
        d.receive(report(7, 1_000), date(7));
        assert_eq!(d.report().map(|r| r.as_of), Some(2_000));
        d.receive(report(8, 500), date(8));
        assert_eq!(d.report().map(|r| r.date.day()), Some(8), "a new day");
        assert_eq!(d.view, DayView::Tickers);
        d.cycle();
        assert_eq!(d.view, DayView::Contracts);
        d.cycle();
        assert_eq!(d.view, DayView::Tickers);
    }

    #[test]
    fn a_past_day_takes_only_its_own_reports_and_keeps_its_refusal() {
        let mut d = DayState::default();
        d.receive(report(7, 2_000), date(7));
        // Looking at the 4th now: a late report for the 7th is dropped.
        d.receive(report(7, 3_000), date(4));
        assert_eq!(d.report_for(date(4)), None);
        assert_eq!(d.report().map(|r| r.as_of), Some(2_000));
        d.refused(date(4), "day: 2026-12-04 is not archived".into());
        assert_eq!(
            d.error_for(date(4)),
            Some("day: 2026-12-04 is not archived")
        );
        assert_eq!(d.error_for(date(7)), None);
        d.receive(report(4, 100), date(4));
        assert_eq!(d.report_for(date(4)).map(|r| r.as_of), Some(100));
        assert_eq!(d.error_for(date(4)), None, "answered at last");
    }
}

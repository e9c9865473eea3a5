//! The day's totals as the gateway last reported them (`day` frames), and
//! which of them the side panel shows.
//!
//! Until a report comes (or when the gateway does not serve them), the side
//! panel falls back to the buffer's figures, labelled as the events in view.
//! The report is kept as it came; its `as_of` tells how old it is.

use flowtape_core::day::DayReport;

/// What the side panel's day section ranks.
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
    pub view: DayView,
}

impl DayState {
    /// The latest report, if the gateway sent one.
    pub fn report(&self) -> Option<&DayReport> {
        self.report.as_ref()
    }

    /// Takes a new report; an older one (by `as_of`, for the same or an
    /// earlier day) arriving late does not replace a newer one.
    pub fn receive(&mut self, report: DayReport) {
        let newer = self
            .report
            .as_ref()
            .is_none_or(|r| (report.date, report.as_of) >= (r.date, r.as_of));
        if newer {
            self.report = Some(report);
        }
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
    use flowtape_core::date::Date;
    use flowtape_core::day::DayTotals;

    fn report(day: u32, as_of: i64) -> DayReport {
        let date = Date::from_ymd(2026, 12, day).unwrap_or_else(|e| panic!("{e}"));
        DayTotals::default().report(date, as_of, 10)
    }

    #[test]
    fn the_newest_report_wins_and_the_view_cycles() {
        let mut d = DayState::default();
        assert!(d.report().is_none());
        d.receive(report(7, 2_000));
        d.receive(report(7, 1_000));
        assert_eq!(d.report().map(|r| r.as_of), Some(2_000));
        d.receive(report(8, 500));
        assert_eq!(d.report().map(|r| r.date.day()), Some(8), "a new day");
        assert_eq!(d.view, DayView::Tickers);
        d.cycle();
        assert_eq!(d.view, DayView::Contracts);
        d.cycle();
        assert_eq!(d.view, DayView::Tickers);
    }
}

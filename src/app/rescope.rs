//! Changing what the tape shows: toggles, the view, the active watchlist,
//! the drill-down from a row, and the filter.
//!
//! Every change goes through [`App::change_scope`]: the new scope is applied
//! at once to what the buffer holds (so a switch is instant), the selected
//! event stays selected if it is still shown, and the gateway is asked for
//! the new scope with a backfill ([`Effect::Subscribe`]), which then merges
//! into the buffer by cursor.

use std::collections::BTreeSet;

use flowtape_core::occ::{Contract, Right};

use super::scope::Scope;
use super::{is_ticker, App, Effect};
use crate::config::WatchlistConfig;
use crate::keymap::Action;

impl App {
    /// Applies `change` to the scope, unless the result cannot be sent to
    /// the gateway (then the error is shown and nothing changes). Returns the
    /// subscribe to send, if the gateway's filter changed.
    pub(super) fn change_scope(&mut self, change: impl FnOnce(&mut Scope)) -> Option<Effect> {
        let mut scope = self.scope.clone();
        change(&mut scope);
        let wire = match scope.wire_filter() {
            Ok(wire) => wire,
            Err(e) => {
                self.error(format!("cannot show that: {e}"));
                return None;
            }
        };
        self.scope = scope;
        self.floor_pending = false;
        let kept = self.keeping_selection(|app| {
            let scope = &app.scope;
            app.tape.refilter(|e| scope.matches(e));
            if let Some(r) = app.past.replay.as_mut() {
                r.tape.refilter(|e| scope.matches(e));
            }
        });
        if !kept {
            self.sel = 0;
            self.offset = 0;
        }
        if wire == self.subscribed {
            return None;
        }
        self.subscribed = wire.clone();
        Some(Effect::Subscribe(wire))
    }

    /// A quick toggle: calls only, puts only, sweeps only, unusual only.
    pub(super) fn toggle(&mut self, action: Action) -> Option<Effect> {
        self.change_scope(|s| match action {
            Action::CallsOnly => s.toggles.toggle_right(Right::Call),
            Action::PutsOnly => s.toggles.toggle_right(Right::Put),
            Action::SweepsOnly => s.toggles.sweeps = !s.toggles.sweeps,
            Action::UnusualOnly => s.toggles.unusual = !s.toggles.unusual,
            _ => {}
        })
    }

    /// Takes the active watchlist's tickers into the scope.
    pub(super) fn watch_active(&mut self) -> Option<Effect> {
        let watch: Option<BTreeSet<String>> = self
            .active_watchlist
            .and_then(|i| self.watchlists.get(i))
            .map(|w| w.tickers.iter().cloned().collect());
        self.change_scope(|s| s.watch = watch)
    }

    /// Narrows the tape to the selected row's ticker, or back.
    pub(super) fn focus_ticker(&mut self) -> Option<Effect> {
        if self.scope.focus.ticker.is_some() {
            return self.change_scope(|s| s.focus.ticker = None);
        }
        let Some((_, entry)) = self.selected_entry() else {
            self.info("select a row to narrow the tape to its ticker");
            return None;
        };
        let sym = entry.event.sym.to_ascii_uppercase();
        self.change_scope(|s| s.focus.ticker = Some(sym))
    }

    /// Narrows the tape to the selected row's contract, or back.
    pub(super) fn focus_contract(&mut self) -> Option<Effect> {
        if self.scope.focus.contract.is_some() {
            return self.change_scope(|s| s.focus.contract = None);
        }
        let Some((_, entry)) = self.selected_entry() else {
            self.info("select a row to narrow the tape to its contract");
            return None;
        };
        let occ = entry.event.occ.clone();
        match Contract::parse(&occ.to_ascii_uppercase()) {
            Ok(contract) => self.change_scope(|s| s.focus.contract = Some(contract.osi())),
            Err(e) => {
                self.error(format!("cannot narrow to contract {occ:?}: {e}"));
                None
            }
        }
    }

    /// Adds the selected row's ticker to the active watchlist, else to the
    /// first (created if there is none), and saves the lists.
    pub(super) fn add_selected_to_watchlist(&mut self) -> Vec<Effect> {
        let Some((_, entry)) = self.selected_entry() else {
            self.info("select a row to add its ticker to a watchlist");
            return Vec::new();
        };
        let sym = entry.event.sym.to_ascii_uppercase();
        if !is_ticker(&sym) {
            self.error(format!(
                "{sym:?} is not a ticker: 1 to 6 letters, digits or dots"
            ));
            return Vec::new();
        }
        if self.watchlists.is_empty() {
            self.watchlists.push(WatchlistConfig {
                name: "watchlist".into(),
                tickers: Vec::new(),
            });
        }
        let i = self
            .active_watchlist
            .filter(|i| *i < self.watchlists.len())
            .unwrap_or(0);
        let list = &mut self.watchlists[i];
        if list.tickers.contains(&sym) {
            let text = format!("{sym} is already on watchlist {}", list.name);
            self.info(text);
            return Vec::new();
        }
        list.tickers.push(sym.clone());
        let save = Effect::SaveWatchlists {
            done: format!("added {sym} to watchlist {}", list.name),
            lists: self.watchlists.clone(),
        };
        let rescope = if self.active_watchlist == Some(i) {
            self.watch_active()
        } else {
            None
        };
        std::iter::once(save).chain(rescope).collect()
    }
}

#[cfg(test)]
mod tests;

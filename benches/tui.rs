//! TUI benchmarks (issue 6 targets): a full-frame render of the tape at
//! 200×50 with 10,000 buffered events (≤ 1 ms), and re-applying a filter over
//! 100,000 buffered events (≤ 20 ms). The events are realistic: the simulated
//! market run through the real detector.
//!
//! Run: `cargo bench --bench tui`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use flowtape::app::scope::View;
use flowtape::app::{App, AppConfig};
use flowtape::keymap::Keymap;
use flowtape::theme::Theme;
use flowtape::ui::{self, Skin};
use flowtape_core::conditions::ConditionTable;
use flowtape_core::cursor::Cursor;
use flowtape_core::detect::{DetectionConfig, Detector};
use flowtape_core::event::FlowEvent;
use flowtape_core::filter::{Filter, Presets};
use flowtape_server::feed::{PrintSource, SimConfig, SimMarket};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

/// `n` flow events from the simulated market, with increasing stream-like ids.
fn events(n: usize) -> Vec<FlowEvent> {
    let mut sim = SimMarket::new(SimConfig {
        rate: 2000.0,
        ..SimConfig::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let mut detector = Detector::new(DetectionConfig::default(), ConditionTable::default());
    let mut out = Vec::new();
    let mut events = Vec::with_capacity(n);
    let mut seq = 0u64;
    while events.len() < n {
        let Some(Ok(print)) = sim.next_print() else {
            continue;
        };
        let now = print.ts_ns;
        seq += 1;
        detector.push(Cursor::new(seq, 0), print, &mut out);
        detector.flush_due(now, &mut out);
        for d in out.drain(..) {
            if let Some(mut e) = d.event {
                e.id = format!("{}-0", events.len() + 1);
                events.push(e);
            }
        }
    }
    events.truncate(n);
    events
}

fn app(buffer: usize, events: &[FlowEvent]) -> App {
    let config = AppConfig {
        buffer_size: buffer,
        view: View::All,
        filter_text: String::new(),
        filter: Filter::default(),
        filter_presets: Presets::builtin().clone(),
        keymap: Keymap::default(),
        watchlists: Vec::new(),
        presets: Vec::new(),
        alerts: Vec::new(),
        side_panel: true,
        server: "ws://127.0.0.1:8765/ws".into(),
    };
    let now = events.last().map_or(0, |e| e.ts);
    let mut app = App::new(config, now);
    for e in events {
        app.push(e.id.parse().unwrap_or(Cursor::ZERO), e.clone());
    }
    app
}

fn render(c: &mut Criterion) {
    let evs = events(10_000);
    let mut app = app(10_000, &evs);
    app.set_page(46);
    let skin = Skin::new(Theme::default(), false);
    let mut terminal = Terminal::new(TestBackend::new(200, 50)).unwrap_or_else(|e| panic!("{e}"));
    c.bench_function("render tape 200x50, 10k events", |b| {
        b.iter(|| {
            // A full frame each time: clear the previous buffer so nothing is diffed away.
            terminal.clear().unwrap_or_else(|e| panic!("{e}"));
            terminal
                .draw(|f| ui::draw(f, black_box(&app), &skin))
                .unwrap_or_else(|e| panic!("{e}"));
        })
    });
}

fn refilter(c: &mut Criterion) {
    let evs = events(100_000);
    let mut app = app(100_000, &evs);
    let filters: Vec<(String, Filter)> =
        ["premium>=50k calls", "SPY QQQ NVDA -TSLA sweep block", ""]
            .iter()
            .map(|t| {
                (
                    t.to_string(),
                    Filter::parse(t).unwrap_or_else(|e| panic!("{e}")),
                )
            })
            .collect();
    let mut i = 0;
    c.bench_function("re-apply a filter over 100k events", |b| {
        b.iter(|| {
            let (text, filter) = &filters[i % filters.len()];
            i += 1;
            black_box(app.apply_filter(text.clone(), filter.clone()));
        })
    });
}

criterion_group!(benches, render, refilter);
criterion_main!(benches);

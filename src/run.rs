//! The TUI's event loop.
//!
//! Three sources are joined with `tokio::select!`: terminal input, messages
//! from the [`crate::client`] task, and a clock tick (and, replaying, the
//! time the next replayed event is due). A frame is drawn only
//! when something changed, and at most 30 times a second. The loop does not
//! wake for every event: the client reads the socket once per frame interval
//! and hands over a batch ([`client::run_paced`]); once a redraw is due, the
//! loop stops listening to the client, sleeps until the frame's time, and
//! then takes in everything that arrived meanwhile before drawing. Drawing
//! never waits for the terminal: [`Term::draw`] hands the frame to a writer
//! thread that skips to the newest frame when the output backs up (a slow
//! SSH link), so frames never queue (see [`crate::screen`]). SIGTERM
//! and SIGINT end the loop like `q` does, so the terminal is always
//! restored. Logs go to a file, never to the screen.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossterm::event::{Event, KeyEventKind};
use flowtape_core::date::Date;
use flowtape_core::filter::Filter;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::app::replay::ReplayStart;
use crate::app::{App, AppConfig, Effect};
use crate::client::{self, Backoff, ClientCommand, ClientOptions};
use crate::config::{self, Settings};
use crate::export;
use crate::term::Term;
use crate::ui::{self, Skin};

/// Simulated prints per second in `flowtape --demo` (the sim's mean rate;
/// it is about 2.2 times that at the open).
pub const DEMO_RATE: f64 = 300.0;

/// Frames per second at most.
const MAX_FPS: f64 = 30.0;
/// How often the clock is checked (for ages, "reconnecting for Ns" and expiring messages).
const TICK: Duration = Duration::from_millis(250);
/// Client messages queued at most, and applied at most before a frame.
const BATCH: usize = 4_096;

/// Why the TUI stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Sends `tracing` output to `$XDG_STATE_HOME/flowtape/flowtape.log` (level
/// from `FLOWTAPE_LOG`, default `info`). Returns the file, or `None` if it
/// cannot be opened, in which case nothing is logged (never to the screen).
pub fn init_logging() -> Option<PathBuf> {
    let dir = config::state_dir()?;
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join("flowtape.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .ok()?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLOWTAPE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init()
        .ok()?;
    Some(path)
}

/// Runs the TUI against the servers in `settings` until the user quits.
pub async fn run_tui(
    settings: Settings,
    filter: Filter,
    replay: Option<ReplayStart>,
) -> Result<(), RunError> {
    let Settings {
        servers,
        token,
        trust,
        filter: filter_text,
        view,
        filter_presets,
        backfill,
        buffer_size,
        theme,
        ascii,
        side_panel,
        keymap,
        watchlists,
        presets,
        alerts,
        export_dir,
        config_path,
    } = settings;
    let skin = Skin::new(theme, ascii);
    let mut app = App::new(
        AppConfig {
            buffer_size,
            view,
            filter_text,
            filter,
            filter_presets,
            keymap,
            watchlists,
            presets,
            alerts,
            side_panel,
            server: servers.first().cloned().unwrap_or_default(),
        },
        now_ms(),
    );
    if let Some(start) = replay {
        app.start_replay(start);
    }
    let options = ClientOptions {
        servers,
        token,
        filter: app.subscribed_filter().to_string(),
        backfill: Some(backfill),
        since: None,
        backoff: Backoff::default(),
        max_failures: None,
        fail_fast: false,
        keep_raw: false,
        trust,
        day_every: Some(client::DAY_EVERY),
    };
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let (ev_tx, ev_rx) = mpsc::channel(BATCH);
    let pace = Duration::from_secs_f64(1.0 / MAX_FPS);
    let client = tokio::spawn(client::run_paced(options, pace, cmd_rx, ev_tx));
    let result = event_loop(app, &skin, cmd_tx, ev_rx, &export_dir, &config_path).await;
    client.abort();
    result
}

/// Runs the TUI against one gateway at `url` (a `ws://` URL), e.g. an
/// in-process demo gateway: the normal client, with the other settings kept.
pub async fn run_demo(
    url: String,
    mut settings: Settings,
    filter: Filter,
    replay: Option<ReplayStart>,
) -> Result<(), RunError> {
    settings.servers = vec![url];
    run_tui(settings, filter, replay).await
}

/// Terminal input, read by a thread of its own that blocks in
/// `crossterm::event::read` and hands each event over. (crossterm's async
/// `EventStream` re-polls the terminal under a lock on every wake-up of the
/// loop, which at hundreds of flow events a second cost more CPU than
/// drawing.) The thread ends with the process or when the loop is gone.
fn terminal_input() -> mpsc::Receiver<std::io::Result<Event>> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || loop {
        let event = crossterm::event::read();
        let failed = event.is_err();
        if tx.blocking_send(event).is_err() || failed {
            return;
        }
    });
    rx
}

/// Applies the client messages waiting, up to [`BATCH`]. Returns false
/// once the client is gone.
fn drain(
    ev_rx: &mut mpsc::Receiver<client::ClientEvent>,
    app: &mut App,
    effects: &mut Vec<Effect>,
) -> bool {
    let now = now_ms();
    for _ in 0..BATCH {
        match ev_rx.try_recv() {
            Ok(m) => effects.extend(app.on_client(m, now)),
            Err(mpsc::error::TryRecvError::Empty) => return true,
            Err(mpsc::error::TryRecvError::Disconnected) => return false,
        }
    }
    true
}

/// The scope changes for the client. Only the newest matters: one the
/// client's queue has no room for (it is busy connecting) waits here,
/// replaced by any newer one, and is sent on the next pass of the loop.
struct Resubscriber {
    tx: mpsc::Sender<ClientCommand>,
    unsent: Option<String>,
    /// The day whose totals the client was last told to ask for (`None`: today).
    day_sent: Option<Date>,
}

impl Resubscriber {
    fn send(&mut self, filter: String) {
        self.unsent = match self.tx.try_send(ClientCommand::Resubscribe(filter)) {
            Err(mpsc::error::TrySendError::Full(ClientCommand::Resubscribe(f))) => Some(f),
            _ => None,
        };
    }

    /// Asks for a history page; one the client's queue has no room for is
    /// dropped, and asked again when the app next reaches that edge after
    /// a reconnect or a new scope.
    fn history(&mut self, request: flowtape_core::protocol::HistoryRequest) {
        if let Err(e) = self.tx.try_send(ClientCommand::History(request)) {
            tracing::warn!("history request not sent: {e}");
        }
    }

    /// Tells the client which day's totals to ask for, if that changed;
    /// one its queue has no room for is told on the next pass.
    fn day(&mut self, date: Option<Date>) {
        if date != self.day_sent && self.tx.try_send(ClientCommand::Day(date)).is_ok() {
            self.day_sent = date;
        }
    }

    fn retry(&mut self) {
        if let Some(f) = self.unsent.take() {
            self.send(f);
        }
    }
}

async fn event_loop(
    mut app: App,
    skin: &Skin,
    cmd_tx: mpsc::Sender<ClientCommand>,
    mut ev_rx: mpsc::Receiver<client::ClientEvent>,
    export_dir: &std::path::Path,
    config_path: &std::path::Path,
) -> Result<(), RunError> {
    let mut term = Term::enter()?;
    let mut input = terminal_input();
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let frame = Duration::from_secs_f64(1.0 / MAX_FPS);
    let mut last_draw: Option<Instant> = None;
    let mut dirty = true;
    let mut bell = false;
    let mut client_open = true;
    let mut effects = Vec::new();
    let mut subscriber = Resubscriber {
        tx: cmd_tx,
        unsent: None,
        day_sent: None,
    };
    loop {
        subscriber.retry();
        if dirty && last_draw.is_none_or(|t| t.elapsed() >= frame) {
            // Everything that arrived while the frame waited.
            if client_open {
                client_open = drain(&mut ev_rx, &mut app, &mut effects);
            }
            if apply_all(
                &mut effects,
                &mut app,
                &mut subscriber,
                &mut bell,
                export_dir,
                config_path,
            ) {
                return Ok(());
            }
            app.tick(now_ms());
            app.set_page(ui::tape_rows(term.area()?, &app));
            term.draw(&app, skin)?;
            if std::mem::take(&mut bell) {
                term.bell()?;
            }
            dirty = false;
            last_draw = Some(Instant::now());
        }
        let next_frame = last_draw.map_or_else(Instant::now, |t| t + frame);
        // The replay's next event is due then.
        let replay_due = app
            .replay_wake_in_ms()
            .map(|ms| Instant::now() + Duration::from_millis(ms.max(1).unsigned_abs()));
        tokio::select! {
            _ = tokio::time::sleep_until(replay_due.unwrap_or_else(Instant::now)),
                if replay_due.is_some() && !dirty => dirty |= app.tick(now_ms()),
            _ = tokio::time::sleep_until(next_frame), if dirty => {}
            ev = input.recv() => match ev {
                Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => {
                    // Keys act on the tape as it is on screen plus what has
                    // arrived since.
                    if client_open {
                        client_open = drain(&mut ev_rx, &mut app, &mut effects);
                    }
                    app.tick(now_ms());
                    effects.extend(app.on_key(key));
                    dirty = true;
                }
                Some(Ok(Event::Resize(..))) => {
                    term.resize()?;
                    dirty = true;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(RunError::Terminal(e)),
                None => return Ok(()),
            },
            // Only while no frame is due: a due frame takes in what arrived
            // when its time comes, so the loop does not wake per batch.
            msg = ev_rx.recv(), if client_open && !dirty => match msg {
                Some(first) => {
                    effects.extend(app.on_client(first, now_ms()));
                    client_open = drain(&mut ev_rx, &mut app, &mut effects);
                    dirty = true;
                }
                None => client_open = false,
            },
            _ = tick.tick() => dirty |= app.tick(now_ms()),
            _ = sigterm.recv() => return Ok(()),
            _ = sigint.recv() => return Ok(()),
        }
        effects.extend(app.replay_request());
        subscriber.day(app.day_asked());
        if !effects.is_empty() {
            dirty = true;
            if apply_all(
                &mut effects,
                &mut app,
                &mut subscriber,
                &mut bell,
                export_dir,
                config_path,
            ) {
                return Ok(());
            }
        }
    }
}

/// Applies the pending effects in order; true if one of them quits (the
/// rest are dropped).
fn apply_all(
    effects: &mut Vec<Effect>,
    app: &mut App,
    subscriber: &mut Resubscriber,
    bell: &mut bool,
    export_dir: &std::path::Path,
    config_path: &std::path::Path,
) -> bool {
    effects
        .drain(..)
        .any(|effect| apply(effect, app, subscriber, bell, export_dir, config_path))
}

/// Carries out one effect. Returns true to quit.
fn apply(
    effect: Effect,
    app: &mut App,
    subscriber: &mut Resubscriber,
    bell: &mut bool,
    export_dir: &std::path::Path,
    config_path: &std::path::Path,
) -> bool {
    match effect {
        Effect::Quit => return true,
        Effect::Bell => *bell = true,
        Effect::Subscribe(f) => subscriber.send(f),
        Effect::History(request) => subscriber.history(request),
        Effect::Export => {
            let n = app.tape().view_len();
            match export::export(export_dir, app.filtered_events(), now_ms()) {
                Ok(path) => app.info(format!("exported {n} events to {}", path.display())),
                Err(e) => app.error(e.to_string()),
            }
        }
        Effect::SaveWatchlists { lists, done } => {
            match config::save_watchlists(config_path, &lists) {
                Ok(()) => app.info(format!("{done} ({})", config_path.display())),
                Err(e) => app.error(e.to_string()),
            }
        }
    }
    false
}

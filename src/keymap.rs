//! Keys as data.
//!
//! Every command the tape understands is an [`Action`]. A [`Keymap`] binds key
//! chords to actions: the defaults are compiled in ([`Keymap::default`]) and
//! the config's `[keys]` table replaces the chords of single actions. The same
//! keymap dispatches keys, draws the hint bar and generates the `?` help, so
//! the three never disagree. Text-entry popups (the filter line and the
//! watchlist editor) use fixed editing keys, listed in [`EDITOR_KEYS`] and
//! [`WATCHLIST_KEYS`] for the help and hint bar.

use std::collections::BTreeMap;
use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

macro_rules! actions {
    ($($variant:ident => $name:literal, $help:literal, [$($key:literal),*], $hint:literal;)*) => {
        /// A command of the tape view.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action {
            $($variant,)*
        }

        impl Action {
            /// Every action, in help order.
            pub const ALL: &'static [Action] = &[$(Action::$variant),*];

            /// The name used in the config's `[keys]` table.
            pub fn name(self) -> &'static str {
                match self {
                    $(Action::$variant => $name,)*
                }
            }

            /// One line for the help popup.
            pub fn help(self) -> &'static str {
                match self {
                    $(Action::$variant => $help,)*
                }
            }

            /// The short label in the hint bar, or `""` if the action is not hinted.
            pub fn hint(self) -> &'static str {
                match self {
                    $(Action::$variant => $hint,)*
                }
            }

            fn default_keys(self) -> &'static [&'static str] {
                match self {
                    $(Action::$variant => &[$($key),*],)*
                }
            }

            pub fn from_name(name: &str) -> Option<Action> {
                Action::ALL.iter().copied().find(|a| a.name() == name)
            }
        }
    };
}

actions! {
    Quit => "quit", "Quit flowtape", ["q", "ctrl-c"], "quit";
    Help => "help", "Show or hide this help", ["?"], "help";
    Filter => "filter", "Edit the filter (validated as you type)", ["/"], "filter";
    Live => "live", "Back to live at the newest event; dismiss notices", ["esc"], "";
    Down => "down", "Select the next (older) event", ["j", "down"], "";
    Up => "up", "Select the previous (newer) event", ["k", "up"], "";
    PageDown => "page_down", "One page down", ["pgdn", "ctrl-d"], "";
    PageUp => "page_up", "One page up", ["pgup", "ctrl-u"], "";
    Top => "top", "Jump to the newest event", ["g", "home"], "";
    Bottom => "bottom", "Jump to the oldest event", ["G", "end"], "";
    Pause => "pause", "Pause the tape, counting new events; again for live", ["space"], "pause";
    Detail => "detail", "Details of the selected event", ["enter"], "detail";
    CallsOnly => "calls_only", "Toggle calls only", ["c"], "calls";
    PutsOnly => "puts_only", "Toggle puts only", ["p"], "puts";
    SweepsOnly => "sweeps_only", "Toggle sweeps only", ["s"], "sweeps";
    UnusualOnly => "unusual_only", "Toggle unusual only", ["u"], "unusual";
    View => "view", "Notable flow or all prints (the status line says which)", ["v"], "view";
    Watchlists => "watchlists", "Edit watchlists", ["w"], "watch";
    NextWatchlist => "next_watchlist", "Cycle the active watchlist (off, then each list)", ["tab"], "list";
    FocusTicker => "focus_ticker", "Narrow to the selected row's ticker; again to go back", ["f"], "ticker";
    FocusContract => "focus_contract", "Narrow to the selected row's contract; again to go back", ["F"], "";
    AddToWatchlist => "add_to_watchlist", "Add the row's ticker to the active (or first) watchlist", ["+"], "";
    Export => "export", "Export the filtered tape to CSV", ["e"], "export";
    SidePanel => "side_panel", "Show or hide the flow panel", ["a"], "panel";
    DayPanel => "day_panel", "Flow panel: the day's tickers, then its top contracts", ["d"], "";
    TimeTravel => "time_travel", "Jump to a time (New York, e.g. 10:30); Esc for live", ["t"], "";
    Faster => "faster", "Replay: faster, up to 120 times (space pauses it)", [">"], "";
    Slower => "slower", "Replay: slower", ["<"], "";
    SeekForward => "seek_forward", "Replay: 5 minutes forward (t: to a time)", ["]"], "";
    SeekBack => "seek_back", "Replay: 5 minutes back", ["["], "";
}

/// Fixed keys of the jump-to-time prompt, for the help and hint bar.
pub const TIME_PROMPT_KEYS: &[(&str, &str)] =
    &[("Enter", "read the tape from this time"), ("Esc", "cancel")];

/// Fixed keys of the filter line, for the help and hint bar.
pub const EDITOR_KEYS: &[(&str, &str)] = &[
    ("Enter", "apply the filter"),
    ("Esc", "cancel"),
    ("Up/Down", "history and presets"),
    ("Ctrl-u", "clear the line"),
];

/// Fixed keys of the watchlist editor, for the help and hint bar.
pub const WATCHLIST_KEYS: &[(&str, &str)] = &[
    ("Enter", "add the typed ticker"),
    ("Up/Down", "select a ticker"),
    ("Del", "remove the selected ticker"),
    ("Tab", "next watchlist"),
    ("Esc", "save and close"),
];

/// One key with its modifiers. Shift is folded into the character
/// (`G`, not `shift-g`), as terminals report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Chord {
    code: ChordCode,
    ctrl: bool,
    alt: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum ChordCode {
    Char(char),
    Named(Named),
    F(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Named {
    Enter,
    Esc,
    Tab,
    BackTab,
    Backspace,
    Delete,
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Home,
    End,
}

const NAMES: &[(&str, Named)] = &[
    ("enter", Named::Enter),
    ("esc", Named::Esc),
    ("tab", Named::Tab),
    ("backtab", Named::BackTab),
    ("backspace", Named::Backspace),
    ("delete", Named::Delete),
    ("del", Named::Delete),
    ("up", Named::Up),
    ("down", Named::Down),
    ("left", Named::Left),
    ("right", Named::Right),
    ("pgup", Named::PageUp),
    ("pageup", Named::PageUp),
    ("pgdn", Named::PageDown),
    ("pagedown", Named::PageDown),
    ("home", Named::Home),
    ("end", Named::End),
];

/// Why a key could not be read from the config.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{0:?} is not a key (try \"q\", \"G\", \"ctrl-d\", \"enter\", \"pgdn\", \"f2\", \"space\")"
    )]
    BadKey(String),
    #[error("unknown action {0:?} in [keys] (known: {1})")]
    UnknownAction(String, String),
    #[error("action {0:?} in [keys] has no keys")]
    Empty(String),
}

impl Chord {
    /// Parses `q`, `G`, `?`, `space`, `ctrl-c`, `alt-x`, `pgdn`, `f2`.
    pub fn parse(s: &str) -> Result<Chord, KeyError> {
        let bad = || KeyError::BadKey(s.to_string());
        let mut ctrl = false;
        let mut alt = false;
        let mut rest = s.trim();
        loop {
            let lower = rest.to_ascii_lowercase();
            if lower.starts_with("ctrl-") && rest.len() > 5 {
                ctrl = true;
                rest = &rest[5..];
            } else if lower.starts_with("alt-") && rest.len() > 4 {
                alt = true;
                rest = &rest[4..];
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => ChordCode::Char(if ctrl { c.to_ascii_lowercase() } else { c }),
            (None, _) => return Err(bad()),
            _ => {
                let lower = rest.to_ascii_lowercase();
                if lower == "space" {
                    ChordCode::Char(' ')
                } else if let Some((_, n)) = NAMES.iter().find(|(name, _)| *name == lower) {
                    ChordCode::Named(*n)
                } else if let Some(n) = lower.strip_prefix('f').and_then(|n| n.parse::<u8>().ok()) {
                    if (1..=24).contains(&n) {
                        ChordCode::F(n)
                    } else {
                        return Err(bad());
                    }
                } else {
                    return Err(bad());
                }
            }
        };
        Ok(Chord { code, ctrl, alt })
    }

    /// The chord of a terminal key event, if it is one a keymap can bind.
    pub fn from_event(key: &KeyEvent) -> Option<Chord> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        let code = match key.code {
            KeyCode::Char(c) => ChordCode::Char(if ctrl { c.to_ascii_lowercase() } else { c }),
            KeyCode::Enter => ChordCode::Named(Named::Enter),
            KeyCode::Esc => ChordCode::Named(Named::Esc),
            KeyCode::Tab => ChordCode::Named(Named::Tab),
            KeyCode::BackTab => ChordCode::Named(Named::BackTab),
            KeyCode::Backspace => ChordCode::Named(Named::Backspace),
            KeyCode::Delete => ChordCode::Named(Named::Delete),
            KeyCode::Up => ChordCode::Named(Named::Up),
            KeyCode::Down => ChordCode::Named(Named::Down),
            KeyCode::Left => ChordCode::Named(Named::Left),
            KeyCode::Right => ChordCode::Named(Named::Right),
            KeyCode::PageUp => ChordCode::Named(Named::PageUp),
            KeyCode::PageDown => ChordCode::Named(Named::PageDown),
            KeyCode::Home => ChordCode::Named(Named::Home),
            KeyCode::End => ChordCode::Named(Named::End),
            KeyCode::F(n) => ChordCode::F(n),
            _ => return None,
        };
        Some(Chord { code, ctrl, alt })
    }
}

impl fmt::Display for Chord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("Ctrl-")?;
        }
        if self.alt {
            f.write_str("Alt-")?;
        }
        match self.code {
            ChordCode::Char(' ') => f.write_str("Space"),
            ChordCode::Char(c) => write!(f, "{c}"),
            ChordCode::F(n) => write!(f, "F{n}"),
            ChordCode::Named(n) => f.write_str(match n {
                Named::Enter => "Enter",
                Named::Esc => "Esc",
                Named::Tab => "Tab",
                Named::BackTab => "Shift-Tab",
                Named::Backspace => "Backspace",
                Named::Delete => "Del",
                Named::Up => "Up",
                Named::Down => "Down",
                Named::Left => "Left",
                Named::Right => "Right",
                Named::PageUp => "PgUp",
                Named::PageDown => "PgDn",
                Named::Home => "Home",
                Named::End => "End",
            }),
        }
    }
}

/// Chords bound to actions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keymap {
    bindings: Vec<(Chord, Action)>,
}

impl Default for Keymap {
    fn default() -> Keymap {
        let bindings = Action::ALL
            .iter()
            .flat_map(|a| {
                a.default_keys()
                    .iter()
                    .filter_map(move |k| Chord::parse(k).ok().map(|c| (c, *a)))
            })
            .collect();
        Keymap { bindings }
    }
}

impl Keymap {
    /// The defaults with `overrides` (action name → chords) applied. An
    /// override replaces all of an action's chords and takes each chord away
    /// from any other action that had it.
    pub fn with_overrides(overrides: &BTreeMap<String, Vec<String>>) -> Result<Keymap, KeyError> {
        let mut map = Keymap::default();
        for (name, keys) in overrides {
            let action = Action::from_name(name).ok_or_else(|| {
                let known: Vec<&str> = Action::ALL.iter().map(|a| a.name()).collect();
                KeyError::UnknownAction(name.clone(), known.join(", "))
            })?;
            if keys.is_empty() {
                return Err(KeyError::Empty(name.clone()));
            }
            let chords = keys
                .iter()
                .map(|k| Chord::parse(k))
                .collect::<Result<Vec<_>, _>>()?;
            map.bindings
                .retain(|(c, a)| *a != action && !chords.contains(c));
            map.bindings.extend(chords.into_iter().map(|c| (c, action)));
        }
        Ok(map)
    }

    /// The action a key event triggers, if any.
    pub fn action(&self, key: &KeyEvent) -> Option<Action> {
        let chord = Chord::from_event(key)?;
        self.bindings
            .iter()
            .find(|(c, _)| *c == chord)
            .map(|(_, a)| *a)
    }

    /// The chords bound to `action`, in binding order.
    pub fn chords(&self, action: Action) -> impl Iterator<Item = Chord> + '_ {
        self.bindings
            .iter()
            .filter(move |(_, a)| *a == action)
            .map(|(c, _)| *c)
    }

    /// The chords of `action` for display: `j/Down`.
    pub fn keys_label(&self, action: Action) -> String {
        self.chords(action)
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The first chord of `action`, for the hint bar.
    pub fn first_key(&self, action: Action) -> Option<String> {
        self.chords(action).next().map(|c| c.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn defaults_follow_terminal_conventions() {
        let map = Keymap::default();
        let cases = [
            (key(KeyCode::Char('q'), KeyModifiers::NONE), Action::Quit),
            (key(KeyCode::Char('c'), KeyModifiers::CONTROL), Action::Quit),
            (
                key(KeyCode::Char('c'), KeyModifiers::NONE),
                Action::CallsOnly,
            ),
            (key(KeyCode::Char('G'), KeyModifiers::SHIFT), Action::Bottom),
            (key(KeyCode::Char('?'), KeyModifiers::SHIFT), Action::Help),
            (key(KeyCode::Down, KeyModifiers::NONE), Action::Down),
            (key(KeyCode::PageUp, KeyModifiers::NONE), Action::PageUp),
            (key(KeyCode::Char(' '), KeyModifiers::NONE), Action::Pause),
            (key(KeyCode::Enter, KeyModifiers::NONE), Action::Detail),
            (key(KeyCode::Tab, KeyModifiers::NONE), Action::NextWatchlist),
            (key(KeyCode::Char('v'), KeyModifiers::NONE), Action::View),
            (
                key(KeyCode::Char('f'), KeyModifiers::NONE),
                Action::FocusTicker,
            ),
            (
                key(KeyCode::Char('F'), KeyModifiers::SHIFT),
                Action::FocusContract,
            ),
            (
                key(KeyCode::Char('+'), KeyModifiers::SHIFT),
                Action::AddToWatchlist,
            ),
        ];
        for (k, want) in cases {
            assert_eq!(map.action(&k), Some(want), "{k:?}");
        }
        assert_eq!(
            map.action(&key(KeyCode::Char('Z'), KeyModifiers::SHIFT)),
            None
        );
        // No two actions share a default key.
        let mut chords: Vec<Chord> = map.bindings.iter().map(|(c, _)| *c).collect();
        chords.sort();
        chords.dedup();
        assert_eq!(chords.len(), map.bindings.len());
        assert_eq!(map.keys_label(Action::Down), "j/Down");
        assert_eq!(map.keys_label(Action::Quit), "q/Ctrl-c");
    }

    #[test]
    fn overrides_replace_and_steal() {
        let o: BTreeMap<String, Vec<String>> = [(
            "side_panel".to_string(),
            vec!["f2".to_string(), "p".to_string()],
        )]
        .into();
        let map = Keymap::with_overrides(&o).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            map.action(&key(KeyCode::F(2), KeyModifiers::NONE)),
            Some(Action::SidePanel)
        );
        assert_eq!(
            map.action(&key(KeyCode::Char('p'), KeyModifiers::NONE)),
            Some(Action::SidePanel)
        );
        assert_eq!(
            map.action(&key(KeyCode::Char('a'), KeyModifiers::NONE)),
            None
        );
        assert_eq!(map.keys_label(Action::PutsOnly), "");
    }

    #[test]
    fn bad_overrides_say_why() {
        let o: BTreeMap<String, Vec<String>> = [("qiut".to_string(), vec!["x".to_string()])].into();
        assert!(
            matches!(Keymap::with_overrides(&o), Err(KeyError::UnknownAction(n, _)) if n == "qiut")
        );
        let o: BTreeMap<String, Vec<String>> =
            [("quit".to_string(), vec!["ctrl-".to_string()])].into();
        assert!(matches!(
            Keymap::with_overrides(&o),
            Err(KeyError::BadKey(_))
        ));
        assert!(Chord::parse("f99").is_err());
        assert!(Chord::parse("hyper-x").is_err());
        assert_eq!(
            Chord::parse("Ctrl-D").map(|c| c.to_string()),
            Ok("Ctrl-d".to_string())
        );
    }
}

//! The config file and the settings resolved from it.
//!
//! The file is TOML at `$XDG_CONFIG_HOME/flowtape/config.toml` (else
//! `~/.config/flowtape/config.toml`), or wherever `--config` points;
//! `assets/config.example.toml` documents every key. [`FileConfig`] is the
//! file as written; [`Settings`] is what the client runs with, after command
//! line flags and environment variables ([`Overrides`]) are laid on top:
//! flags beat the environment, which beats the file, which beats the defaults.
//!
//! Errors name the file and the line. Watchlists edited in the TUI are written
//! back with [`save_watchlists`], which keeps the rest of the file (comments
//! included) as it was. The `[presets]` whose names can be words of the
//! filter language also become words ([`Settings::filter_presets`]), so a
//! preset named `notable` redefines the notable-flow view.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use flowtape_core::filter::{Filter, PresetError, Presets};
use flowtape_core::text_position::line_col;
use flowtape_server::wsclient::TrustRoots;
use serde::Deserialize;
use toml::Spanned;

use crate::app::scope::View;
use crate::keymap::{KeyError, Keymap};
use crate::theme::{ColorSupport, Convention, Theme, ThemeError};

/// The gateway a fresh install connects to.
pub const DEFAULT_SERVER: &str = "ws://127.0.0.1:8765/ws";
/// Events kept in memory unless the config says otherwise.
pub const DEFAULT_BUFFER: usize = 10_000;
/// Events replayed on the first connect unless the config says otherwise.
pub const DEFAULT_BACKFILL: u32 = 500;
/// The largest buffer accepted, to keep memory bounded (about 1 KiB per event).
pub const MAX_BUFFER: usize = 1_000_000;

/// The config file, as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// Gateways, tried in order.
    pub servers: Vec<String>,
    pub token: Option<String>,
    /// PEM certificates `wss://` gateways are checked against instead of the
    /// system's CA bundle; a relative path is relative to the config file.
    pub ca_file: Option<PathBuf>,
    /// The filter applied at start.
    pub filter: Option<Spanned<String>>,
    /// The TUI's view at start: notable flow or all prints.
    pub view: Option<View>,
    /// Events replayed on the first connect.
    pub backfill: Option<u32>,
    /// Events kept in memory.
    pub buffer_size: Option<usize>,
    /// Theme name: built in, or a file in the config dir's `themes/`.
    pub theme: Option<String>,
    /// Single colours over the theme.
    pub theme_colors: BTreeMap<String, String>,
    /// `green-up` (calls green) or `red-up` (calls red).
    pub colors: Option<Convention>,
    pub ascii: Option<bool>,
    /// Show the flow panel (under the tape) at start.
    pub side_panel: Option<bool>,
    /// Where `e` writes CSV files.
    pub export_dir: Option<PathBuf>,
    pub watchlists: Vec<WatchlistConfig>,
    /// Named filters, offered in the filter line's history; those named like
    /// a preset word are words of the filter language too.
    pub presets: BTreeMap<String, Spanned<String>>,
    pub alerts: Vec<AlertConfig>,
    /// Action name → keys, replacing the defaults of that action.
    pub keys: BTreeMap<String, Vec<String>>,
}

/// A named set of tickers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchlistConfig {
    pub name: String,
    #[serde(default)]
    pub tickers: Vec<String>,
}

/// An alert rule as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    pub name: String,
    pub filter: Spanned<String>,
    /// Ring the terminal bell (the row is highlighted either way).
    #[serde(default = "yes")]
    pub bell: bool,
}

fn yes() -> bool {
    true
}

/// Why the configuration cannot be used. Every variant names its file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}:{line}: {what} {expr:?} is not a valid filter: {message}")]
    Filter {
        path: String,
        line: usize,
        what: String,
        expr: String,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{path}: {source}")]
    Keys { path: String, source: KeyError },
    #[error("{0}")]
    Theme(#[from] ThemeError),
    #[error("cannot write config file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// What the command line and the environment set (flags already beat env here:
/// clap reads both).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub servers: Vec<String>,
    pub token: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub filter: Option<String>,
    pub view: Option<View>,
    pub theme: Option<String>,
    pub ascii: bool,
}

/// A validated alert rule.
#[derive(Debug)]
pub struct AlertRule {
    pub name: String,
    pub expr: String,
    pub filter: Filter,
    pub bell: bool,
}

/// Everything the client runs with.
#[derive(Debug)]
pub struct Settings {
    pub servers: Vec<String>,
    pub token: Option<String>,
    /// Whom `wss://` gateways are checked against.
    pub trust: TrustRoots,
    pub filter: String,
    /// The TUI's view at start.
    pub view: View,
    /// What preset words in filters stand for: the built-in presets,
    /// redefined or added to by the config's `[presets]`.
    pub filter_presets: Presets,
    pub backfill: u32,
    pub buffer_size: usize,
    pub theme: Theme,
    pub ascii: bool,
    pub side_panel: bool,
    pub keymap: Keymap,
    pub watchlists: Vec<WatchlistConfig>,
    pub presets: Vec<(String, String)>,
    pub alerts: Vec<AlertRule>,
    pub export_dir: PathBuf,
    /// The file the settings came from (and watchlists are saved to).
    pub config_path: PathBuf,
}

/// The config dir: `$XDG_CONFIG_HOME/flowtape`, else `~/.config/flowtape`.
pub fn config_dir() -> Option<PathBuf> {
    xdg_dir("XDG_CONFIG_HOME", ".config")
}

/// The state dir for logs: `$XDG_STATE_HOME/flowtape`, else `~/.local/state/flowtape`.
pub fn state_dir() -> Option<PathBuf> {
    xdg_dir("XDG_STATE_HOME", ".local/state")
}

fn xdg_dir(var: &str, home_rel: &str) -> Option<PathBuf> {
    let base = std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(home_rel)))?;
    Some(base.join("flowtape"))
}

/// The default config file path.
pub fn default_config_path() -> Option<PathBuf> {
    config_dir().map(|d| d.join("config.toml"))
}

impl FileConfig {
    /// Parses config text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            ConfigError::Parse {
                path: path.display().to_string(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })
    }

    /// Reads `path`. A missing file is an empty config unless it was named
    /// explicitly (`required`).
    pub fn load(path: &Path, required: bool) -> Result<(FileConfig, String), ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((FileConfig::parse(&text, path)?, text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                Ok((FileConfig::default(), String::new()))
            }
            Err(source) => Err(ConfigError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
    }
}

impl Settings {
    /// Lays `over` on top of `file` and validates the result. `text` is the
    /// file's text (for line numbers), `support` what the terminal can show.
    pub fn resolve(
        file: FileConfig,
        text: &str,
        path: &Path,
        over: Overrides,
        support: ColorSupport,
    ) -> Result<Settings, ConfigError> {
        let p = path.display().to_string();
        let filter_presets = preset_words(&file.presets).map_err(|(name, e)| {
            let expr = &file.presets[&name];
            ConfigError::Filter {
                path: p.clone(),
                line: line_col(text, expr.span().start).0,
                what: format!("preset {name:?}"),
                expr: expr.get_ref().clone(),
                message: match e {
                    PresetError::Expression { error, .. } => error.to_string(),
                    other => other.to_string(),
                },
            }
        })?;
        let check_filter =
            |what: String, expr: &str, span: Range<usize>| -> Result<Filter, ConfigError> {
                Filter::parse_with(expr, &filter_presets).map_err(|e| ConfigError::Filter {
                    path: p.clone(),
                    line: line_col(text, span.start).0,
                    what,
                    expr: expr.to_string(),
                    message: e.to_string(),
                })
            };
        let buffer_size = file.buffer_size.unwrap_or(DEFAULT_BUFFER);
        if !(1..=MAX_BUFFER).contains(&buffer_size) {
            return Err(ConfigError::Invalid {
                path: p,
                message: format!("buffer_size = {buffer_size} must be between 1 and {MAX_BUFFER}"),
            });
        }
        let mut presets = Vec::new();
        for (name, expr) in &file.presets {
            check_filter(format!("preset {name:?}"), expr.get_ref(), expr.span())?;
            presets.push((name.clone(), expr.get_ref().clone()));
        }
        let mut alerts = Vec::new();
        for a in &file.alerts {
            let filter = check_filter(
                format!("alert {:?}", a.name),
                a.filter.get_ref(),
                a.filter.span(),
            )?;
            alerts.push(AlertRule {
                name: a.name.clone(),
                expr: a.filter.get_ref().clone(),
                filter,
                bell: a.bell,
            });
        }
        // The start filter from the file is checked here; one from the command
        // line is checked by the caller, which reports its column.
        let filter = match (over.filter, &file.filter) {
            (Some(f), _) => f,
            (None, Some(f)) => {
                check_filter("filter".into(), f.get_ref(), f.span())?;
                f.get_ref().clone()
            }
            (None, None) => String::new(),
        };
        let mut watchlists = Vec::new();
        for w in file.watchlists {
            if w.name.trim().is_empty() {
                return Err(ConfigError::Invalid {
                    path: p,
                    message: "a watchlist has an empty name".into(),
                });
            }
            if watchlists
                .iter()
                .any(|x: &WatchlistConfig| x.name == w.name)
            {
                return Err(ConfigError::Invalid {
                    path: p,
                    message: format!("watchlist {:?} is defined twice", w.name),
                });
            }
            let tickers = normalize_tickers(w.tickers);
            watchlists.push(WatchlistConfig {
                name: w.name,
                tickers,
            });
        }
        let keymap = Keymap::with_overrides(&file.keys).map_err(|source| ConfigError::Keys {
            path: p.clone(),
            source,
        })?;
        let theme_name = over.theme.or(file.theme);
        let themes_dir = path.parent().map(|d| d.join("themes"));
        let mut theme = match (&theme_name, support) {
            // NO_COLOR wins over any theme.
            (_, ColorSupport::None) => Theme::load("mono", None)?,
            (Some(name), _) => Theme::load(name, themes_dir.as_deref())?,
            (None, s) => Theme::load(s.default_theme(), None)?,
        };
        if support != ColorSupport::None {
            theme
                .palette
                .apply(&file.theme_colors, &format!("{p} [theme_colors]"))?;
        }
        let theme = theme.with_convention(file.colors.unwrap_or_default());
        let servers = if !over.servers.is_empty() {
            over.servers
        } else if !file.servers.is_empty() {
            file.servers
        } else {
            vec![DEFAULT_SERVER.to_string()]
        };
        let ca_file = over.ca_file.or_else(|| {
            file.ca_file.map(|f| match path.parent() {
                Some(dir) => dir.join(f),
                None => f,
            })
        });
        Ok(Settings {
            servers,
            token: over.token.or(file.token).filter(|t| !t.is_empty()),
            trust: ca_file.map_or(TrustRoots::System, TrustRoots::File),
            filter,
            view: over.view.or(file.view).unwrap_or_default(),
            filter_presets,
            backfill: file.backfill.unwrap_or(DEFAULT_BACKFILL),
            buffer_size,
            theme,
            ascii: over.ascii || file.ascii.unwrap_or(false),
            side_panel: file.side_panel.unwrap_or(true),
            keymap,
            watchlists,
            presets,
            alerts,
            export_dir: file.export_dir.unwrap_or_else(|| PathBuf::from(".")),
            config_path: path.to_path_buf(),
        })
    }
}

/// The built-in presets with the config's presets that can be words (letters
/// only, longer than a ticker, not a word of the language) defined over them:
/// redefinitions of built-in presets first, so that every other preset uses
/// them; otherwise a preset may use another in any order. One that cannot be
/// defined is returned with its name.
fn preset_words(
    presets: &BTreeMap<String, Spanned<String>>,
) -> Result<Presets, (String, PresetError)> {
    let mut words = Presets::builtin().clone();
    let mut pending: Vec<(&String, &String)> = presets
        .iter()
        .map(|(name, expr)| (name, expr.get_ref()))
        .collect();
    pending.sort_by_key(|(name, _)| !is_builtin_preset(name));
    // Each pass defines what it can; a preset that names one defined later
    // gets it on a later pass.
    loop {
        let before = pending.len();
        let mut failed = None;
        pending.retain(|(name, expr)| match words.define(name, expr) {
            Ok(()) | Err(PresetError::BadName(_)) => false,
            Err(e) => {
                failed.get_or_insert(((*name).clone(), e));
                true
            }
        });
        match failed {
            None => return Ok(words),
            Some(failed) if pending.len() == before => return Err(failed),
            Some(_) => {}
        }
    }
}

/// Whether `name` is a built-in preset: a word that can only be a preset
/// and that the built-in presets know.
fn is_builtin_preset(name: &str) -> bool {
    Presets::default().define(name, "").is_ok() && Filter::parse(name).is_ok()
}

/// Upper-cases, trims, drops empties and duplicates, keeps order.
pub fn normalize_tickers(tickers: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tickers.len());
    for t in tickers {
        let t = t.trim().to_ascii_uppercase();
        if !t.is_empty() && !out.contains(&t) {
            out.push(t);
        }
    }
    out
}

/// Writes `watchlists` into the config file at `path` as `[[watchlists]]`
/// tables, keeping everything else in the file. Creates the file if needed.
pub fn save_watchlists(path: &Path, watchlists: &[WatchlistConfig]) -> Result<(), ConfigError> {
    let p = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(ConfigError::Read { path: p, source }),
    };
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        let (line, column) = e.span().map_or((1, 1), |s| line_col(&text, s.start));
        ConfigError::Parse {
            path: p.clone(),
            line,
            column,
            message: e.message().trim().to_string(),
        }
    })?;
    let mut tables = toml_edit::ArrayOfTables::new();
    for w in watchlists {
        let mut t = toml_edit::Table::new();
        t.insert("name", toml_edit::value(w.name.as_str()));
        let tickers: toml_edit::Array = w.tickers.iter().map(String::as_str).collect();
        t.insert("tickers", toml_edit::value(tickers));
        tables.push(t);
    }
    doc.insert("watchlists", toml_edit::Item::ArrayOfTables(tables));
    let write_err = |source| ConfigError::Write {
        path: p.clone(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    // Write beside the file and rename, so a crash never leaves half a config.
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, doc.to_string()).map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(write_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str, over: Overrides) -> Result<Settings, ConfigError> {
        let path = Path::new("/home/u/.config/flowtape/config.toml");
        let file = FileConfig::parse(text, path)?;
        Settings::resolve(file, text, path, over, ColorSupport::Full)
    }

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../assets/config.example.toml");
        let s = resolve(text, Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!s.watchlists.is_empty());
        assert!(!s.alerts.is_empty());
        assert!(!s.presets.is_empty());
    }

    #[test]
    fn defaults_without_a_file() {
        let s = resolve("", Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.view,
            View::Notable,
            "a fresh install opens on notable flow"
        );
        assert_eq!(s.filter, "");
        assert_eq!(s.servers, vec![DEFAULT_SERVER.to_string()]);
        assert_eq!(s.buffer_size, DEFAULT_BUFFER);
        assert_eq!(s.theme.name, "default");
        assert!(s.token.is_none());
    }

    #[test]
    fn flags_and_env_beat_the_file() {
        let text =
            "servers = [\"ws://a/ws\"]\ntoken = \"file\"\ntheme = \"basic16\"\nfilter = \"AAPL\"\n";
        let over = Overrides {
            servers: vec!["ws://b/ws".into(), "ws://c/ws".into()],
            token: Some("flag".into()),
            filter: Some("TSLA".into()),
            theme: Some("mono".into()),
            ascii: true,
            ..Overrides::default()
        };
        let s = resolve(text, over).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.servers,
            vec!["ws://b/ws".to_string(), "ws://c/ws".to_string()]
        );
        assert_eq!(s.token.as_deref(), Some("flag"));
        assert_eq!(s.filter, "TSLA");
        assert_eq!(s.theme.name, "mono");
        assert!(s.ascii);
        let s = resolve(text, Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.servers, vec!["ws://a/ws".to_string()]);
        assert_eq!(s.token.as_deref(), Some("file"));
        assert_eq!(s.theme.name, "basic16");
    }

    #[test]
    fn presets_named_like_words_redefine_and_extend_the_language() {
        let text = "filter = \"bigcalls\"\nview = \"all\"\n[presets]\n\
                    bigcalls = \"calls notable\"\nnotable = \"premium>=1m\"\nwhales = \"premium>=5m\"\n";
        let s = resolve(text, Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.view, View::All);
        let f = Filter::parse_with(&s.filter, &s.filter_presets).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            f.canonical(),
            "calls premium>=1m",
            "bigcalls uses the new notable"
        );
        assert!(
            Filter::parse_with("whales", &s.filter_presets).is_ok(),
            "whales is a ticker-shaped word, not a preset word"
        );
        let over = Overrides {
            view: Some(View::Notable),
            ..Overrides::default()
        };
        assert_eq!(
            resolve(text, over).map(|s| s.view).ok(),
            Some(View::Notable)
        );
        let err = resolve("[presets]\nnotable = \"sweep or\"\n", Overrides::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("config.toml:2: preset \"notable\""), "{err}");
        let err = resolve(
            "[presets]\nloopone = \"looptwo\"\nlooptwo = \"loopone\"\n",
            Overrides::default(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("preset \"loopone\""), "{err}");
    }

    #[test]
    fn the_ca_file_comes_from_the_flag_or_beside_the_config_file() {
        let s = resolve("", Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.trust, TrustRoots::System);
        let text = "ca_file = \"certs/gateway.pem\"\n";
        let s = resolve(text, Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.trust,
            TrustRoots::File(PathBuf::from("/home/u/.config/flowtape/certs/gateway.pem"))
        );
        let s = resolve("ca_file = \"/etc/flow/ca.pem\"\n", Overrides::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.trust, TrustRoots::File(PathBuf::from("/etc/flow/ca.pem")));
        let over = Overrides {
            ca_file: Some(PathBuf::from("./mine.pem")),
            ..Overrides::default()
        };
        let s = resolve(text, over).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.trust, TrustRoots::File(PathBuf::from("./mine.pem")));
    }

    #[test]
    fn malformed_config_names_file_and_line() {
        let err = resolve(
            "buffer_size = 100\n\nservers = [\"ws://x\"\n",
            Overrides::default(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            err.starts_with("/home/u/.config/flowtape/config.toml:3:"),
            "{err}"
        );
        let err = resolve("bufer_size = 100\n", Overrides::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("config.toml:1:1") && err.contains("bufer_size"),
            "{err}"
        );
        let err = resolve("buffer_size = 0\n", Overrides::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("buffer_size = 0"), "{err}");
    }

    #[test]
    fn bad_filters_and_keys_are_reported_where_they_are() {
        let text = "[[alerts]]\nname = \"whale\"\nfilter = \"premium>>5M\"\n";
        let err = resolve(text, Overrides::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("config.toml:3: alert \"whale\""), "{err}");
        let err = resolve("[keys]\nquit = [\"hyper-q\"]\n", Overrides::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("hyper-q"), "{err}");
        let err = resolve("[theme_colors]\ncall = \"blurple\"\n", Overrides::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("[theme_colors]") && err.contains("blurple"),
            "{err}"
        );
    }

    #[test]
    fn watchlists_round_trip_and_keep_comments() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "# my settings\nbuffer_size = 500 # small\n\n[[watchlists]]\nname = \"old\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let lists = vec![
            WatchlistConfig {
                name: "tech".into(),
                tickers: vec!["AAPL".into(), "MSFT".into()],
            },
            WatchlistConfig {
                name: "etf".into(),
                tickers: vec![],
            },
        ];
        save_watchlists(&path, &lists).unwrap_or_else(|e| panic!("{e}"));
        let (file, text) = FileConfig::load(&path, true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(file.watchlists, lists);
        assert_eq!(file.buffer_size, Some(500));
        assert!(
            text.contains("# my settings") && text.contains("# small"),
            "{text}"
        );
    }

    #[test]
    fn tickers_are_normalized() {
        let t = normalize_tickers(vec![" aapl".into(), "AAPL".into(), "".into(), "spy".into()]);
        assert_eq!(t, vec!["AAPL".to_string(), "SPY".to_string()]);
    }
}

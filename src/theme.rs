//! Colours as data.
//!
//! A [`Theme`] is a [`Palette`] of named colours plus the styles built from
//! them. The built-in themes are the TOML files in `assets/themes/`, compiled
//! in: `default` (256 colours), `basic16` (the 16 ANSI colours, the automatic
//! fallback) and `mono` (no colour, forced by `NO_COLOR`). A user theme is a
//! TOML file in the config dir's `themes/` folder that `extends` another and
//! sets only what it changes; the config file can override single colours on
//! top. The colour convention (calls green or calls red) is applied last.
//!
//! Every style here keeps a text-or-modifier twin in the UI (C/P, ▲/▼, tags,
//! bold, reverse video), so nothing depends on colour alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use flowtape_core::event::Sentiment;
use flowtape_core::occ::Right;
use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

/// Which colour means "up": calls and bullish flow are green in US markets,
/// red in several Asian markets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Convention {
    #[default]
    GreenUp,
    RedUp,
}

/// What the terminal can show, as the environment tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorSupport {
    /// `NO_COLOR` is set: modifiers only.
    None,
    /// The 16 ANSI colours.
    Basic,
    /// 256 colours or more.
    Full,
}

impl ColorSupport {
    /// Reads `NO_COLOR`, `COLORTERM` and `TERM` (passed in, so tests need no environment).
    pub fn detect(
        no_color: Option<&str>,
        colorterm: Option<&str>,
        term: Option<&str>,
    ) -> ColorSupport {
        if no_color.is_some_and(|v| !v.is_empty()) {
            return ColorSupport::None;
        }
        let rich_colorterm =
            colorterm.is_some_and(|c| c.contains("truecolor") || c.contains("24bit"));
        let rich_term = term
            .is_some_and(|t| t.contains("256") || t.contains("direct") || t.contains("truecolor"));
        if rich_colorterm || rich_term {
            ColorSupport::Full
        } else {
            ColorSupport::Basic
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> ColorSupport {
        let var = |k: &str| std::env::var(k).ok();
        ColorSupport::detect(
            var("NO_COLOR").as_deref(),
            var("COLORTERM").as_deref(),
            var("TERM").as_deref(),
        )
    }

    /// The built-in theme for this terminal when the user named none.
    pub fn default_theme(self) -> &'static str {
        match self {
            ColorSupport::None => "mono",
            ColorSupport::Basic => "basic16",
            ColorSupport::Full => "default",
        }
    }
}

/// Why a theme could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("unknown theme {name:?}: not built in ({builtins}) and no file {path}")]
    Unknown {
        name: String,
        builtins: String,
        path: String,
    },
    #[error("cannot read theme file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("theme file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("{origin}: unknown colour key {key:?} (known: {known})")]
    UnknownKey {
        origin: String,
        key: String,
        known: String,
    },
    #[error("{origin}: {key} = {value:?} is not a colour (use a name like \"green\", \"#00d75f\", \"41\" or \"none\")")]
    BadColor {
        origin: String,
        key: String,
        value: String,
    },
    #[error("theme {0:?} extends itself")]
    Cycle(String),
}

const BUILTINS: [(&str, &str); 3] = [
    ("default", include_str!("../assets/themes/default.toml")),
    ("basic16", include_str!("../assets/themes/basic16.toml")),
    ("mono", include_str!("../assets/themes/mono.toml")),
];

macro_rules! palette {
    ($($key:ident),* $(,)?) => {
        /// The named colours of a theme; `None` means "no colour".
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Palette {
            $(pub $key: Option<Color>,)*
        }

        impl Palette {
            /// Every colour key, as theme files and the config spell them.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($key)),*];

            fn slot(&mut self, key: &str) -> Option<&mut Option<Color>> {
                match key {
                    $(stringify!($key) => Some(&mut self.$key),)*
                    _ => None,
                }
            }
        }
    };
}

palette!(
    call, put, bull, bear, golden_fg, golden_bg, alert_bg, tier_100k, tier_1m, unusual, header,
    status_fg, status_bg, hint_key, dim, error, warn, ok, border,
);

impl Palette {
    /// Sets colours from `key = "colour"` pairs; `origin` names where they came from in errors.
    pub fn apply(
        &mut self,
        colors: &BTreeMap<String, String>,
        origin: &str,
    ) -> Result<(), ThemeError> {
        for (key, value) in colors {
            let color = parse_color(value).ok_or_else(|| ThemeError::BadColor {
                origin: origin.to_string(),
                key: key.clone(),
                value: value.clone(),
            })?;
            let slot = self.slot(key).ok_or_else(|| ThemeError::UnknownKey {
                origin: origin.to_string(),
                key: key.clone(),
                known: Palette::KEYS.join(", "),
            })?;
            *slot = color;
        }
        Ok(())
    }
}

/// `Some(None)` for "none", `Some(Some(c))` for a colour, `None` if unreadable.
fn parse_color(value: &str) -> Option<Option<Color>> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("none") || v.is_empty() {
        return Some(None);
    }
    Color::from_str(v).ok().map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    #[serde(default)]
    extends: Option<String>,
    #[serde(default)]
    colors: BTreeMap<String, String>,
}

/// A resolved theme: its name, its colours and the styles built from them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Theme {
    pub name: String,
    pub palette: Palette,
}

impl Default for Theme {
    fn default() -> Theme {
        Theme::builtin("default").unwrap_or(Theme {
            name: "default".into(),
            palette: Palette::default(),
        })
    }
}

impl Theme {
    /// The names of the compiled-in themes.
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTINS.iter().map(|(n, _)| *n)
    }

    /// A compiled-in theme.
    pub fn builtin(name: &str) -> Option<Theme> {
        let (_, text) = BUILTINS.iter().find(|(n, _)| *n == name)?;
        Theme::parse(name, text, &format!("built-in theme {name}"), None).ok()
    }

    /// Loads `name`: a built-in, or `<themes_dir>/<name>.toml`.
    pub fn load(name: &str, themes_dir: Option<&Path>) -> Result<Theme, ThemeError> {
        Theme::load_chain(name, themes_dir, &mut Vec::new())
    }

    fn load_chain(
        name: &str,
        themes_dir: Option<&Path>,
        seen: &mut Vec<String>,
    ) -> Result<Theme, ThemeError> {
        if seen.iter().any(|s| s == name) {
            return Err(ThemeError::Cycle(name.to_string()));
        }
        seen.push(name.to_string());
        let file = themes_dir.map(|d| d.join(format!("{name}.toml")));
        if let Some(path) = file.as_ref().filter(|p| p.is_file()) {
            let text = std::fs::read_to_string(path).map_err(|source| ThemeError::Read {
                path: path.display().to_string(),
                source,
            })?;
            return Theme::parse(
                name,
                &text,
                &path.display().to_string(),
                Some((themes_dir, seen)),
            );
        }
        Theme::builtin(name).ok_or_else(|| ThemeError::Unknown {
            name: name.to_string(),
            builtins: Theme::builtin_names().collect::<Vec<_>>().join(", "),
            path: file
                .unwrap_or_else(|| PathBuf::from(format!("{name}.toml")))
                .display()
                .to_string(),
        })
    }

    fn parse(
        name: &str,
        text: &str,
        origin: &str,
        chain: Option<(Option<&Path>, &mut Vec<String>)>,
    ) -> Result<Theme, ThemeError> {
        let file: ThemeFile = toml::from_str(text).map_err(|e| ThemeError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        let mut palette = match (&file.extends, chain) {
            (Some(base), Some((dir, seen))) => Theme::load_chain(base, dir, seen)?.palette,
            (Some(base), None) => Theme::builtin(base).map(|t| t.palette).unwrap_or_default(),
            (None, Some((dir, seen))) if name != "default" => {
                Theme::load_chain("default", dir, seen)?.palette
            }
            (None, _) => Palette::default(),
        };
        palette.apply(&file.colors, origin)?;
        Ok(Theme {
            name: name.to_string(),
            palette,
        })
    }

    /// Swaps the up and down colours for red-up markets.
    pub fn with_convention(mut self, convention: Convention) -> Theme {
        if convention == Convention::RedUp {
            let p = &mut self.palette;
            std::mem::swap(&mut p.call, &mut p.put);
            std::mem::swap(&mut p.bull, &mut p.bear);
        }
        self
    }

    fn fg(c: Option<Color>) -> Style {
        c.map_or_else(Style::default, |c| Style::default().fg(c))
    }

    pub fn right(&self, right: Right) -> Style {
        match right {
            Right::Call => Theme::fg(self.palette.call),
            Right::Put => Theme::fg(self.palette.put),
        }
    }

    pub fn sentiment(&self, s: Sentiment) -> Style {
        match s {
            Sentiment::Bull => Theme::fg(self.palette.bull),
            Sentiment::Bear => Theme::fg(self.palette.bear),
            Sentiment::Neutral => Theme::fg(self.palette.dim),
        }
    }

    /// A golden sweep's row: highlighted background, bold.
    pub fn golden_row(&self) -> Style {
        let mut s = Theme::fg(self.palette.golden_fg).add_modifier(Modifier::BOLD);
        if let Some(bg) = self.palette.golden_bg {
            s = s.bg(bg);
        }
        s
    }

    /// A row that matched an alert rule.
    pub fn alert_row(&self) -> Style {
        let s = Style::default().add_modifier(Modifier::BOLD);
        self.palette.alert_bg.map_or(s, |bg| s.bg(bg))
    }

    /// The premium cell: emphasized at $100k and more again at $1M.
    pub fn premium(&self, usd: f64) -> Style {
        if usd >= 1_000_000.0 {
            Theme::fg(self.palette.tier_1m).add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
        } else if usd >= 100_000.0 {
            Theme::fg(self.palette.tier_100k).add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        }
    }

    pub fn tags(&self) -> Style {
        Theme::fg(self.palette.unusual)
    }

    pub fn header(&self) -> Style {
        Theme::fg(self.palette.header).add_modifier(Modifier::BOLD)
    }

    pub fn status(&self) -> Style {
        let s = Theme::fg(self.palette.status_fg);
        self.palette.status_bg.map_or(s, |bg| s.bg(bg))
    }

    pub fn hint_key(&self) -> Style {
        Theme::fg(self.palette.hint_key).add_modifier(Modifier::BOLD)
    }

    pub fn dim(&self) -> Style {
        Theme::fg(self.palette.dim)
    }

    pub fn error(&self) -> Style {
        Theme::fg(self.palette.error).add_modifier(Modifier::BOLD)
    }

    pub fn warn(&self) -> Style {
        Theme::fg(self.palette.warn).add_modifier(Modifier::BOLD)
    }

    pub fn ok(&self) -> Style {
        Theme::fg(self.palette.ok)
    }

    pub fn border(&self) -> Style {
        Theme::fg(self.palette.border)
    }

    /// The selected row: reverse video, visible with or without colour.
    pub fn selected(&self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_set_every_key() {
        for name in Theme::builtin_names() {
            let text = BUILTINS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| *t)
                .unwrap_or("");
            let file: ThemeFile = toml::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            for key in Palette::KEYS {
                assert!(file.colors.contains_key(*key), "{name} lacks {key}");
            }
            assert!(Theme::builtin(name).is_some(), "{name}");
        }
        let mono = Theme::builtin("mono").unwrap_or_default();
        assert_eq!(
            mono.palette,
            Palette::default(),
            "mono has no colour at all"
        );
        let basic = Theme::builtin("basic16").unwrap_or_default();
        assert_eq!(basic.palette.call, Some(Color::Green));
    }

    #[test]
    fn red_up_swaps_calls_and_puts() {
        let green = Theme::builtin("basic16").unwrap_or_default();
        let red = green.clone().with_convention(Convention::RedUp);
        assert_eq!(red.right(Right::Call).fg, Some(Color::Red));
        assert_eq!(red.right(Right::Put).fg, Some(Color::Green));
        assert_eq!(red.sentiment(Sentiment::Bull).fg, Some(Color::Red));
        assert_eq!(green.right(Right::Call).fg, Some(Color::Green));
    }

    #[test]
    fn user_theme_extends_and_overrides() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            dir.path().join("mine.toml"),
            "extends = \"basic16\"\n[colors]\ncall = \"#00ff00\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let t = Theme::load("mine", Some(dir.path())).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.palette.call, Some(Color::Rgb(0, 255, 0)));
        assert_eq!(t.palette.put, Some(Color::Red));

        std::fs::write(
            dir.path().join("bad.toml"),
            "[colors]\ncall = \"greenish\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let err = Theme::load("bad", Some(dir.path()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("call = \"greenish\" is not a colour"), "{err}");

        std::fs::write(dir.path().join("loop.toml"), "extends = \"loop\"\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            Theme::load("loop", Some(dir.path())),
            Err(ThemeError::Cycle(_))
        ));
        assert!(matches!(
            Theme::load("nope", Some(dir.path())),
            Err(ThemeError::Unknown { .. })
        ));
    }

    #[test]
    fn override_keys_are_checked() {
        let mut p = Palette::default();
        let bad: BTreeMap<String, String> = [("calls".to_string(), "red".to_string())].into();
        let err = p
            .apply(&bad, "config.toml")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("unknown colour key \"calls\""), "{err}");
    }

    #[test]
    fn detection() {
        assert_eq!(
            ColorSupport::detect(Some("1"), Some("truecolor"), None),
            ColorSupport::None
        );
        assert_eq!(
            ColorSupport::detect(Some(""), None, Some("xterm-256color")),
            ColorSupport::Full
        );
        assert_eq!(
            ColorSupport::detect(None, None, Some("xterm")),
            ColorSupport::Basic
        );
        assert_eq!(
            ColorSupport::detect(None, Some("24bit"), Some("screen")),
            ColorSupport::Full
        );
    }
}

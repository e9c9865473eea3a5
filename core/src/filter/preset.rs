//! Presets: words that stand for a whole filter, as `notable` stands for
//! [`NOTABLE_DEFAULT`].
//!
//! A preset is expanded where it is written, as if its expression were in
//! parentheses, so `AAPL notable` is `AAPL (sweep or block or …)`. The
//! canonical form prints the expansion, so it means the same to a reader
//! that has other presets. [`Presets::builtin`] is what [`Filter::parse`]
//! uses on the gateway, in the TUI and in `flowtape tail`; a caller can
//! redefine a preset or add one with [`Presets::define`] and parse with
//! [`Filter::parse_with`].
//!
//! [`Filter::parse`]: super::Filter::parse
//! [`Filter::parse_with`]: super::Filter::parse_with

use std::sync::OnceLock;

use super::error::FilterError;
use super::expr::Expr;
use super::grammar;
use super::vocab::{Field, Keyword, MAX_TICKER_LEN};

/// The default notable-flow view: every golden and unusual order, sweeps and
/// blocks of $100k or more, and anything of $500k or more. In the demo's
/// market at the open that is about 4 rows a second, a pace a person can
/// read (`docs/tui.md`, "Notable flow by default").
pub const NOTABLE_DEFAULT: &str =
    "golden or unusual or (sweep or block) premium>=100k or premium>=500k";

/// The built-in presets: name, expression.
const BUILTIN: [(&str, &str); 1] = [("notable", NOTABLE_DEFAULT)];

/// The built-in preset names, for suggestions.
pub fn builtin_names() -> impl Iterator<Item = &'static str> + Clone {
    BUILTIN.iter().map(|(name, _)| *name)
}

/// Preset names and their compiled expressions.
#[derive(Clone, Debug, Default)]
pub struct Presets {
    named: Vec<(String, Expr)>,
}

/// Why [`Presets::define`] refused a preset.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PresetError {
    /// The name could be read as something else.
    #[error(
        "preset name {0:?} must be letters only, longer than {MAX_TICKER_LEN} (so it is never \
         a ticker), and not a keyword or field"
    )]
    BadName(String),
    #[error("preset {name:?}: {error}")]
    Expression { name: String, error: FilterError },
}

impl Presets {
    /// The built-in presets (`notable`).
    pub fn builtin() -> &'static Presets {
        static BUILT: OnceLock<Presets> = OnceLock::new();
        BUILT.get_or_init(|| {
            let mut presets = Presets::default();
            for (name, expression) in BUILTIN {
                // Each built-in expression is tested to parse; one that did
                // not would be left out, not panic.
                let _ = presets.define(name, expression);
            }
            presets
        })
    }

    /// Defines `name` (any case) as `expression`, replacing an earlier
    /// definition. The expression may use presets defined before it, as
    /// they are now.
    pub fn define(&mut self, name: &str, expression: &str) -> Result<(), PresetError> {
        if !is_valid_name(name) {
            return Err(PresetError::BadName(name.to_string()));
        }
        let expr =
            grammar::expression(expression, self).map_err(|error| PresetError::Expression {
                name: name.to_string(),
                error,
            })?;
        let name = name.to_ascii_lowercase();
        match self.named.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = expr,
            None => self.named.push((name, expr)),
        }
        Ok(())
    }

    /// The expression `word` stands for, ignoring case.
    pub(super) fn get(&self, word: &str) -> Option<&Expr> {
        self.named
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(word))
            .map(|(_, expr)| expr)
    }
}

/// Letters only and too long for a ticker, so a bare word that is a preset
/// can be nothing else; and not a word of the language.
fn is_valid_name(name: &str) -> bool {
    name.len() > MAX_TICKER_LEN
        && name.bytes().all(|c| c.is_ascii_alphabetic())
        && Keyword::from_word(name).is_none()
        && Field::from_name(name).is_none()
}
